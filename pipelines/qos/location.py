"""The location weight omega(u, v) of the paper's Eq. 7, and "same AS" masks for neighbour selection.

Eq. 7 (the paper):  omega(u, v) = (sim(u, U) + sim(v, U)) / 2, where U is the set of users of
u and v's shared AS, else of their shared country, else everyone, and sim(x, U) "the
similarity of x's QoS values and the average QoS values in set U". As implemented:

    G(u, v)    = the AS of u and v when both are known and equal,
                 else their country when both are known and equal,
                 else everyone;
    qbar_G     = the mean QoS vector of the members of G (per column, over the members
                 that observed it; u and v are members);
    omega_G(x) = s(x, qbar_G), the direct similarity (Eq. 3, in the same form as the graph's
                 edges: the paper's or the tuned one) between node x and that mean vector;
    omega(u, v) = (omega_G(u) + omega_G(v)) / 2        mode "mean" (Eq. 7, the paper)
               or sqrt(omega_G(u) * omega_G(v))        mode "geometric" (the tuned model; "symmetric"
                                                        is its old name)
               or omega_G(v)                           mode "neighbour" (directed)

Both "mean" and "geometric" keep the weighted graph undirected, which lets the
visiting-probability matrix be computed with a Cholesky factorisation (see randomwalk).
The geometric mean is the tuned model's departure: one node far from its group pulls the
pair's weight down harder than the arithmetic mean does.
With ``enabled=False`` (or no location known on that side) omega = 1 everywhere.
"""

from __future__ import annotations

import numpy as np

from pipelines.qos.data import Locations
from pipelines.qos.similarity import row_means


