"""Logistic regression by distributed synchronous mini-batch SGD on Dask.

The encoded training rows (one-hot categoricals, standardised numbers, an intercept) are cut
into partitions and kept on the workers for the whole fit (one Dask actor per worker holds
its partitions). Every step the client sends the current weights to every actor; each
partition draws a mini-batch of its own rows (seeded) and returns the summed gradient of the
log-loss; the client averages them over all rows drawn, adds the L2 term, and steps:

    w <- w - step_t * (mean gradient + l2 * w),   step_t = step0 / (1 + decay * t)

The returned weights are the average of the iterates over the last half of the steps
(Polyak-Ruppert averaging), which removes most of SGD's end-of-run noise from the
probabilities. Without a client the same partitions and steps run in-process.
"""

from __future__ import annotations

import time
from typing import Sequence

import numpy as np
import pandas as pd

from pipelines.propensity.base import OneHotEncoder, PropensityModel, as_binary_target, categorical_columns


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def partition_gradient(Xp: np.ndarray, yp: np.ndarray, w: np.ndarray, batch_size: int, seed: int
                       ) -> tuple[np.ndarray, int]:
    """Summed log-loss gradient over a seeded mini-batch of one partition's rows, and the batch size."""
    if len(yp) == 0:
        return np.zeros_like(w), 0
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(yp), size=min(batch_size, len(yp)))
    Xb = Xp[idx]
    err = _sigmoid(Xb @ w) - yp[idx]
    return Xb.T @ err, len(idx)


class GradientShard:
    """Dask actor: one worker's training partitions, answering gradient requests."""

    def __init__(self):
        self.parts: list[tuple[np.ndarray, np.ndarray]] = []

    def load(self, parts: list) -> int:
        self.parts = [(np.asarray(X), np.asarray(y, dtype=np.float64)) for X, y in parts]
        return sum(len(y) for _, y in self.parts)

    def gradient(self, w: np.ndarray, batch_size: int, seeds: list[int]) -> tuple[np.ndarray, int]:
        g = np.zeros_like(w)
        n = 0
        for (Xp, yp), seed in zip(self.parts, seeds):
            gp, k = partition_gradient(Xp, yp, w, batch_size, seed)
            g += gp
            n += k
        return g, n


class SGDLogisticPropensity(PropensityModel):
    """Mini-batch SGD logistic regression with gradients averaged across partitions each step."""

    def __init__(self, categorical: Sequence[str] | None = None, client=None, n_partitions: int | None = None,
                 steps: int = 400, batch_size: int = 256, step0: float = 0.5, decay: float = 0.01,
                 l2: float = 1e-4, seed: int = 0):
        super().__init__(categorical)
        self.client = client
        self.n_partitions = n_partitions
        self.steps = steps
        self.batch_size = batch_size
        self.step0 = step0
        self.decay = decay
        self.l2 = l2
        self.seed = seed
        self.encoder_: OneHotEncoder | None = None
        self.coef_: np.ndarray | None = None
        self.loss_curve_: list[float] = []
        self.fit_seconds_: float | None = None

    def _design(self, X: pd.DataFrame) -> np.ndarray:
        Z = self.encoder_.transform(X)
        return np.hstack([np.ones((len(Z), 1)), Z])

    def fit(self, X: pd.DataFrame, y) -> "SGDLogisticPropensity":
        t0 = time.perf_counter()
        y = as_binary_target(y).astype(np.float64)
        self.feature_names_ = list(X.columns)
        self.encoder_ = OneHotEncoder(categorical_columns(X, self.categorical)).fit(X)
        D = self._design(X)
        rng = np.random.default_rng(self.seed)
        workers = []
        if self.client is not None:
            from pipelines.recsys.cluster import worker_addresses

            workers = worker_addresses(self.client)
        P = self.n_partitions or max(2, len(workers))
        rows = np.array_split(rng.permutation(len(y)), P)
        parts = [(D[r], y[r]) for r in rows]

        if workers:
            shards = [self.client.submit(GradientShard, actor=True, workers=[w], pure=False) for w in workers]
            actors = [s.result() for s in shards]
            owned = [[j for j in range(P) if j % len(actors) == a] for a in range(len(actors))]
            for f in [a.load([parts[j] for j in owned[k]]) for k, a in enumerate(actors)]:
                f.result()

            def gradient(w, seeds):
                calls = [a.gradient(w, self.batch_size, [seeds[j] for j in owned[k]]) for k, a in enumerate(actors)]
                out = [c.result() for c in calls]
                return sum(g for g, _ in out), sum(n for _, n in out)
        else:
            shards = []

            def gradient(w, seeds):
                out = [partition_gradient(Xp, yp, w, self.batch_size, s) for (Xp, yp), s in zip(parts, seeds)]
                return sum(g for g, _ in out), sum(n for _, n in out)

        w = np.zeros(D.shape[1])
        avg = np.zeros_like(w)
        n_avg = 0
        start_avg = self.steps // 2
        self.loss_curve_ = []
        try:
            for t in range(self.steps):
                seeds = rng.integers(0, 2**63, size=P).tolist()
                g, n = gradient(w, seeds)
                w = w - self.step0 / (1.0 + self.decay * t) * (g / max(n, 1) + self.l2 * w)
                if t >= start_avg:
                    avg += w
                    n_avg += 1
                if t % 50 == 0 or t == self.steps - 1:
                    p = np.clip(_sigmoid(D @ w), 1e-12, 1 - 1e-12)
                    self.loss_curve_.append(float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))))
        finally:
            for s in shards:
                s.release()
        self.coef_ = avg / n_avg if n_avg else w
        self.fit_seconds_ = time.perf_counter() - t0
        return self

    def _positive_proba(self, X: pd.DataFrame) -> np.ndarray:
        return _sigmoid(self._design(X) @ self.coef_)
