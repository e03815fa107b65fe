"""The Optimal State Recommender score.

raw = F(E(item | R(user)), E(item | V(state))), F = product by default;
scaled = (raw - min raw) / (max raw - min raw) over the current snapshot.
Works on batches of feature rows so the stream pays the model call once per batch.
"""

from __future__ import annotations

import json
from typing import Callable

import numpy as np
import pandas as pd

from pipelines.contracts import STATE_VECTOR as NUMERIC_FEATURES
from pipelines.contracts import FeatureRow, ScoredEvent
from pipelines.ingest.validation import deadletter_record

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
    for c in CATEGORICAL:  # a level the model never saw (e.g. a new device mix) is missing, as LightGBM expects
        X[c] = pd.Categorical(X[c].where(X[c].isin(categories[c])), categories=categories[c])
    return X


def score_stage(feature_rows: list[FeatureRow], snapshot, top_k: int | None = None
                ) -> tuple[list[ScoredEvent], list[dict]]:
    """score_batch that never stops the agent: if the batch fails, each row is scored alone and the
    rows that still fail become dead letters, so the good rows of a micro-batch are always scored.
    top_k: score only each row's top_k candidates by the pre-rank (`candidates`; None: all)."""
    try:
        return score_batch(feature_rows, snapshot, top_k=top_k), []
    except Exception:  # noqa: BLE001
        pass

    scored, dead = [], []
    for row in feature_rows:
        try:
            scored += score_batch([row], snapshot, top_k=top_k)
        except Exception as exc:  # noqa: BLE001
            dead.append(deadletter_record(json.dumps(row, default=str)[:10_000],
                                          f"score error: {exc.__class__.__name__}: {exc}", f"state.features:{row.get('event_id')}"))
    return scored, dead


class _ItemColumns:
    """The snapshot's item attributes as arrays, built once per snapshot: the model's item columns
    are looked up by position instead of a DataFrame join per micro-batch."""

    def __init__(self, items: pd.DataFrame, categories: dict[str, list[str]]):
        self.index = {item: k for k, item in enumerate(items.index)}
        self.category = items["category"].to_numpy(dtype=object)
        self.price = pd.to_numeric(items["price"], errors="coerce").to_numpy(dtype=float)
        self.codes = {c: _codes(items[c], categories[c]) for c in ("category", "offer_type")}


def _codes(values, levels: list[str]) -> np.ndarray:
    """Category codes as LightGBM sees them from a pandas Categorical with these levels (NaN = missing)."""
    where = {v: float(k) for k, v in enumerate(levels)}
    return np.array([where.get(v, np.nan) for v in values], dtype=float)


def _number(v) -> float:
    if v is None or isinstance(v, str):
        return np.nan
    try:
        return float(v)
    except (TypeError, ValueError):
        return np.nan


_ITEM_COLUMNS: dict[int, tuple[object, _ItemColumns]] = {}


def _item_columns(snapshot) -> _ItemColumns:
    cached = _ITEM_COLUMNS.get(id(snapshot))
    if cached is None or cached[0] is not snapshot:
        _ITEM_COLUMNS.clear()  # one live snapshot at a time: drop the previous one's arrays
        cached = _ITEM_COLUMNS[id(snapshot)] = (snapshot, _ItemColumns(snapshot.items, snapshot.meta["categories"]))
    return cached[1]


def candidates(snapshot, user_id: str, top_k: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A person's candidates (item ids, preferences): their top-N, or the popular items.

    top_k (degraded mode, pipelines.capacity.admission): only the top_k by the pre-rank, which is
    the preference part of the score (the ALS factor model's, already computed by the nightly batch,
    so ranking by it costs nothing at stream time), highest first, ties in the list's own order;
    the propensity model then runs on those only. None: every candidate, as listed."""
    cands = snapshot.topn.get(user_id, snapshot.popular)
    if top_k is None or len(cands[0]) <= top_k:
        return cands
    best = np.argsort(-np.asarray(cands[1], dtype=float), kind="stable")[:top_k]
    return cands[0][best], cands[1][best]


def model_matrix(feature_rows: list[FeatureRow], snapshot, top_k: int | None = None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The propensity model's input for every (feature row, candidate) as one float matrix, the same
    values `model_frame` gives LightGBM (categoricals as their codes among the training levels), built
    from numpy columns: pandas cost ~20 ms per micro-batch, most of a small batch's time.
    Returns (X, item ids, preferences, item categories, candidates per row)."""
    cands = [candidates(snapshot, f["user_id"], top_k) for f in feature_rows]
    sizes = np.array([len(c[0]) for c in cands], dtype=np.int64)
    items = np.concatenate([c[0] for c in cands]).astype(object)
    preference = np.concatenate([c[1] for c in cands]).astype(float)
    cols = _item_columns(snapshot)
    pos = np.array([cols.index.get(i, -1) for i in items], dtype=np.int64)
    ok = pos >= 0
    rep = np.repeat(np.arange(len(feature_rows)), sizes)
    k = len(NUMERIC_FEATURES)
    X = np.full((len(items), len(MODEL_FEATURES)), np.nan)
    X[:, :k] = np.array([[_number(f.get(c)) for c in NUMERIC_FEATURES] for f in feature_rows], dtype=float)[rep]
    X[:, k] = _codes([f.get("device_type") for f in feature_rows], snapshot.meta["categories"]["device_type"])[rep]
    X[ok, k + 1] = cols.codes["category"][pos[ok]]
    X[ok, k + 2] = cols.price[pos[ok]]
    X[ok, k + 3] = cols.codes["offer_type"][pos[ok]]
    category = np.where(ok, cols.category[np.where(ok, pos, 0)], np.nan)
    return X, items, preference, category, sizes


def score_batch(feature_rows: list[FeatureRow], snapshot, combine: str = "product",
                top_k: int | None = None) -> list[ScoredEvent]:
    """Score every candidate of every feature row (top_k: only the pre-rank's best top_k, see
    `candidates`): one ScoredEvent per input row, in input order.

    Per row, not grouped by event id: two uploads that share an event id (a redelivery, or one
    reused by someone else) must never merge into one scored moment with every item twice.
    The output is built from numpy columns, not by iterating a DataFrame.
    """
    if not feature_rows:
        return []
    X, item_ids, preference, category, sizes = model_matrix(feature_rows, snapshot, top_k)
    propensity = np.asarray(snapshot.booster.predict(X, num_threads=1), dtype=float)
    raw = COMBINERS[combine](preference, propensity)
    lo, hi = snapshot.raw_range
    scaled = np.clip((raw - lo) / (hi - lo), 0.0, 1.0) if hi > lo else np.zeros_like(raw)
    items = item_ids.tolist()
    cats = category.tolist()
    pref, prop, rawl, osr = preference.tolist(), propensity.tolist(), raw.tolist(), scaled.tolist()
    out: list[ScoredEvent] = []
    start = 0
    for f, n in zip(feature_rows, sizes.tolist()):
        end = start + n
        out.append({
            "event_id": f["event_id"],
            "user_id": f["user_id"],
            "ts": float(f["ts"]),
            "model_id": snapshot.model_id,
            "scores": [
                {"item_id": items[k], "category": cats[k], "preference": pref[k], "propensity": prop[k],
                 "raw_score": rawl[k], "osr_score": osr[k]}
                for k in range(start, end)
            ],
        })
        start = end
    return out