def group_means(values: np.ndarray, mask: np.ndarray, groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean row of each group code 0..G-1 (NaN where no member observed a column) and its observed mask."""
    import scipy.sparse as sp

    n_groups = int(groups.max()) + 1 if len(groups) and groups.max() >= 0 else 0
    cols = values.shape[1]
    if n_groups == 0:
        return np.zeros((0, cols)), np.zeros((0, cols), dtype=bool)
    known = np.flatnonzero(groups >= 0)
    onehot = sp.csr_matrix((np.ones(len(known)), (groups[known], known)), shape=(n_groups, len(groups)))
    tot = onehot @ np.where(mask, values, 0.0)
    cnt = onehot @ mask.astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.where(cnt > 0, tot / np.maximum(cnt, 1), np.nan)
    return means, cnt > 0


def similarity_to_vector(values: np.ndarray, mask: np.ndarray, ref: np.ndarray, ref_mask: np.ndarray, *,
                         gamma: float, sigma: float, centre: np.ndarray | None = None, centring: bool = True,
                         root: bool = True) -> np.ndarray:
    """Eq. 3 between each row x and its own reference row ref[x] (same shapes), row by row."""
    ref_vals = np.where(ref_mask, ref, 0.0)
    if centring:
        if centre is None:
            centre = row_means(values, mask)
        ref_centre = row_means(ref_vals, ref_mask)
    else:
        centre = ref_centre = np.zeros(values.shape[0])
    both = mask & ref_mask
    n = both.sum(axis=1)
    diff = np.where(both, (values - centre[:, None]) - (ref_vals - ref_centre[:, None]), 0.0)
    d = (diff * diff).sum(axis=1) / np.maximum(n, 1)
    d = np.sqrt(d) if root else d
    sim = 1.0 / (1.0 + d / (sigma if sigma > 0 else 1.0))
    if gamma and gamma > 1:
        sim *= np.minimum(n, gamma) / gamma
    return np.where(n > 0, sim, 0.0)


def omega_levels(values: np.ndarray, mask: np.ndarray, loc: Locations, *, gamma: float,
                 sigma: float, centring: bool = True, root: bool = True) -> dict[str, np.ndarray]:
    """omega_G(x) for every node x and each level G in {AS, country, all} (per node: x's own AS / country)."""
    centre = row_means(values, mask)
    kw = {"gamma": gamma, "sigma": sigma, "centre": centre, "centring": centring, "root": root}
    out = {}
    for level, codes in (("as", loc.asn), ("country", loc.country)):
        means, mmask = group_means(values, mask, codes)
        ref = np.zeros_like(values)
        ref_mask = np.zeros_like(mask)
        known = codes >= 0
        ref[known] = means[codes[known]]
        ref_mask[known] = mmask[codes[known]]
        out[level] = np.where(known, similarity_to_vector(values, mask, ref, ref_mask, **kw), 0.0)
    allm, allmask = group_means(values, mask, np.zeros(values.shape[0], dtype=np.int64))
    out["all"] = similarity_to_vector(values, mask, np.repeat(allm, values.shape[0], 0),
                                      np.repeat(allmask, values.shape[0], 0), **kw)
    return out


def shared_level(loc: Locations) -> np.ndarray:
    """Per pair: 2 = same AS, 1 = same country (not same AS), 0 = neither (int8 matrix)."""
    same_as = (loc.asn[:, None] == loc.asn[None, :]) & (loc.asn[:, None] >= 0)
    same_c = (loc.country[:, None] == loc.country[None, :]) & (loc.country[:, None] >= 0)
    lvl = np.zeros(same_as.shape, dtype=np.int8)
    lvl[same_c] = 1
    lvl[same_as] = 2
    return lvl


def same_as(loc: Locations | None, n: int) -> np.ndarray | None:
    """Boolean matrix of pairs in the same known AS, or None when no AS is known."""
    if loc is None or not (loc.asn >= 0).any():
        return None
    return (loc.asn[:, None] == loc.asn[None, :]) & (loc.asn[:, None] >= 0)


OMEGA_MODES = ("mean", "geometric", "symmetric", "neighbour")


def omega(values: np.ndarray, mask: np.ndarray, loc: Locations | None, *, gamma: float, sigma: float,
          mode: str = "geometric", enabled: bool = True, dtype=np.float64, centring: bool = True,
          root: bool = True) -> np.ndarray | None:
    """Eq. 7 for all pairs of rows; None means omega = 1 (location off, or nothing known on this side)."""
    if mode not in OMEGA_MODES:
        raise ValueError(f"omega mode {mode!r}: use one of {', '.join(OMEGA_MODES)}")
    if not enabled or loc is None or not ((loc.asn >= 0) | (loc.country >= 0)).any():
        return None
    lv = omega_levels(values, mask, loc, gamma=gamma, sigma=sigma, centring=centring, root=root)
    w_as, w_c, w_all = (lv[k].astype(dtype) for k in ("as", "country", "all"))
    same_c = (loc.country[:, None] == loc.country[None, :]) & (loc.country >= 0)[:, None]
    same_a = (loc.asn[:, None] == loc.asn[None, :]) & (loc.asn >= 0)[:, None]
    if mode == "mean":  # Eq. 7: (omega_G(u) + omega_G(v)) / 2, each level written only where it applies
        out = np.add(w_all[:, None], w_all[None, :])
        np.add(w_c[:, None], w_c[None, :], out=out, where=same_c)
        np.add(w_as[:, None], w_as[None, :], out=out, where=same_a)
        out *= 0.5
        return out
    if mode in ("geometric", "symmetric"):
        w_as, w_c, w_all = np.sqrt(w_as), np.sqrt(w_c), np.sqrt(w_all)
        rows = (w_all, w_c, w_as)
    else:
        rows = (np.ones_like(w_all), np.ones_like(w_c), np.ones_like(w_as))
    cols = (w_all, w_c, w_as)
    # one buffer, each level written only where it applies (ufunc where=: no n x n temporaries)
    out = np.multiply(rows[0][:, None], cols[0][None, :])
    np.multiply(rows[1][:, None], cols[1][None, :], out=out, where=same_c)
    np.multiply(rows[2][:, None], cols[2][None, :], out=out, where=same_a)
    return out
