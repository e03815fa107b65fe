"""Ratings as sparse user x item matrices, and the seeded random train/test split.

Every recsys algorithm here takes a scipy CSR matrix (rows = users, columns =
items, stored values = ratings or interaction weights), so a frame of
(user_id, item_id, rating) rows is indexed once, here, and split once, here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp


@dataclass(frozen=True)
class RatingsSplit:
    """A train/test split on one shared index: row u is user `user_ids[u]`, column i is item `item_ids[i]`.

    The index covers every user and item of the whole frame, so a user seen only in the
    test part still has a (empty) train row and a factor row.
    """

    train: sp.csr_matrix
    test: sp.csr_matrix
    user_ids: np.ndarray
    item_ids: np.ndarray

    @property
    def shape(self) -> tuple[int, int]:
        return self.train.shape


def to_csr(users: np.ndarray, items: np.ndarray, values: np.ndarray, shape: tuple[int, int],
           dtype=np.float32) -> sp.csr_matrix:
    """CSR matrix from coordinate arrays; duplicate (user, item) pairs are summed, indices sorted."""
    m = sp.csr_matrix((np.asarray(values, dtype=dtype), (np.asarray(users), np.asarray(items))), shape=shape)
    m.sum_duplicates()
    m.sort_indices()
    return m


def index_values(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sorted distinct values, position of each value in them); np.unique without its slow path.

    numpy 2.4's np.unique took 40 s on 20M int64 here, a sort plus searchsorted takes ~3 s.
    """
    v = np.asarray(values)
    s = np.sort(v)
    if len(s):
        keep = np.empty(len(s), dtype=bool)
        keep[0] = True
        np.not_equal(s[1:], s[:-1], out=keep[1:])
        s = s[keep]
    return s, np.searchsorted(s, v).astype(np.int64)


def random_split(df: pd.DataFrame, test_fraction: float = 0.2, seed: int = 0, user_col: str = "user_id",
                 item_col: str = "item_id", value_col: str = "rating") -> RatingsSplit:
    """Fixed seeded random split of the rating rows: a permutation from numpy's default_rng(seed),
    the first round(test_fraction * n) rows of it are the test set, the rest train.

    Users and items are indexed by their sorted unique ids over the whole frame.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError("test_fraction must be in (0, 1)")
    user_ids, u = index_values(df[user_col].to_numpy())
    item_ids, i = index_values(df[item_col].to_numpy())
    r = df[value_col].to_numpy(dtype=np.float32)
    n = len(df)
    perm = np.random.default_rng(seed).permutation(n)
    n_test = int(round(test_fraction * n))
    test_rows, train_rows = perm[:n_test], perm[n_test:]
    shape = (len(user_ids), len(item_ids))
    return RatingsSplit(
        train=to_csr(u[train_rows], i[train_rows], r[train_rows], shape),
        test=to_csr(u[test_rows], i[test_rows], r[test_rows], shape),
        user_ids=user_ids,
        item_ids=item_ids,
    )
