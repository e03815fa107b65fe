"""The qualities of the paper's section 3 (eqs. 1-4), exactly as written.

Why a module of its own: the bench, the trigger and the stream's operator view must all score a
placement the same way, and each formula is unit-tested against a hand computation.
  - clustering quality Q^c = NMI(C*, C) (eqs. 1-2): C* is the centralized clustering, C the union
    of the per-node clusterings (a cluster is named by (node, local label), so a cluster split over
    two nodes counts as two clusters);
  - balance Q^pb = 1 - CoV of the per-node processing loads, Q^mb the same for memory, and
    Q^b = Q^pb or (Q^pb + Q^mb) / 2 when memory matters (sec. 3.3); CoV uses the population
    standard deviation and is not clipped, so Q^b < 0 is possible for very skewed loads;
  - migration Q^m = 1 - moved state / total state (eq. 3);
  - overall Q = (sigma Q^c + (1 - sigma) Q^b) Q^m (eq. 4).
"""

from __future__ import annotations

import numpy as np


def _codes(labels) -> np.ndarray:
    """Any label array (ints, strings, or rows of a 2-D array) -> dense int codes."""
    arr = np.asarray(labels)
    if arr.ndim == 2:
        return np.unique(arr, axis=0, return_inverse=True)[1].ravel()
    return np.unique(arr, return_inverse=True)[1].ravel()


def _entropy(counts: np.ndarray) -> float:
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


def nmi(x, y) -> float:
    """Eq. 2: (H(X) + H(Y) - H(X,Y)) / ((H(X) + H(Y)) / 2); 1.0 when both are a single cluster."""
    cx, cy = _codes(x), _codes(y)
    if cx.shape != cy.shape:
        raise ValueError(f"nmi: label arrays differ in length ({cx.size} vs {cy.size})")
    if cx.size == 0:
        raise ValueError("nmi: no labels")
    hx, hy = _entropy(np.bincount(cx)), _entropy(np.bincount(cy))
    joint = np.bincount(cx * (cy.max() + 1) + cy)
    hxy = _entropy(joint)
    if hx + hy == 0.0:
        return 1.0
    return (hx + hy - hxy) / ((hx + hy) / 2.0)


def cluster_quality(central_labels, nodes, local_labels) -> float:
    """Eq. 1: NMI between the centralized clustering and the union of the per-node clusterings."""
    distributed = np.stack([np.asarray(nodes, dtype=np.int64), _codes(local_labels)], axis=1)
    return nmi(central_labels, distributed)


def node_loads(nodes, costs, n_nodes: int) -> np.ndarray:
    """Sum of per-profile costs on each node (nodes with nothing get 0)."""
    nodes = np.asarray(nodes, dtype=np.int64)
    if nodes.size and (nodes.min() < 0 or nodes.max() >= n_nodes):
        raise ValueError(f"node index outside [0, {n_nodes})")
    return np.bincount(nodes, weights=np.asarray(costs, dtype=float), minlength=n_nodes)


def balance(loads) -> float:
    """1 - CoV({R_i}) (sec. 3.3); 1 when every node carries the same load."""
    loads = np.asarray(loads, dtype=float)
    mean = loads.mean()
    if mean <= 0:
        raise ValueError("balance: total load is zero")
    return float(1.0 - loads.std() / mean)


def balance_quality(nodes, processing, memory, n_nodes: int, use_memory: bool = True) -> float:
    """Q^b: Q^pb alone, or (Q^pb + Q^mb) / 2 when the state grows with the update rate."""
    qpb = balance(node_loads(nodes, processing, n_nodes))
    if not use_memory:
        return qpb
    return (qpb + balance(node_loads(nodes, memory, n_nodes))) / 2.0


def migration_quality(previous_nodes, nodes, state_sizes) -> float:
    """Eq. 3: 1 - sum |S(d)| 1(p'(d) != p(d)) / sum |S(d)|."""
    prev, new = np.asarray(previous_nodes), np.asarray(nodes)
    sizes = np.asarray(state_sizes, dtype=float)
    if not (prev.shape == new.shape == sizes.shape):
        raise ValueError("migration_quality: arrays differ in length")
    total = sizes.sum()
    if total <= 0:
        raise ValueError("migration_quality: total state is zero")
    return float(1.0 - sizes[prev != new].sum() / total)


def overall_quality(qc: float, qb: float, qm: float, sigma: float = 0.5) -> float:
    """Eq. 4: Q = (sigma Q^c + (1 - sigma) Q^b) Q^m."""
    if not 0.0 <= sigma <= 1.0:
        raise ValueError("sigma must lie in [0, 1]")
    return (sigma * qc + (1.0 - sigma) * qb) * qm
