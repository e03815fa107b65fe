"""A node's micro-cluster summaries of its live profiles, and the master's view of all of them.

Why the member keys travel with each summary: the greedy places micro-clusters, the routing
table routes customers, so the master needs who is in each micro-cluster (a list of ids, not the
profiles; the profiles never leave their node). The node also reports the adaptive trigger's NMI
against its micro-clustering right after the routing version it is on was installed.
"""

from __future__ import annotations

import math
import time

import numpy as np

from pipelines.partitioning import profiles as P
from pipelines.partitioning import trigger
from pipelines.partitioning.microclusters import MicroClusters, kmeans, summarise


def node_summary(node: int, version: int, active: dict[str, dict], baseline: dict | None,
                 schema: P.Schema = P.TELCO, per_cluster: int = 30, seed: int = 0,
                 now: float | None = None) -> tuple[dict, dict | None]:
    """(NodeSummary, baseline to keep) of a node's active records {customer: record}. The baseline
    is taken on the first summary of a routing version; later ones report the NMI against it."""
    keys = sorted(active)
    at = time.time() if now is None else now
    if not keys:
        return {"kind": "summary", "node": node, "version": version, "at": at, "profiles": 0, "nmi": None,
                "clusters": []}, baseline
    x = np.asarray([P.profile_vector(active[k]["state"], schema) for k in keys])
    costs = np.asarray([P.costs(active[k]["state"], schema) for k in keys])
    k = min(math.ceil(len(keys) / per_cluster), len(keys))
    t = time.perf_counter()
    km = kmeans(x, k, seed)
    seconds = time.perf_counter() - t
    mc = summarise(x, km.labels_, costs[:, 0], np.maximum(costs[:, 1], 1.0), np.full(k, node))
    members: list[list[str]] = [[] for _ in range(k)]
    for key, label in zip(keys, km.labels_):
        members[int(label)].append(key)
    clusters = [{**s, "keys": members[i]} for i, s in enumerate(mc.summaries())]
    nmi = None
    if baseline is None or baseline.get("version") != version:
        baseline = {"version": version, **trigger.baseline(keys, x, per_cluster, seed)}
    else:
        nmi = trigger.drift(baseline, keys, x, seed)
    return {"kind": "summary", "node": node, "version": version, "at": at, "profiles": len(keys), "nmi": nmi,
            "clusters": clusters, "seconds": seconds}, baseline


def gather(summaries: list[dict], n_nodes: int) -> tuple[MicroClusters, list[str]]:
    """One MicroClusters over every node's summaries (the latest per node), and the key of each profile."""
    rows = [c for s in sorted(summaries, key=lambda s: s["node"]) for c in s["clusters"] if c["keys"]]
    if not rows:
        raise ValueError("no micro-cluster summary with profiles: nothing to repartition")
    bad = [s["node"] for s in summaries if not 0 <= s["node"] < n_nodes]
    if bad:
        raise ValueError(f"summaries of nodes {bad} outside [0, {n_nodes})")
    keys = [k for c in rows for k in c["keys"]]
    if len(set(keys)) != len(keys):
        raise ValueError("a profile appears in two summaries (summaries from different routing versions?)")
    labels = np.repeat(np.arange(len(rows)), [len(c["keys"]) for c in rows])
    mc = MicroClusters(np.asarray([c["o"] for c in rows], dtype=float), np.asarray([c["r"] for c in rows]),
                       np.asarray([c["p"] for c in rows]), np.asarray([c["m"] for c in rows]),
                       np.asarray([c["l"] for c in rows], dtype=np.int64), labels,
                       np.asarray([s.get("seconds", 0.0) for s in summaries]))
    return mc, keys
