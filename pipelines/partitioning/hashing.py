"""Consistent hashing of profile keys onto nodes: the initial placement p_0 = H_N (sec. 4.2) and
the "hash" baseline.

Why consistent: when N changes only ~1/N of the keys move, so the baseline is not penalised for a
resize it did not need. Key hashes are blake2b (stable across processes, unlike hash()).
"""

from __future__ import annotations

import hashlib

import numpy as np


def key_hashes(keys) -> np.ndarray:
    """Stable 64-bit hash of each key (str or int)."""
    return np.frombuffer(b"".join(hashlib.blake2b(str(k).encode(), digest_size=8).digest() for k in keys),
                         dtype=">u8").astype(np.uint64)


def ring(n_nodes: int, vnodes: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """(sorted point hashes, node of each point) for n_nodes nodes with vnodes points each."""
    if n_nodes < 1:
        raise ValueError("need at least one node")
    labels = [f"node-{j}#{v}" for j in range(n_nodes) for v in range(vnodes)]
    points = key_hashes(labels)
    owner = np.repeat(np.arange(n_nodes), vnodes)
    order = np.argsort(points, kind="stable")
    return points[order], owner[order]


def place(keys, n_nodes: int, vnodes: int = 256) -> np.ndarray:
    """Node of each key: the first ring point clockwise from the key's hash."""
    points, owner = ring(n_nodes, vnodes)
    idx = np.searchsorted(points, key_hashes(keys), side="left") % len(points)
    return owner[idx]
