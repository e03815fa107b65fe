"""Regularized ALS written straight from the formulas, one row at a time: the correctness oracle.

Explicit feedback (observed ratings r_ui only):
    x_u = (sum_{i in I_u} y_i y_i^T + lam * I)^-1  sum_{i in I_u} r_ui y_i
    loss = sum_{(u,i) observed} (r_ui - x_u.y_i)^2 + lam * (sum_u |x_u|^2 + sum_i |y_i|^2)

Implicit feedback (Hu, Koren, Volinsky 2008): every (u, i) pair counts; a stored value r_ui > 0
means preference p_ui = 1 with confidence c_ui = 1 + alpha * r_ui, an absent pair p_ui = 0, c_ui = 1:
    x_u = (Y^T C_u Y + lam * I)^-1  Y^T C_u p_u
    loss = sum_{all u,i} c_ui (p_ui - x_u.y_i)^2 + lam * (sum_u |x_u|^2 + sum_i |y_i|^2)

With `weighted_reg=True` (ALS-WR, Zhou et al. 2008, what Spark MLlib does) lam becomes lam * n_u
for a row with n_u stored values (n_u = 1 for an empty row), in both the solve and the loss.

Each half-iteration solves every user with the item factors fixed, then every item with the
user factors fixed, starting from the item factors `Y0`. This module is deliberately slow and
obvious; dask_als must agree with it.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def init_item_factors(n_items: int, rank: int, seed: int = 0, dtype=np.float64) -> np.ndarray:
    """The shared starting point Y0: uniform [0, 1) / sqrt(rank), from numpy default_rng(seed)."""
    return (np.random.default_rng(seed).random((n_items, rank)) / np.sqrt(rank)).astype(dtype)


def _row_reg(R: sp.csr_matrix, reg: float, weighted_reg: bool) -> np.ndarray:
    # an empty row gets lam * 1, which keeps its system solvable and its solution at 0
    counts = np.maximum(np.diff(R.indptr), 1).astype(np.float64)
    return reg * counts if weighted_reg else np.full(R.shape[0], float(reg))


def explicit_loss(R: sp.csr_matrix, X: np.ndarray, Y: np.ndarray, reg: float, weighted_reg: bool = False) -> float:
    """Sum of squared errors over the stored ratings plus the L2 penalty (see module docstring)."""
    R = sp.csr_matrix(R)
    coo = R.tocoo()
    X64, Y64 = np.asarray(X, np.float64), np.asarray(Y, np.float64)
    pred = np.einsum("nk,nk->n", X64[coo.row], Y64[coo.col])
    data = float(np.sum((coo.data - pred) ** 2))
    ru = _row_reg(R, reg, weighted_reg)
    ri = _row_reg(R.T.tocsr(), reg, weighted_reg)
    return data + float(ru @ np.sum(X64 ** 2, axis=1)) + float(ri @ np.sum(Y64 ** 2, axis=1))


def implicit_loss(R: sp.csr_matrix, X: np.ndarray, Y: np.ndarray, reg: float, alpha: float,
                  weighted_reg: bool = False) -> float:
    """Confidence-weighted loss over *all* user x item pairs (see module docstring).

    The sum over absent pairs is sum_all (x_u.y_i)^2 minus the stored pairs' share, with
    sum_all (x_u.y_i)^2 = trace((X^T X)(Y^T Y)), so no dense users x items matrix is built.
    """
    R = sp.csr_matrix(R)
    coo = R.tocoo()
    X64, Y64 = np.asarray(X, np.float64), np.asarray(Y, np.float64)
    s = np.einsum("nk,nk->n", X64[coo.row], Y64[coo.col])
    c = 1.0 + alpha * coo.data.astype(np.float64)
    all_pairs = float(np.sum((X64.T @ X64) * (Y64.T @ Y64)))
    data = all_pairs + float(np.sum(c * (1.0 - s) ** 2 - s ** 2))
    ru = _row_reg(R, reg, weighted_reg)
    ri = _row_reg(R.T.tocsr(), reg, weighted_reg)
    return data + float(ru @ np.sum(X64 ** 2, axis=1)) + float(ri @ np.sum(Y64 ** 2, axis=1))


def solve_explicit_rows(R: sp.csr_matrix, Y: np.ndarray, reg: float, weighted_reg: bool = False) -> np.ndarray:
    """x_u = (sum y_i y_i^T + lam I)^-1 sum r_ui y_i for every row u of R, one np.linalg.solve per row."""
    k = Y.shape[1]
    lam = _row_reg(R, reg, weighted_reg)
    X = np.zeros((R.shape[0], k))
    for u in range(R.shape[0]):
        lo, hi = R.indptr[u], R.indptr[u + 1]
        items, r = R.indices[lo:hi], R.data[lo:hi].astype(np.float64)
        A = lam[u] * np.eye(k)
        b = np.zeros(k)
        for i, r_ui in zip(items, r):
            A += np.outer(Y[i], Y[i])
            b += r_ui * Y[i]
        X[u] = np.linalg.solve(A, b)
    return X


def solve_implicit_rows(R: sp.csr_matrix, Y: np.ndarray, reg: float, alpha: float,
                        weighted_reg: bool = False) -> np.ndarray:
    """x_u = (Y^T C_u Y + lam I)^-1 Y^T C_u p_u for every row u of R, one np.linalg.solve per row."""
    k = Y.shape[1]
    lam = _row_reg(R, reg, weighted_reg)
    YtY = Y.T @ Y
    X = np.zeros((R.shape[0], k))
    for u in range(R.shape[0]):
        lo, hi = R.indptr[u], R.indptr[u + 1]
        A = YtY + lam[u] * np.eye(k)
        b = np.zeros(k)
        for i, r_ui in zip(R.indices[lo:hi], R.data[lo:hi].astype(np.float64)):
            c = 1.0 + alpha * r_ui
            A += (c - 1.0) * np.outer(Y[i], Y[i])
            b += c * Y[i]
        X[u] = np.linalg.solve(A, b)
    return X


def als_reference(R: sp.csr_matrix, Y0: np.ndarray, reg: float, iterations: int, implicit: bool = False,
                  alpha: float = 1.0, weighted_reg: bool = False) -> tuple[np.ndarray, np.ndarray, list[float]]:
    """Run `iterations` full ALS iterations from Y0; returns (X, Y, loss after each iteration)."""
    R = sp.csr_matrix(R, dtype=np.float64)
    Rt = R.T.tocsr()
    Y = np.array(Y0, dtype=np.float64)
    losses: list[float] = []
    X = np.zeros((R.shape[0], Y.shape[1]))
    for _ in range(iterations):
        if implicit:
            X = solve_implicit_rows(R, Y, reg, alpha, weighted_reg)
            Y = solve_implicit_rows(Rt, X, reg, alpha, weighted_reg)
            losses.append(implicit_loss(R, X, Y, reg, alpha, weighted_reg))
        else:
            X = solve_explicit_rows(R, Y, reg, weighted_reg)
            Y = solve_explicit_rows(Rt, X, reg, weighted_reg)
            losses.append(explicit_loss(R, X, Y, reg, weighted_reg))
    return X, Y, losses
