"""Adaptive repartitioning trigger (sec. 4.4): each node compares its micro-clustering now with
the one it kept at the last repartitioning, by NMI, and asks for a repartitioning below a threshold.

Why warm-started: two k-means runs on unchanged profiles from different seeds already disagree
(NMI well below 1 with ~30 profiles per micro-cluster), which would fire the trigger for nothing.
Starting today's k-means from the kept centroids gives NMI = 1 when nothing moved, so the NMI
falls only as profiles drift. The baseline is JSON-serializable (keys, labels, centroids).
"""

from __future__ import annotations

import math

import numpy as np

from pipelines.partitioning.microclusters import kmeans
from pipelines.partitioning.quality import nmi

THRESHOLD = 0.9  # the paper's Figs. 14-15


def baseline(keys, profiles: np.ndarray, per_cluster: int = 30, seed: int = 0) -> dict:
    """A node's micro-clustering right after a repartitioning."""
    profiles = np.asarray(profiles, dtype=float)
    k = max(1, min(math.ceil(len(profiles) / per_cluster), len(profiles)))
    km = kmeans(profiles, k, seed)
    return {"keys": [str(k) for k in keys], "labels": km.labels_.tolist(), "centroids": km.cluster_centers_.tolist()}


def drift(base: dict, keys, profiles: np.ndarray, seed: int = 0) -> float:
    """NMI between the kept micro-clustering and today's (warm-started), over the keys in both."""
    if not base.get("keys"):
        raise ValueError("empty baseline")
    profiles = np.asarray(profiles, dtype=float)
    cent = np.asarray(base["centroids"], dtype=float)
    km = kmeans(profiles, len(cent), seed, init=cent) if len(profiles) >= len(cent) else None
    now = dict(zip((str(k) for k in keys), km.labels_ if km is not None else np.zeros(len(profiles), int)))
    old = dict(zip(base["keys"], base["labels"]))
    common = [k for k in old if k in now]
    if not common:
        return 0.0
    return nmi([old[k] for k in common], [now[k] for k in common])


def should_repartition(nmis, threshold: float = THRESHOLD) -> bool:
    """The master repartitions when any node's NMI fell under the threshold."""
    return bool(np.min(np.asarray(nmis, dtype=float)) < threshold)
