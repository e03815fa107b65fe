"""Accuracy of a factor model on a held-out split: RMSE, precision@k and MAP@k.

The ranking protocol (the one every method in bench/als.py is scored with):

1. Positives of user u are the test ratings of u with value >= 4 (`positive_threshold`).
2. Users with no test positive are skipped (they count in neither the numerator nor the
   denominator of the means).
3. Candidates of u are all items except those u rated in the *train* part (any rating
   value); test items rated < 4 stay candidates and count as misses.
4. The top k candidates by x_u . y_i (ties: lower item index first) are the list.
5. precision@k = hits in the list / k (always divided by k, even when u has fewer than k
   positives).
6. AP@k = (1 / min(k, |positives|)) * sum over list positions j = 1..k of
   [item j is a positive] * (hits in positions 1..j) / j; MAP@k is the mean AP@k.
7. Both are means over the evaluated users; `n_users` says how many that was.

RMSE is over every test rating, predicting offset + x_u . y_i (offset = the model's rating
centre, 0 when it was trained on raw ratings), optionally clipped to the rating scale.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from pipelines.recsys.topn import top_n_indices


def rmse(actual: np.ndarray, predicted: np.ndarray) -> float:
    """Root mean squared error of two equal-length arrays."""
    a = np.asarray(actual, dtype=np.float64)
    p = np.asarray(predicted, dtype=np.float64)
    if a.shape != p.shape or a.size == 0:
        raise ValueError("rmse needs two non-empty arrays of the same shape")
    return float(np.sqrt(np.mean((a - p) ** 2)))


def predict_pairs(user_factors: np.ndarray, item_factors: np.ndarray, users: np.ndarray, items: np.ndarray,
                  offset: float = 0.0, clip: tuple[float, float] | None = None, chunk: int = 1 << 20) -> np.ndarray:
    """offset + x_u . y_i for each (users[j], items[j]) pair, optionally clipped."""
    out = np.empty(len(users), dtype=np.float64)
    for s in range(0, len(users), chunk):
        u, i = users[s:s + chunk], items[s:s + chunk]
        out[s:s + chunk] = np.einsum("nk,nk->n", user_factors[u].astype(np.float64), item_factors[i].astype(np.float64))
    out += offset
    if clip is not None:
        np.clip(out, clip[0], clip[1], out=out)
    return out


def rating_rmse(user_factors: np.ndarray, item_factors: np.ndarray, test: sp.csr_matrix, offset: float = 0.0,
                clip: tuple[float, float] | None = None) -> float:
    """RMSE over every stored test rating (see the module docstring)."""
    coo = sp.coo_matrix(test)
    pred = predict_pairs(user_factors, item_factors, coo.row, coo.col, offset=offset, clip=clip)
    return rmse(coo.data, pred)


def precision_at_k(recommended: np.ndarray, positives: list[set] | list[np.ndarray], k: int = 10) -> np.ndarray:
    """Per-user precision@k: hits among the first k recommended items / k (rows of -1 are empty slots)."""
    out = np.empty(len(recommended), dtype=np.float64)
    for r, (rec, pos) in enumerate(zip(recommended, positives)):
        pos = set(np.asarray(list(pos)).tolist())
        out[r] = sum(1 for item in rec[:k] if item >= 0 and item in pos) / k
    return out


def average_precision_at_k(recommended: np.ndarray, positives: list[set] | list[np.ndarray], k: int = 10) -> np.ndarray:
    """Per-user AP@k = sum_j [rel_j] * precision@j / min(k, |positives|); 0 for a user without positives."""
    out = np.zeros(len(recommended), dtype=np.float64)
    for r, (rec, pos) in enumerate(zip(recommended, positives)):
        pos = set(np.asarray(list(pos)).tolist())
        if not pos:
            continue
        hits, total = 0, 0.0
        for j, item in enumerate(rec[:k], start=1):
            if item >= 0 and item in pos:
                hits += 1
                total += hits / j
        out[r] = total / min(k, len(pos))
    return out


def test_positives(test: sp.csr_matrix, positive_threshold: float = 4.0) -> list[np.ndarray]:
    """Per user row, the test items rated >= positive_threshold."""
    test = sp.csr_matrix(test)
    out = []
    for u in range(test.shape[0]):
        lo, hi = test.indptr[u], test.indptr[u + 1]
        out.append(test.indices[lo:hi][test.data[lo:hi] >= positive_threshold])
    return out


def ranking_metrics(user_factors: np.ndarray, item_factors: np.ndarray, train: sp.csr_matrix, test: sp.csr_matrix,
                    k: int = 10, positive_threshold: float = 4.0, users: np.ndarray | None = None) -> dict:
    """precision@k and MAP@k by the protocol in the module docstring.

    `users` restricts the evaluation to a subset of user rows (e.g. a sample on a very large
    problem); users among them without a test positive are still skipped.
    """
    pos = test_positives(test, positive_threshold)
    candidates = np.arange(len(pos)) if users is None else np.asarray(users, dtype=np.int64)
    evaluated = np.array([u for u in candidates if len(pos[u]) > 0], dtype=np.int64)
    if len(evaluated) == 0:
        raise ValueError("no user has a test positive")
    rec, _ = top_n_indices(user_factors, item_factors, seen=train, n=k, users=evaluated)
    pos_e = [pos[u] for u in evaluated]
    return {
        f"precision_at_{k}": float(precision_at_k(rec, pos_e, k).mean()),
        f"map_at_{k}": float(average_precision_at_k(rec, pos_e, k).mean()),
        "n_users": int(len(evaluated)),
    }
