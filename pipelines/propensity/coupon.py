"""A seeded synthetic mobile-coupon redemption dataset: the context attributes of the coupon study.

Columns: time_of_day, distance_band, category, handset, offer_type (all categorical) and
redeemed (0/1). Redemption is Bernoulli(p) with logit(p) built from main effects (distance
band falls steeply, offer type, handset) and context interactions (food at lunch, grocery
in the evening, entertainment at night, cash-back coupons tolerating distance better), so a
model that sees the interactions beats one that sees only main effects.
`redemption_probability(df)` gives the true p, so the Bayes-optimal AUC / log-loss is known.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

TIME_OF_DAY = ["morning", "lunch", "afternoon", "evening", "night"]
DISTANCE_BAND = ["<200m", "200-500m", "500m-1km", "1-3km", ">3km"]  # ordered, nearest first
CATEGORY = ["food", "grocery", "fashion", "electronics", "entertainment", "beauty"]
HANDSET = ["ios", "android", "feature_phone"]
OFFER_TYPE = ["percent_off", "bogo", "cash_back", "free_gift"]

#: The five context attributes (all categorical) and the outcome column.
COUPON_FEATURES = ["time_of_day", "distance_band", "category", "handset", "offer_type"]
COUPON_TARGET = "redeemed"
#: Ordered levels for encoders that can use them (the kNN classifier does).
COUPON_ORDINAL = {"distance_band": DISTANCE_BAND}

_BASE = -1.6
_DISTANCE = np.array([0.9, 0.4, -0.2, -0.9, -1.7])
_OFFER = {"percent_off": 0.0, "bogo": 0.45, "cash_back": 0.25, "free_gift": -0.2}
_HANDSET = {"ios": 0.15, "android": 0.0, "feature_phone": -0.5}
_TIME = {"morning": -0.2, "lunch": 0.1, "afternoon": -0.1, "evening": 0.2, "night": -0.4}
_CATEGORY = {"food": 0.2, "grocery": 0.0, "fashion": -0.1, "electronics": -0.3, "entertainment": 0.0, "beauty": -0.1}
_CONTEXT = {("food", "lunch"): 1.1, ("grocery", "evening"): 0.8, ("entertainment", "night"): 1.2,
            ("entertainment", "morning"): -0.6, ("food", "night"): -0.5, ("electronics", "afternoon"): 0.4}


def redemption_probability(df: pd.DataFrame) -> np.ndarray:
    """The true P(redeemed = 1) of each row under the generating model."""
    dist = pd.Categorical(df["distance_band"], categories=DISTANCE_BAND).codes
    if (dist < 0).any():
        raise ValueError("unknown distance_band level")
    logit = (_BASE + _DISTANCE[dist]
             + df["offer_type"].map(_OFFER).to_numpy(float)
             + df["handset"].map(_HANDSET).to_numpy(float)
             + df["time_of_day"].map(_TIME).to_numpy(float)
             + df["category"].map(_CATEGORY).to_numpy(float))
    pair = list(zip(df["category"], df["time_of_day"]))
    logit = logit + np.array([_CONTEXT.get(p, 0.0) for p in pair])
    # cash-back coupons lose only half the distance penalty
    far = np.maximum(0.0, -_DISTANCE[dist])
    logit = logit + np.where(df["offer_type"].to_numpy() == "cash_back", 0.5 * far, 0.0)
    return 1.0 / (1.0 + np.exp(-logit))


def coupon_context_dataset(n: int, seed: int = 0) -> pd.DataFrame:
    """n rows of (time_of_day, distance_band, category, handset, offer_type, redeemed), seeded."""
    rng = np.random.default_rng(seed)

    def pick(levels, p=None):
        return np.asarray(levels, dtype=object)[rng.choice(len(levels), size=n, p=p)]

    df = pd.DataFrame({
        "time_of_day": pick(TIME_OF_DAY, [0.2, 0.25, 0.2, 0.25, 0.1]),
        "distance_band": pick(DISTANCE_BAND, [0.15, 0.25, 0.25, 0.2, 0.15]),
        "category": pick(CATEGORY),
        "handset": pick(HANDSET, [0.45, 0.5, 0.05]),
        "offer_type": pick(OFFER_TYPE),
    })
    df[COUPON_TARGET] = (rng.random(n) < redemption_probability(df)).astype(np.int8)
    return df
