"""The clustering algorithm A of sec. 3.2: a Gaussian mixture whose k is chosen by BIC.

Why BIC: the clustering quality compares per-node clusterings with a centralized one, so A must
not take its k from the number of nodes (the paper uses WEKA's EM, which picks k itself).
Full covariances (regularised: each feature group's shares sum to 1, so the raw covariance is
singular): shares within a group are correlated, and diagonal or spherical mixtures split every
type into several components (measured: k = 10 found for 6 types, against k = 6 and NMI 1.0 with
the true types for full covariances, 4,000 profiles).
"""

from __future__ import annotations

import numpy as np
from sklearn.mixture import GaussianMixture


def gmm_bic(x: np.ndarray, k_max: int = 12, seed: int = 0, patience: int = 2) -> np.ndarray:
    """Labels of the BIC-best GMM with k in 1..k_max (stops after `patience` worse k's)."""
    x = np.asarray(x, dtype=float)
    if len(x) == 0:
        raise ValueError("gmm_bic: no profiles")
    best_bic, best_labels, worse = np.inf, np.zeros(len(x), dtype=np.int64), 0
    for k in range(1, min(k_max, len(x)) + 1):
        gm = GaussianMixture(k, covariance_type="full", reg_covar=1e-5, n_init=1, max_iter=100,
                             random_state=seed).fit(x)
        bic = gm.bic(x)
        if bic < best_bic:
            best_bic, best_labels, worse = bic, gm.predict(x), 0
        else:
            worse += 1
            if worse >= patience:
                break
    return best_labels


def per_node(x: np.ndarray, nodes: np.ndarray, n_nodes: int, k_max: int = 12, seed: int = 0) -> np.ndarray:
    """The distributed clustering: A run on each node's profiles separately (labels local to a node)."""
    labels = np.zeros(len(x), dtype=np.int64)
    for j in range(n_nodes):  # one clustering per node, as each node would run it
        idx = np.flatnonzero(nodes == j)
        if idx.size:
            labels[idx] = gmm_bic(x[idx], k_max, seed)
    return labels
