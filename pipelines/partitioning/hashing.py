"""Consistent hashing of profile keys onto nodes: the initial placement p_0 = H_N (sec. 4.2) and
the "hash" baseline.

Why consistent: when N changes only ~1/N of the keys move, so the baseline is not penalised for a
resize it did not need. Key hashes are blake2b (stable across processes, unlike hash()).
"""

from __future__ import annotations

import functools
import hashlib

import numpy as np


def key_hashes(keys) -> np.ndarray:
    """Stable 64-bit hash of each key (str or int)."""
    return np.frombuffer(b"".join(hashlib.blake2b(str(k).encode(), digest_size=8).digest() for k in keys),
                         dtype=">u8").astype(np.uint64)


@functools.lru_cache(maxsize=64)
def ring(n_nodes: int, vnodes: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """(sorted point hashes, node of each point) for n_nodes nodes with vnodes points each (cached,
    read-only: the stream's router places keys one at a time)."""
    if n_nodes < 1:
        raise ValueError("need at least one node")
    labels = [f"node-{j}#{v}" for j in range(n_nodes) for v in range(vnodes)]
    points = key_hashes(labels)
    owner = np.repeat(np.arange(n_nodes), vnodes)
    order = np.argsort(points, kind="stable")
    points, owner = points[order], owner[order]
    points.flags.writeable = owner.flags.writeable = False
    return points, owner


def place(keys, n_nodes: int, vnodes: int = 256) -> np.ndarray:
    """Node of each key: the first ring point clockwise from the key's hash."""
    points, owner = ring(n_nodes, vnodes)
    idx = np.searchsorted(points, key_hashes(keys), side="left") % len(points)
    return owner[idx]
