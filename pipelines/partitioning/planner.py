"""The master's decision: from the nodes' micro-cluster summaries to a new routing version.

Why here and not in the nodes: the greedy (repartition.py) needs every node's summaries at once.
The qualities of a plan are computed on the summaries too, since the profiles stay on their nodes:
Q^b and Q^m are exact (micro-cluster loads and states add up), Q^c is an estimate in which each
centroid stands for its members (central and per-node clustering A run on the centroids, NMI
weighted by micro-cluster size). On centroids, A uses diagonal covariances: a few hundred points
cannot support full 12-D covariances (BIC then always picks k = 1, measured), while the centroids
average away the within-group correlation that made A full-covariance on profiles.
"""

from __future__ import annotations

import time

import numpy as np

from sklearn.mixture import GaussianMixture

from pipelines.partitioning import quality, trigger
from pipelines.partitioning.microclusters import MicroClusters
from pipelines.partitioning.repartition import RepartitionParams, repartition
from pipelines.partitioning.summaries import gather


def decide(summaries: list[dict], threshold: float = trigger.THRESHOLD, force: bool = False) -> tuple[bool, str]:
    """The adaptive trigger over the nodes' reported NMIs (sec. 4.4), or a forced run."""
    nmis = [s["nmi"] for s in summaries if s.get("nmi") is not None]
    if force:
        return True, "forced"
    if not nmis:
        return False, "no node has a baseline yet (first summary after a routing version)"
    if trigger.should_repartition(nmis, threshold):
        return True, f"min node NMI {min(nmis):.3f} < {threshold}"
    return False, f"min node NMI {min(nmis):.3f} >= {threshold}"


def centroid_clustering(x: np.ndarray, k_max: int = 12, seed: int = 0, patience: int = 2) -> np.ndarray:
    """A on micro-cluster centroids: the BIC-best diagonal GMM with k in 1..k_max."""
    x = np.asarray(x, dtype=float)
    best_bic, best, worse = np.inf, np.zeros(len(x), dtype=np.int64), 0
    if len(x) < 2:  # a node left with one micro-cluster (or none) is one cluster; a GMM needs two samples
        return best
    for k in range(1, min(k_max, len(x)) + 1):
        gm = GaussianMixture(k, covariance_type="diag", reg_covar=1e-4, random_state=seed).fit(x)
        bic = gm.bic(x)
        if bic < best_bic:
            best_bic, best, worse = bic, gm.predict(x), 0
        else:
            worse += 1
            if worse >= patience:
                break
    return best


def _per_node(x, nodes, n_nodes, k_max, seed) -> np.ndarray:
    labels = np.zeros(len(x), dtype=np.int64)
    for j in range(n_nodes):
        idx = np.flatnonzero(nodes == j)
        if idx.size:
            labels[idx] = centroid_clustering(x[idx], k_max, seed)
    return labels


def qualities(mc: MicroClusters, before: np.ndarray, after: np.ndarray, n_nodes: int, use_memory: bool = True,
              sigma: float = 0.5, k_max: int = 12, seed: int = 0) -> dict:
    """Q^c (estimated on centroids), Q^b, Q^m and Q of the placement `after` of micro-clusters."""
    size = np.bincount(mc.labels, minlength=len(mc))
    central = np.repeat(centroid_clustering(mc.centroid, k_max, seed), size)
    local = np.repeat(_per_node(mc.centroid, after, n_nodes, k_max, seed), size)
    qc = quality.cluster_quality(central, np.repeat(after, size), local)
    qb = quality.balance_quality(after, mc.processing, mc.memory, n_nodes, use_memory)
    qm = quality.migration_quality(before, after, mc.memory)
    return {"cluster_quality": qc, "balance_quality": qb, "migration_quality": qm,
            "overall_quality": quality.overall_quality(qc, qb, qm, sigma)}


def plan(summaries: list[dict], n_nodes: int, params: RepartitionParams = RepartitionParams(),
         threshold: float = trigger.THRESHOLD, force: bool = False, with_qualities: bool = True) -> dict:
    """Decide, and when repartitioning, the moves {customer: node} of the next version and its figures."""
    decided, reason = decide(summaries, threshold, force)
    versions = sorted({s["version"] for s in summaries})
    nmis = [s["nmi"] for s in summaries if s.get("nmi") is not None]
    out = {"decided": decided, "reason": reason, "version": versions[-1] if versions else None,
           "summaries": len(summaries), "min_nmi": min(nmis) if nmis else None, "moves": {}}
    if len(versions) > 1:
        raise ValueError(f"summaries from routing versions {versions}: wait for every node to report the newest")
    if not decided:
        return out
    mc, keys = gather(summaries, n_nodes)
    t = time.perf_counter()
    res = repartition(mc, n_nodes, params)
    seconds = time.perf_counter() - t
    after = res.mc_nodes
    changed = np.flatnonzero(after != mc.node)
    per_profile = after[mc.labels]
    moves = {keys[i]: int(per_profile[i]) for i in np.flatnonzero(per_profile != mc.node[mc.labels])}
    out.update({"moves": moves, "profiles": len(keys), "microclusters": len(mc),
                "moved_microclusters": int(changed.size), "moved_profiles": len(moves),
                "moved_state": float(mc.memory[changed].sum()), "total_state": float(mc.memory.sum()),
                "budget": res.budget, "partition_seconds": seconds,
                "microcluster_seconds": float(np.mean(mc.node_seconds)) if len(mc.node_seconds) else None})
    if with_qualities:
        out["before"] = qualities(mc, mc.node, mc.node, n_nodes, params.use_memory)
        out["after"] = qualities(mc, mc.node, after, n_nodes, params.use_memory)
    return out
