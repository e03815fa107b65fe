"""The central greedy repartitioner of sec. 4.2-4.3 (Algorithm 1) over micro-cluster summaries.

Why greedy over summaries: a few hundred micro-clusters, not 10^4+ profiles, reach the master,
and each is placed once, largest state first, on the node of highest affinity
    A(M_i, j) = A^m(M_i, j) * (1 - ((1 - alpha') A^c(M_i, j) + alpha' A^b(M_i, j)))     (eq. 8)
  - A^c (eq. 5): distance from M_i's centroid to the k nearest micro-clusters already on node j,
    normalised over nodes. Eq. 5 says "sum"; sec. 6.2.5 says "average". We take the average, which
    equals the sum once every node holds k micro-clusters and does not favour nearly empty nodes
    before that. A node with nothing yet uses its initial centre (sec. 4.3.1): k-means with N
    clusters over the micro-cluster centroids. The paper only says "assign each one to one of the
    nodes"; we start k-means from the nodes' current centres when that is about as good as a fresh
    start, and match centres to nodes (Hungarian) by the state they hold, so that repartitioning an
    already clustered placement does not relabel nodes and move everything.
  - A^b (eq. 6): node j's processing load after placing M_i over the sum of that over nodes; with
    `use_memory` the mean of that and the same ratio for memory (matching Q^b of sec. 3.3).
  - A^m (eq. 7): g<c,G>(R + m_i 1(l_i != j)), g(x) = (e^c - e^{cx/G}) / (e^c - 1), so g(0) = 1,
    g(G) = 0; G = (2/N) * total state (twice the state per node); R = state moved so far.
  - alpha' = alpha * l<d,L>(x) (eq. 9), l(x) = (e^{dx/L} - 1) / (e^{d/10} - 1) below L/10, else 1;
    x = load placed so far (fraction of the total; mean of processing and memory with use_memory).
Since g < 0 past the budget while staying home keeps g(R) > 0, no move ever overruns G. When no
node has a positive A (the home node is gone after a scale-in), the combined affinity decides.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.cluster import KMeans

from pipelines.partitioning.microclusters import MicroClusters


@dataclass(frozen=True)
class RepartitionParams:
    alpha: float = 0.5
    k_neighbours: int = 10
    migration_c: float = 2.0
    scaler_d: float = 2.0
    budget_nodes: float = 2.0  # G = budget_nodes * state per node
    use_memory: bool = True
    seed: int = 0


def g_migration(x, G: float, c: float = 2.0):
    """g<c,G>(x) = a - b e^{cx/G} with g(0) = 1 and g(G) = 0."""
    if G <= 0:
        raise ValueError("migration budget G must be positive")
    return (np.exp(c) - np.exp(c * np.asarray(x, dtype=float) / G)) / (np.exp(c) - 1.0)


def l_scaler(x, L: float, d: float = 2.0):
    """l<d,L>(x) = a' - b' e^{dx/L} below L/10 with l(0) = 0 and l(L/10) = 1; 1 from L/10 on."""
    x = np.asarray(x, dtype=float)
    return np.where(x < L / 10.0, (np.exp(d * x / L) - 1.0) / (np.exp(d / 10.0) - 1.0), 1.0)


def clustering_disaffinity(dist_to_members: np.ndarray, centre_dist: np.ndarray, k: int) -> np.ndarray:
    """Eq. 5 (average reading): rows = nodes, columns = distances to that node's members (inf = not
    a member). Nodes without members use centre_dist. Normalised to sum to 1 over nodes."""
    n, m = dist_to_members.shape
    kk = max(1, min(k, m))
    part = np.partition(dist_to_members, kk - 1, axis=1)[:, :kk] if m > kk else dist_to_members
    finite = np.isfinite(part)
    cnt = finite.sum(axis=1)
    s = np.where(finite, part, 0.0).sum(axis=1)
    mean = np.where(cnt > 0, s / np.maximum(cnt, 1), centre_dist)
    total = mean.sum()
    return np.full(n, 1.0 / n) if total <= 0 else mean / total


def balance_disaffinity(item_load: float, node_loads: np.ndarray) -> np.ndarray:
    """Eq. 6: C_ij / sum_l C_il with C_ij = load of M_i + load already on node j."""
    c = item_load + np.asarray(node_loads, dtype=float)
    total = c.sum()
    return np.full(len(c), 1.0 / len(c)) if total <= 0 else c / total


def affinity(am, ac, ab, alpha: float):
    """Eq. 8."""
    return np.asarray(am) * (1.0 - ((1.0 - alpha) * np.asarray(ac) + alpha * np.asarray(ab)))


def initial_centres(mc: MicroClusters, n_nodes: int, seed: int = 0, keep_tolerance: float = 0.05) -> np.ndarray:
    """Sec. 4.3.1: k-means (N) over the micro-cluster centroids, one centre per node.

    Two starts: from each node's current centre of state (so a centre keeps meaning the same node
    from one repartitioning to the next) and k-means++. The warm one is kept unless the fresh one
    has an inertia lower by more than keep_tolerance (after hashing every node's centre is the same
    point, and k-means++ wins). Centres are then matched to the nodes that hold most of their state.
    """
    k = min(n_nodes, len(mc))
    fresh = KMeans(k, n_init=3, random_state=seed).fit(mc.centroid)
    best = fresh
    valid = mc.node < n_nodes
    held = np.bincount(mc.node[valid], weights=mc.memory[valid], minlength=n_nodes)
    if k == n_nodes and (held > 0).all():
        warm_init = np.stack([np.average(mc.centroid[valid & (mc.node == j)], axis=0,
                                         weights=mc.memory[valid & (mc.node == j)]) for j in range(n_nodes)])
        if len(np.unique(warm_init.round(9), axis=0)) == n_nodes:
            warm = KMeans(k, init=warm_init, n_init=1, random_state=seed).fit(mc.centroid)
            if fresh.inertia_ >= (1.0 - keep_tolerance) * warm.inertia_:
                best = warm
    centres = np.tile(mc.centroid.mean(axis=0), (n_nodes, 1))
    overlap = np.zeros((k, n_nodes))
    np.add.at(overlap, (best.labels_[valid], mc.node[valid]), mc.memory[valid])
    rows, cols = linear_sum_assignment(-overlap)
    centres[cols] = best.cluster_centers_[rows]
    return centres


@dataclass(frozen=True)
class RepartitionResult:
    mc_nodes: np.ndarray  # (M,) new node of each micro-cluster
    moved_state: float  # R at the end
    budget: float  # G
    seconds: float

    def profile_nodes(self, mc: MicroClusters) -> np.ndarray:
        return self.mc_nodes[mc.labels]


def repartition(mc: MicroClusters, n_nodes: int, params: RepartitionParams = RepartitionParams()) -> RepartitionResult:
    """Algorithm 1: place micro-clusters, largest state first, each on its highest-affinity node."""
    if n_nodes < 1:
        raise ValueError("need at least one node")
    if not 0.0 <= params.alpha <= 1.0:
        raise ValueError("alpha must lie in [0, 1]")
    if params.k_neighbours < 1:
        raise ValueError("k_neighbours must be >= 1")
    t0 = time.perf_counter()
    m = len(mc)
    centres = initial_centres(mc, n_nodes, params.seed)
    cent = mc.centroid
    sq = (cent ** 2).sum(axis=1)
    dmm = np.sqrt(np.maximum(sq[:, None] + sq[None, :] - 2.0 * cent @ cent.T, 0.0))
    dmc = np.linalg.norm(cent[:, None, :] - centres[None, :, :], axis=2)
    total_p, total_m = float(mc.processing.sum()), float(mc.memory.sum())
    G = params.budget_nodes / n_nodes * total_m
    owner = np.full(m, -1, dtype=np.int64)
    load_p, load_m = np.zeros(n_nodes), np.zeros(n_nodes)
    placed_p = placed_m = moved = 0.0
    nodes = np.arange(n_nodes)
    order = np.argsort(-mc.memory, kind="stable")
    for i in order:  # one pass over micro-clusters (hundreds), each step vectorized over nodes
        members = np.where(owner[None, :] == nodes[:, None], dmm[i][None, :], np.inf)
        ac = clustering_disaffinity(members, dmc[i], params.k_neighbours)
        ab = balance_disaffinity(mc.processing[i], load_p)
        if params.use_memory:
            ab = (ab + balance_disaffinity(mc.memory[i], load_m)) / 2.0
            frac = (placed_p / total_p + placed_m / total_m) / 2.0 if total_p > 0 else placed_m / total_m
        else:
            frac = placed_p / total_p if total_p > 0 else 0.0
        alpha = params.alpha * float(l_scaler(frac, 1.0, params.scaler_d))
        am = g_migration(moved + mc.memory[i] * (nodes != mc.node[i]), G, params.migration_c)
        combined = 1.0 - ((1.0 - alpha) * ac + alpha * ab)
        score = affinity(am, ac, ab, alpha)
        j = int(np.argmax(score)) if score.max() > 0 else int(np.argmax(combined))
        owner[i] = j
        load_p[j] += mc.processing[i]
        load_m[j] += mc.memory[i]
        placed_p += mc.processing[i]
        placed_m += mc.memory[i]
        if j != mc.node[i]:
            moved += mc.memory[i]
    return RepartitionResult(owner, moved, G, time.perf_counter() - t0)
