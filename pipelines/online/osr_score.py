"""The Optimal State Recommender score.

raw = F(E(item | R(user)), E(item | V(state))), F = product by default;
scaled = (raw - min raw) / (max raw - min raw) over the current snapshot.
Works on batches of feature rows so the stream pays the model call once per batch.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import pandas as pd

from pipelines.contracts import STATE_VECTOR as NUMERIC_FEATURES
from pipelines.contracts import FeatureRow, ScoredEvent

#: Item attributes the propensity model sees next to the state vector.
ITEM_FEATURES = ["category", "price", "offer_type"]
CATEGORICAL = ["device_type", "category", "offer_type"]
MODEL_FEATURES = [*NUMERIC_FEATURES, "device_type", *ITEM_FEATURES]


def product(preference: np.ndarray, propensity: np.ndarray) -> np.ndarray:
    return preference * propensity


COMBINERS: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "product": product,
    "geometric_mean": lambda a, b: np.sqrt(a * b),
}


def model_frame(rows: pd.DataFrame, categories: dict[str, list[str]]) -> pd.DataFrame:
    """The propensity model's input: the state vector plus item attributes, categoricals with fixed levels."""
    X = rows[MODEL_FEATURES].copy()
    for c in NUMERIC_FEATURES + ["price"]:
        X[c] = pd.to_numeric(X[c], errors="coerce").astype(float)
    for c in CATEGORICAL:
        X[c] = pd.Categorical(X[c], categories=categories[c])
    return X


def candidates_frame(feature_rows: list[FeatureRow], snapshot) -> pd.DataFrame:
    """One row per (feature row, candidate item): the person's top-N, or popular items for newcomers."""
    cands = [snapshot.topn.get(f["user_id"], snapshot.popular) for f in feature_rows]
    sizes = np.array([len(c[0]) for c in cands])
    rows = pd.DataFrame(feature_rows, columns=["event_id", "user_id", "ts", "device_type", *NUMERIC_FEATURES])
    df = rows.iloc[np.repeat(np.arange(len(rows)), sizes)].reset_index(drop=True)
    df["item_id"] = np.concatenate([c[0] for c in cands])
    df["preference"] = np.concatenate([c[1] for c in cands])
    return df.join(snapshot.items[ITEM_FEATURES], on="item_id")


def score_batch(feature_rows: list[FeatureRow], snapshot, combine: str = "product") -> list[ScoredEvent]:
    """Score every candidate of every feature row; returns one dict per event with its scored candidates."""
    if not feature_rows:
        return []
    df = candidates_frame(feature_rows, snapshot)
    X = model_frame(df, snapshot.meta["categories"])
    propensity = np.asarray(snapshot.booster.predict(X, num_threads=1), dtype=float)
    raw = COMBINERS[combine](df.preference.to_numpy(dtype=float), propensity)
    lo, hi = snapshot.raw_range
    scaled = np.clip((raw - lo) / (hi - lo), 0.0, 1.0) if hi > lo else np.zeros_like(raw)
    df = df.assign(propensity=propensity, raw_score=raw, osr_score=scaled)
    out = []
    for event_id, g in df.groupby("event_id", sort=False):
        first = g.iloc[0]
        out.append({
            "event_id": event_id,
            "user_id": first.user_id,
            "ts": float(first.ts),
            "model_id": snapshot.model_id,
            "scores": [
                {"item_id": r.item_id, "category": r.category, "preference": float(r.preference),
                 "propensity": float(r.propensity), "raw_score": float(r.raw_score), "osr_score": float(r.osr_score)}
                for r in g.itertuples(index=False)
            ],
        })
    return out
