"""Hold-out comparison of propensity models: AUC and log-loss for each, on the same split.

`holdout_split` is a seeded random split of the rows; `evaluate_models` fits every model on
the training part and scores P(1) on the hold-out. `compare_on_coupons` is the standard
comparison (LightGBM vs mini-batch SGD logistic vs kNN context) on the synthetic coupon data,
with the Bayes-optimal figures from the true redemption probabilities as the ceiling.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
from sklearn.metrics import log_loss, roc_auc_score

from pipelines.propensity.base import PropensityModel
from pipelines.propensity.coupon import (
    COUPON_FEATURES,
    COUPON_ORDINAL,
    COUPON_TARGET,
    coupon_context_dataset,
    redemption_probability,
)
from pipelines.propensity.knn_context import KNNContextPropensity
from pipelines.propensity.lgbm import LightGBMPropensity
from pipelines.propensity.sgd_logistic import SGDLogisticPropensity


def holdout_split(df: pd.DataFrame, target: str, test_fraction: float = 0.25, seed: int = 0
                  ) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray, np.ndarray]:
    """(X_train, X_test, y_train, y_test): numpy default_rng(seed) permutation, the first share is the test set."""
    perm = np.random.default_rng(seed).permutation(len(df))
    n_test = int(round(test_fraction * len(df)))
    test, train = df.iloc[perm[:n_test]], df.iloc[perm[n_test:]]
    X_cols = [c for c in df.columns if c != target]
    return (train[X_cols].reset_index(drop=True), test[X_cols].reset_index(drop=True),
            train[target].to_numpy(), test[target].to_numpy())


def scores(y_true: np.ndarray, p: np.ndarray) -> dict:
    """AUC and log-loss of probabilities p (clipped to [1e-12, 1 - 1e-12] for the log)."""
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-12, 1 - 1e-12)
    return {"auc": float(roc_auc_score(y_true, p)), "log_loss": float(log_loss(y_true, p, labels=[0, 1]))}


def evaluate_models(models: dict[str, PropensityModel], X_train: pd.DataFrame, y_train, X_test: pd.DataFrame,
                    y_test) -> dict[str, dict]:
    """Fit each model, score it on the hold-out: {name: {auc, log_loss, fit_s, predict_s}}."""
    out = {}
    for name, model in models.items():
        t0 = time.perf_counter()
        model.fit(X_train, y_train)
        t1 = time.perf_counter()
        p = model.propensity(X_test)
        t2 = time.perf_counter()
        out[name] = {**scores(y_test, p), "fit_s": t1 - t0, "predict_s": t2 - t1}
    return out


def coupon_models(client=None, seed: int = 0) -> dict[str, PropensityModel]:
    """The three compared models, configured for the coupon attributes."""
    return {
        "lightgbm": LightGBMPropensity(categorical=COUPON_FEATURES, client=client, seed=seed),
        "sgd_logistic": SGDLogisticPropensity(categorical=COUPON_FEATURES, client=client, seed=seed),
        "knn_context": KNNContextPropensity(categorical=COUPON_FEATURES, ordinal=COUPON_ORDINAL, k=100),
    }


def compare_on_coupons(n: int = 20000, seed: int = 0, client=None, test_fraction: float = 0.25) -> dict:
    """AUC / log-loss of each model on a seeded coupon dataset, plus the Bayes-optimal ceiling."""
    df = coupon_context_dataset(n, seed=seed)
    X_train, X_test, y_train, y_test = holdout_split(df, COUPON_TARGET, test_fraction, seed)
    results = evaluate_models(coupon_models(client, seed), X_train, y_train, X_test, y_test)
    results["bayes_optimal"] = scores(y_test, redemption_probability(X_test))
    results["_data"] = {"n_train": int(len(y_train)), "n_test": int(len(y_test)),
                        "positive_rate": float(np.mean(y_train)), "dask": client is not None}
    return results
