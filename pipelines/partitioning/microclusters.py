"""Per-node micro-clusters summarised as <centroid o, radius r, processing p, memory m, node l> (sec. 4.2).

Why: the central partitioner never sees profiles, only these summaries (a few hundred instead
of 10^4+ profiles), so it runs in well under a second. Each node runs k-means with
k = ceil(profiles on the node / 30) (sec. 6.1.3: ~30 profiles per micro-cluster).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
from sklearn.cluster import KMeans


@dataclass(frozen=True)
class MicroClusters:
    centroid: np.ndarray  # (M, D)
    radius: np.ndarray  # (M,)
    processing: np.ndarray  # (M,) sum of f(d) beta(|S(d)|)
    memory: np.ndarray  # (M,) sum of |S(d)|
    node: np.ndarray  # (M,) current location l
    labels: np.ndarray  # (n_profiles,) micro-cluster of each profile (global index)
    node_seconds: np.ndarray  # (n_nodes,) k-means wall time per node

    def __len__(self) -> int:
        return len(self.radius)

    def summaries(self) -> list[dict]:
        """The 5-tuples as JSON-ready dicts (what a node would ship to the master)."""
        return [{"o": self.centroid[i].round(6).tolist(), "r": float(self.radius[i]), "p": float(self.processing[i]),
                 "m": float(self.memory[i]), "l": int(self.node[i])} for i in range(len(self))]


def kmeans(x: np.ndarray, k: int, seed: int = 0, init: np.ndarray | None = None) -> KMeans:
    if init is not None and len(init) == k:
        return KMeans(k, init=init, n_init=1, max_iter=100, random_state=seed).fit(x)
    return KMeans(k, n_init=1, max_iter=100, random_state=seed).fit(x)


def build(profiles: np.ndarray, nodes: np.ndarray, processing: np.ndarray, memory: np.ndarray,
          n_nodes: int, per_cluster: int = 30, seed: int = 0) -> MicroClusters:
    """k-means micro-clusters on every node (k = ceil(n_j / per_cluster)) and their summaries."""
    profiles = np.asarray(profiles, dtype=float)
    nodes = np.asarray(nodes, dtype=np.int64)
    if len(profiles) != len(nodes):
        raise ValueError("one node per profile expected")
    labels = np.empty(len(profiles), dtype=np.int64)
    node_of_mc, seconds, offset = [], np.zeros(n_nodes), 0
    for j in range(n_nodes):  # each node clusters its own profiles
        idx = np.flatnonzero(nodes == j)
        if idx.size == 0:
            continue
        k = min(math.ceil(idx.size / per_cluster), idx.size)
        t = time.perf_counter()
        km = kmeans(profiles[idx], k, seed)
        seconds[j] = time.perf_counter() - t
        labels[idx] = km.labels_ + offset
        node_of_mc.append(np.full(k, j))
        offset += k
    return summarise(profiles, labels, processing, memory, np.concatenate(node_of_mc), seconds)


def summarise(profiles, labels, processing, memory, node_of_mc, node_seconds=None) -> MicroClusters:
    """Summaries of given micro-cluster labels (vectorized over profiles)."""
    m = len(node_of_mc)
    counts = np.bincount(labels, minlength=m).astype(float)
    if (counts == 0).any():
        raise ValueError("a micro-cluster has no profile")
    centroid = np.stack([np.bincount(labels, weights=profiles[:, c], minlength=m) for c in range(profiles.shape[1])],
                        axis=1) / counts[:, None]
    dist = np.linalg.norm(profiles - centroid[labels], axis=1)
    radius = np.zeros(m)
    np.maximum.at(radius, labels, dist)
    return MicroClusters(centroid, radius, np.bincount(labels, weights=processing, minlength=m),
                         np.bincount(labels, weights=memory, minlength=m), np.asarray(node_of_mc, dtype=np.int64),
                         labels, np.zeros(0) if node_seconds is None else node_seconds)
