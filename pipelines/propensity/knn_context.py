"""kNN context classifier: the redemption rate among the k most similar past contexts.

Encoding (so that every attribute can contribute at most about 1 to a distance):
  * ordinal columns (declared with their ordered levels, e.g. distance band) -> level index
    scaled to [0, 1];
  * other categorical columns -> one-hot scaled by 1/sqrt(2), so two different levels are
    exactly 1 apart;
  * numeric columns -> z-scores.
P(1 | x) = (positives among the k nearest training rows + m * prior) / (k + m), with the
training base rate as prior and m = `smoothing` pseudo-rows: never exactly 0 or 1, so the
log-loss stays finite. Neighbours come from scikit-learn's NearestNeighbors.
"""

from __future__ import annotations

import time
from typing import Sequence

import numpy as np
import pandas as pd

from pipelines.propensity.base import OneHotEncoder, PropensityModel, as_binary_target, categorical_columns


class KNNContextPropensity(PropensityModel):
    """k-nearest-neighbour redemption rate over encoded context attributes."""

    def __init__(self, categorical: Sequence[str] | None = None, ordinal: dict[str, Sequence] | None = None,
                 k: int = 50, smoothing: float = 2.0):
        super().__init__(categorical)
        self.ordinal = {c: list(v) for c, v in (ordinal or {}).items()}
        self.k = k
        self.smoothing = smoothing
        self.encoder_: OneHotEncoder | None = None
        self.nn_ = None
        self.y_: np.ndarray | None = None
        self.prior_: float | None = None
        self.fit_seconds_: float | None = None

    def _encode(self, X: pd.DataFrame) -> np.ndarray:
        onehot = self.encoder_.transform(X.drop(columns=list(self.ordinal)), category_scale=1.0 / np.sqrt(2.0))
        cols = [onehot]
        for c, levels in self.ordinal.items():
            code = pd.Categorical(X[c].astype(str), categories=[str(v) for v in levels]).codes.astype(np.float64)
            code[code < 0] = np.nan
            scaled = code / max(len(levels) - 1, 1)
            cols.append(np.nan_to_num(scaled, nan=0.5)[:, None])  # unknown level: the middle
        return np.hstack(cols)

    def fit(self, X: pd.DataFrame, y) -> "KNNContextPropensity":
        from sklearn.neighbors import NearestNeighbors

        t0 = time.perf_counter()
        y = as_binary_target(y)
        self.feature_names_ = list(X.columns)
        cats = [c for c in categorical_columns(X, self.categorical) if c not in self.ordinal]
        missing = [c for c in self.ordinal if c not in X.columns]
        if missing:
            raise KeyError(f"ordinal columns not in the frame: {missing}")
        self.encoder_ = OneHotEncoder(cats).fit(X.drop(columns=list(self.ordinal)))
        E = self._encode(X)
        self.nn_ = NearestNeighbors(n_neighbors=min(self.k, len(y))).fit(E)
        self.y_ = y.astype(np.float64)
        self.prior_ = float(self.y_.mean())
        self.fit_seconds_ = time.perf_counter() - t0
        return self

    def _positive_proba(self, X: pd.DataFrame) -> np.ndarray:
        out = np.empty(len(X))
        E = self._encode(X)
        k = self.nn_.n_neighbors
        for s in range(0, len(X), 8192):
            idx = self.nn_.kneighbors(E[s:s + 8192], return_distance=False)
            pos = self.y_[idx].sum(axis=1)
            out[s:s + 8192] = (pos + self.smoothing * self.prior_) / (k + self.smoothing)
        return out
