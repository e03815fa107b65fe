"""The one interface every propensity model E(item | state) shares, and the feature encoding they reuse.

A model is fitted on a pandas DataFrame of features plus a 0/1 outcome and returns
P(outcome = 1) for new rows. Categorical columns are either declared (`categorical=[...]`) or
taken to be every column of object / string / category dtype; their levels are learned at
fit time, and a level never seen in training is treated as missing (all-zero one-hot row,
LightGBM's missing branch), never as an error, because live state streams do produce them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Sequence

import numpy as np
import pandas as pd


def categorical_columns(X: pd.DataFrame, declared: Sequence[str] | None) -> list[str]:
    """The declared categorical columns, or every object / string / category column."""
    if declared is not None:
        missing = [c for c in declared if c not in X.columns]
        if missing:
            raise KeyError(f"categorical columns not in the frame: {missing}")
        return list(declared)
    return [c for c in X.columns
            if isinstance(X[c].dtype, pd.CategoricalDtype) or pd.api.types.is_object_dtype(X[c])
            or pd.api.types.is_string_dtype(X[c])]


def as_binary_target(y) -> np.ndarray:
    """The outcome as a 0/1 int array; anything else is an error."""
    arr = np.asarray(y)
    if arr.dtype == bool:
        arr = arr.astype(np.int8)
    vals = set(np.unique(arr).tolist())
    if not vals <= {0, 1}:
        raise ValueError(f"outcome must be binary 0/1, got values {sorted(vals)[:5]}")
    if len(vals) < 2:
        raise ValueError("outcome has a single class; a propensity model needs both")
    return arr.astype(np.int8)


class PropensityModel(ABC):
    """fit(X, y) -> self; predict_proba(X) -> (n, 2) array [P(0), P(1)] like scikit-learn; propensity(X) -> P(1)."""

    def __init__(self, categorical: Sequence[str] | None = None):
        self.categorical = None if categorical is None else list(categorical)
        self.feature_names_: list[str] | None = None

    @abstractmethod
    def fit(self, X: pd.DataFrame, y) -> "PropensityModel":
        ...

    @abstractmethod
    def _positive_proba(self, X: pd.DataFrame) -> np.ndarray:
        ...

    def _check_columns(self, X: pd.DataFrame) -> None:
        if self.feature_names_ is None:
            raise RuntimeError(f"{type(self).__name__} is not fitted")
        missing = [c for c in self.feature_names_ if c not in X.columns]
        if missing:
            raise KeyError(f"columns missing at prediction: {missing}")

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        self._check_columns(X)
        p = np.clip(np.asarray(self._positive_proba(X[self.feature_names_]), dtype=np.float64), 0.0, 1.0)
        return np.column_stack([1.0 - p, p])

    def propensity(self, X: pd.DataFrame) -> np.ndarray:
        """P(outcome = 1) per row: the E(item | state) the OSR score multiplies."""
        return self.predict_proba(X)[:, 1]


class OneHotEncoder:
    """Numeric columns standardised (z-scores from the training rows), categorical ones one-hot.

    Levels unseen in training encode as all zeros; missing numbers become the training mean (0).
    """

    def __init__(self, categorical: list[str]):
        self.categorical = categorical
        self.levels: dict[str, np.ndarray] = {}
        self.numeric: list[str] = []
        self.mean: np.ndarray | None = None
        self.std: np.ndarray | None = None

    def fit(self, X: pd.DataFrame) -> "OneHotEncoder":
        self.numeric = [c for c in X.columns if c not in self.categorical]
        for c in self.categorical:
            self.levels[c] = np.array(sorted(pd.Series(X[c]).dropna().astype(str).unique()))
        if self.numeric:
            num = X[self.numeric].to_numpy(dtype=np.float64)
            self.mean = np.nanmean(num, axis=0)
            sd = np.nanstd(num, axis=0)
            self.std = np.where(sd > 0, sd, 1.0)
        return self

    @property
    def n_features(self) -> int:
        return len(self.numeric) + sum(len(v) for v in self.levels.values())

    def names(self) -> list[str]:
        return self.numeric + [f"{c}={lv}" for c in self.categorical for lv in self.levels[c]]

    def transform(self, X: pd.DataFrame, category_scale: float = 1.0) -> np.ndarray:
        out = np.zeros((len(X), self.n_features))
        j = 0
        if self.numeric:
            num = (X[self.numeric].to_numpy(dtype=np.float64) - self.mean) / self.std
            out[:, :len(self.numeric)] = np.nan_to_num(num, nan=0.0)
            j = len(self.numeric)
        for c in self.categorical:
            lv = self.levels[c]
            vals = pd.Series(X[c]).astype(str).to_numpy()
            pos = np.searchsorted(lv, vals)
            pos_c = np.minimum(pos, max(len(lv) - 1, 0))
            known = (len(lv) > 0) & (lv[pos_c] == vals) if len(lv) else np.zeros(len(vals), bool)
            rows = np.flatnonzero(known)
            out[rows, j + pos_c[rows]] = category_scale
            j += len(lv)
        return out
