"""Offline simulation of the partitioned profile clustering: the CDR stream in epochs, profiles
over a window, hash placement first, then repartitioning steps; every quality of sec. 3 per step.

Why offline: the paper's trends (Figs. 6-15) are about placements, not about a broker, so the
same functions the stream will call are driven here directly from numpy arrays.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from pipelines.partitioning import clustering, hashing, microclusters, quality
from pipelines.partitioning.profiles import Window, WindowCounts
from pipelines.partitioning.repartition import RepartitionParams, repartition
from pipelines.partitioning.workload import Workload, WorkloadParams


@dataclass(frozen=True)
class SimParams:
    steps: int = 8  # repartitioning steps (one after each epoch of the stream)
    window: Window = field(default_factory=lambda: Window(bucket_s=6 * 3600.0, buckets=28))
    per_cluster: int = 30
    k_max: int = 12  # BIC search range of the clustering algorithm A
    sigma: float = 0.5
    seed: int = 0


def score(x, nodes, prev_nodes, processing, memory, central, n_nodes, sim: SimParams, use_memory: bool) -> dict:
    """Q^c, Q^b, Q^m and Q of one placement (central = labels of the centralized clustering)."""
    local = clustering.per_node(x, nodes, n_nodes, sim.k_max, sim.seed)
    qc = quality.cluster_quality(central, nodes, local)
    qb = quality.balance_quality(nodes, processing, memory, n_nodes, use_memory)
    qm = quality.migration_quality(prev_nodes, nodes, memory)
    return {"cluster_quality": qc, "balance_quality": qb, "migration_quality": qm,
            "overall_quality": quality.overall_quality(qc, qb, qm, sim.sigma)}


def run_static(wp: WorkloadParams = WorkloadParams(), rp: RepartitionParams = RepartitionParams(),
               sim: SimParams = SimParams(), progress=None) -> dict:
    """Stream 10^5 N CDRs in `steps` epochs; after each epoch build micro-clusters on the current
    placement and repartition. Scores the final placement (and the hash one) on the final profiles."""
    wl = Workload.make(wp)
    n = wp.n_nodes
    counts = WindowCounts(wp.n_customers, sim.window, wl.schema)
    keys = wl.keys()
    hash_nodes = hashing.place(keys, n)
    nodes = hash_nodes.copy()
    edges = np.linspace(0.0, wp.duration_s, sim.steps + 1)
    per_epoch = np.diff(np.round(np.linspace(0, wp.n_cdrs, sim.steps + 1)).astype(int))
    history, mc_seconds, part_seconds = [], [], []
    for s in range(sim.steps):
        c = wl.cdrs(int(per_epoch[s]), edges[s], edges[s + 1])
        counts.add(c.customer, c.ts, c.values)
        x = counts.profiles()
        proc, mem = counts.costs()
        mem = np.maximum(mem, 1.0)  # a customer with no call in the window still holds an empty state
        mc = microclusters.build(x, nodes, proc, mem, n, sim.per_cluster, sim.seed + s)
        res = repartition(mc, n, rp)
        new = res.profile_nodes(mc)
        mc_seconds.append(float(mc.node_seconds[mc.node_seconds > 0].mean()))
        part_seconds.append(res.seconds)
        history.append({"step": s + 1, "microclusters": len(mc), "moved_share": float(mem[new != nodes].sum() / mem.sum()),
                        "budget_share": res.budget / float(mem.sum()),
                        "migration_quality": quality.migration_quality(nodes, new, mem),
                        "partition_seconds": res.seconds, "microcluster_seconds": mc_seconds[-1],
                        "microcluster_max_node_seconds": float(mc.node_seconds.max())})
        prev, nodes = nodes, new
        if progress:
            progress(f"step {s + 1}/{sim.steps}: {len(mc)} micro-clusters, moved {history[-1]['moved_share']:.3f}, "
                     f"partition {res.seconds:.3f}s")
    t = time.perf_counter()
    central = clustering.gmm_bic(x, sim.k_max, sim.seed)
    central_seconds = time.perf_counter() - t
    final = score(x, nodes, prev, proc, mem, central, n, sim, rp.use_memory)
    hashed = score(x, hash_nodes, hash_nodes, proc, mem, central, n, sim, rp.use_memory)
    ideal = ideal_placement(wl.assignment, proc, n)
    oracle = score(x, ideal, ideal, proc, mem, central, n, sim, rp.use_memory)
    first = history[0]
    return {
        **final,
        "hash_overall_quality": hashed["overall_quality"], "hash_cluster_quality": hashed["cluster_quality"],
        "hash_balance_quality": hashed["balance_quality"],
        "type_contiguous_cluster_quality": oracle["cluster_quality"],
        "type_contiguous_balance_quality": oracle["balance_quality"],
        "first_step_migration_quality": first["migration_quality"],
        "mean_migration_quality": float(np.mean([h["migration_quality"] for h in history])),
        "central_clusters": int(central.max() + 1), "central_nmi_vs_types": quality.nmi(central, wl.assignment),
        "partition_seconds": float(np.mean(part_seconds)), "partition_seconds_max": float(np.max(part_seconds)),
        "microcluster_seconds": float(np.mean(mc_seconds)),
        "central_clustering_seconds": central_seconds,
        "profiles": wp.n_customers, "cdrs": wp.n_cdrs, "history": history,
    }


def ideal_placement(types: np.ndarray, processing: np.ndarray, n_nodes: int) -> np.ndarray:
    """Reference, not an algorithm of the paper: customers sorted by true type and cut into N
    consecutive runs of equal processing load (what a perfect type-aware balancer would do)."""
    order = np.lexsort((np.arange(len(types)), types))
    cum = np.cumsum(processing[order])
    node_sorted = np.minimum((cum - processing[order] / 2) / cum[-1] * n_nodes, n_nodes - 1).astype(np.int64)
    out = np.empty(len(types), dtype=np.int64)
    out[order] = node_sorted
    return out
