"""LightGBM propensity model (binary), trained in-process or on Dask with lightgbm.DaskLGBMClassifier.

Categorical columns are given to LightGBM as pandas categoricals with the levels fixed at fit
time, so training and serving encode identically (LightGBM's native categorical splits; an
unseen level is missing). With a distributed.Client the training frame becomes a Dask
DataFrame of one partition per worker and LightGBM's own distributed training runs across
the workers; the fitted model is brought back as a local LGBMClassifier for prediction.
"""

from __future__ import annotations

import time
import warnings
from typing import Sequence

import numpy as np
import pandas as pd

from pipelines.propensity.base import PropensityModel, as_binary_target, categorical_columns


class LightGBMPropensity(PropensityModel):
    """Gradient-boosted trees for P(outcome = 1); `client` switches to Dask training."""

    def __init__(self, categorical: Sequence[str] | None = None, client=None, n_estimators: int = 200,
                 learning_rate: float = 0.05, num_leaves: int = 31, min_child_samples: int = 20, seed: int = 0,
                 **params):
        super().__init__(categorical)
        self.client = client
        self.params = dict(n_estimators=n_estimators, learning_rate=learning_rate, num_leaves=num_leaves,
                           min_child_samples=min_child_samples, random_state=seed, verbose=-1, **params)
        self.levels_: dict[str, list] = {}
        self.model_ = None
        self.fit_seconds_: float | None = None
        self.trained_on_dask_ = False

    def _encode(self, X: pd.DataFrame) -> pd.DataFrame:
        out = {}
        for c in self.feature_names_:
            if c in self.levels_:
                vals = X[c].astype(str).where(X[c].notna())
                vals = vals.where(vals.isin(self.levels_[c]))  # unseen level -> missing
                out[c] = pd.Categorical(vals, categories=self.levels_[c])
            else:
                out[c] = pd.to_numeric(X[c], errors="coerce").astype(np.float64)
        return pd.DataFrame(out, index=X.index)

    def fit(self, X: pd.DataFrame, y) -> "LightGBMPropensity":
        import lightgbm as lgb

        t0 = time.perf_counter()
        y = as_binary_target(y)
        self.feature_names_ = list(X.columns)
        cats = categorical_columns(X, self.categorical)
        self.levels_ = {c: sorted(X[c].dropna().astype(str).unique().tolist()) for c in cats}
        Xe = self._encode(X)
        if self.client is None:
            self.model_ = lgb.LGBMClassifier(objective="binary", n_jobs=1, **self.params)
            self.model_.fit(Xe, y)
            self.trained_on_dask_ = False
        else:
            import dask.dataframe as dd

            n_workers = max(1, len(self.client.scheduler_info(n_workers=-1)["workers"]))
            dX = dd.from_pandas(Xe.reset_index(drop=True), npartitions=n_workers)
            dy = dd.from_pandas(pd.Series(y, name="y"), npartitions=n_workers)
            dX, dy = self.client.persist([dX, dy])
            model = lgb.DaskLGBMClassifier(client=self.client, objective="binary", **self.params)
            with warnings.catch_warnings():
                # the sklearn wrapper always passes n_jobs; the Dask trainer sets threads per worker itself
                warnings.filterwarnings("ignore", message="Parameter n_jobs will be ignored")
                model.fit(dX, dy)
            self.model_ = model.to_local()
            self.trained_on_dask_ = True
        self.fit_seconds_ = time.perf_counter() - t0
        return self

    def _positive_proba(self, X: pd.DataFrame) -> np.ndarray:
        return self.model_.predict_proba(self._encode(X))[:, 1]

    @property
    def booster(self):
        """The fitted lightgbm.Booster (what a snapshot serialises with model_to_string())."""
        return self.model_.booster_
