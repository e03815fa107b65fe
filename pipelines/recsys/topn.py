"""Top-N unseen items per user from factor matrices: what a recommendation snapshot publishes.

Scores are inner products x_u . y_i; items the user already has in `seen` are never
recommended. Users are scored in batches so a large catalogue never needs a full
users x items score matrix in memory.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp


def top_n_indices(user_factors: np.ndarray, item_factors: np.ndarray, seen: sp.csr_matrix | None = None,
                  n: int = 10, users: np.ndarray | None = None, batch_size: int = 4096,
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Column indices (len(users), n) of each user's best unseen items, best first, and their scores.

    Where a user has fewer than n unseen items the tail is index -1 with score -inf.
    Ties are broken by the lower item index, so the result is deterministic.
    """
    X = np.asarray(user_factors)
    Y = np.asarray(item_factors)
    users = np.arange(X.shape[0]) if users is None else np.asarray(users, dtype=np.int64)
    n_items = Y.shape[0]
    n_eff = min(n, n_items)
    out_idx = np.full((len(users), n), -1, dtype=np.int64)
    out_score = np.full((len(users), n), -np.inf, dtype=np.float64)
    if seen is not None:
        seen = sp.csr_matrix(seen)
    for start in range(0, len(users), batch_size):
        ub = users[start:start + batch_size]
        scores = (X[ub] @ Y.T).astype(np.float64)
        if seen is not None:
            rows, cols = seen[ub].nonzero()
            scores[rows, cols] = -np.inf
        if n_eff < n_items:
            part = np.argpartition(-scores, n_eff - 1, axis=1)[:, :n_eff]
        else:
            part = np.tile(np.arange(n_items), (len(ub), 1))
        part_scores = np.take_along_axis(scores, part, axis=1)
        # sort by score descending, then item index ascending (lexsort: last key is primary)
        order = np.lexsort((part, -part_scores), axis=1)
        idx = np.take_along_axis(part, order, axis=1)
        sc = np.take_along_axis(part_scores, order, axis=1)
        idx = np.where(np.isneginf(sc), -1, idx)
        out_idx[start:start + len(ub), :n_eff] = idx
        out_score[start:start + len(ub), :n_eff] = sc
    return out_idx, out_score


def top_n(user_factors: np.ndarray, item_factors: np.ndarray, seen: sp.csr_matrix | None = None, n: int = 10,
          users: np.ndarray | None = None, user_ids: np.ndarray | None = None,
          item_ids: np.ndarray | None = None) -> pd.DataFrame:
    """Top-N unseen items per user as rows (user_id, item_id, rank, score); rank 1 is the best.

    `users` picks factor rows (default: all). `user_ids` / `item_ids` map row / column
    positions to external ids (default: the positions themselves).
    """
    users = np.arange(np.asarray(user_factors).shape[0]) if users is None else np.asarray(users, dtype=np.int64)
    idx, score = top_n_indices(user_factors, item_factors, seen=seen, n=n, users=users)
    u = np.repeat(users, idx.shape[1])
    i = idx.ravel()
    rank = np.tile(np.arange(1, idx.shape[1] + 1), len(users))
    s = score.ravel()
    keep = i >= 0
    u, i, rank, s = u[keep], i[keep], rank[keep], s[keep]
    if user_ids is not None:
        u = np.asarray(user_ids)[u]
    if item_ids is not None:
        i = np.asarray(item_ids)[i]
    return pd.DataFrame({"user_id": u, "item_id": i, "rank": rank.astype(np.int32), "score": s})
