"""The `implicit` library's ALS (0.7.x, CPU) behind the same input and output as dask_als.

Same model as dask_als(implicit=True): a stored value r_ui >= 0 means preference 1 with
confidence 1 + alpha * r_ui. `implicit` reads the matrix values as the confidence itself
(its alpha multiplies them), so the matrix is passed as 1 + alpha * R with its alpha = 1.
Its solver is conjugate gradient (3 steps per row per half-iteration) instead of the exact
Cholesky solve, and its initial factors are its own (uniform [0, 0.01)), so the factors are
close to, not equal to, dask_als's. BLAS is held to one thread during the fit, as `implicit`
asks; its own parallelism is `num_threads` (0 = every core).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


@dataclass
class ImplicitResult:
    """Factors (users x rank, items x rank, float32) and the fit's wall time."""

    user_factors: np.ndarray
    item_factors: np.ndarray
    fit_seconds: float
    params: dict

    def top_n(self, seen: sp.csr_matrix | None = None, n: int = 10, users: np.ndarray | None = None,
              user_ids: np.ndarray | None = None, item_ids: np.ndarray | None = None) -> pd.DataFrame:
        """Top-N unseen items per user, the same frame as pipelines.recsys.topn.top_n."""
        from pipelines.recsys.topn import top_n

        return top_n(self.user_factors, self.item_factors, seen=seen, n=n, users=users, user_ids=user_ids,
                     item_ids=item_ids)


def fit_implicit(ratings: sp.spmatrix, *, rank: int = 10, reg: float = 0.1, alpha: float = 1.0,
                 iterations: int = 10, seed: int = 0, num_threads: int = 0, use_cg: bool = True) -> ImplicitResult:
    """Fit implicit.cpu.als.AlternatingLeastSquares on users x items `ratings` (confidence 1 + alpha * r)."""
    from threadpoolctl import threadpool_limits
    from implicit.cpu.als import AlternatingLeastSquares

    C = sp.csr_matrix(ratings, dtype=np.float32, copy=True)
    C.data = 1.0 + alpha * C.data
    with threadpool_limits(limits=1, user_api="blas"):
        model = AlternatingLeastSquares(factors=rank, regularization=reg, alpha=1.0, iterations=iterations,
                                        random_state=seed, num_threads=num_threads, use_cg=use_cg,
                                        calculate_training_loss=False)
        t0 = time.perf_counter()
        model.fit(C, show_progress=False)
        fit_s = time.perf_counter() - t0
    return ImplicitResult(
        user_factors=np.asarray(model.user_factors), item_factors=np.asarray(model.item_factors), fit_seconds=fit_s,
        params=dict(rank=rank, reg=reg, alpha=alpha, iterations=iterations, seed=seed, num_threads=num_threads,
                    use_cg=use_cg, library="implicit " + _version()),
    )


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("implicit")
    except Exception:  # pragma: no cover - metadata missing
        return "unknown"
