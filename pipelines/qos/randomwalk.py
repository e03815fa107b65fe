"""The similarity graph, its transition probabilities and the restart random walk (Eqs. 8, 14-17).

The walk is never simulated: the visiting probabilities of every start node come from
one linear solve per graph,

    P* = (1 - alpha) (I - alpha M^T)^-1 P0,  P0 = I,  alpha = 0.85      (Eq. 14)

column u of P* being the stationary visiting distribution of a walk that starts at u,
follows M with probability alpha and jumps back to u with probability 1 - alpha.

Graph and transitions (Eq. 8):  an edge u-v exists when the direct similarity s(u,v) > 0
(optionally only the ``top_n`` strongest edges of each node are kept); its weight is
a(u,v) = s(u,v) * omega(u,v) and  M(u,v) = a(u,v) / sum_w a(u,w).  A node with no edge
keeps its walker (M(u,u) = 1), so its visiting probabilities are all on itself.

Solving. When the weights are symmetric (omega symmetric or off, no top_n pruning, or a
symmetrised pruning) M = D^-1 A with A = A^T, and (I - alpha M^T)^-1 = D (D - alpha A)^-1
where D - alpha A is symmetric positive definite (strictly diagonally dominant): one
Cholesky factorisation and its inverse (LAPACK potrf + potri), about n^3 flops. Otherwise
an LU solve of the general system (about 2.7 n^3 flops). Columns of P* sum to 1 either way.

Eqs. 9-12 (extracted text garbled: "akMk1P0M.vT") are read as the per-node form of one step
of the walk with restart, Eq. 13: P_k = (1 - alpha) P0 + alpha M^T P_{k-1}; the paper itself
derives Eq. 13 from Eq. 12 and solves Eq. 14 in closed form, so Eq. 14 is what is computed
(the alpha^k M^(k-1) reading of Eq. 10 is not a probability distribution and does not lead to
Eq. 13; iterating Eq. 13 converges to Eq. 14, which a test checks).

Final similarity, the paper (Eqs. 15-17; "P*_uv: u the start node, visiting v"):

    Eq. 15  phi_u     = 1/|adj(u)| * sum_{u' in adj(u)} sim(u,u') / P*_uu'
    Eq. 17  sim*(u,v) = (phi_u * P*_uv + phi_v * P*_vu) / 2

adj(u) = the nodes with an edge to u (direct similarity > 0). The fraction bar of Eq. 15 is
lost in the extracted text; the prose says "phi_u represents the *average ratio* of the direct
similarity to the visiting probability", so the ratio is taken (``phi_form="ratio"``;
``"product"`` is the other reading). phi_u puts u's visiting probabilities back on the scale of
its direct similarities; sim* is built from the walk alone and is symmetric.

Final similarity, the tuned model (``final_form="trust"``, not the paper's):

    r(u,v)    = P*(v | u) / max_{w != u} P*(w | u) * max_w s(u,w)
    phi(u,v)  = min(|I_uv|, theta) / theta
    s*(u,v)   = phi(u,v) * s(u,v) + (1 - phi(u,v)) * r(u,v)

so pairs with little or no co-invocation borrow the walk's evidence and well-measured pairs
keep their direct similarity. With theta = 2 and pairs that all share >= 2 co-invoked
columns (users at full size) s* = s: the walk, and with it omega, then changes nothing.
``final_form="direct"`` (s* = s, no walk) is the ablation's "walk off".
"""

from __future__ import annotations

import os

import numpy as np
from scipy.linalg import lapack


def edge_weights(sim: np.ndarray, omega: np.ndarray | None = None, top_n: int | None = None) -> np.ndarray:
    """The similarity graph's edge weights a(u,v) = s(u,v) * omega(u,v) (top_n strongest edges per node if given)."""
    a = sim * omega if omega is not None else sim.copy()
    np.fill_diagonal(a, 0.0)
    a[a < 0] = 0.0
    if top_n is not None and top_n < a.shape[0] - 1:
        a = _keep_top_n(a, top_n)
    return a


def transition_matrix(a: np.ndarray) -> np.ndarray:
    """Eq. 8: M(u,v) = a(u,v) / sum_w a(u,w); a node without edges keeps its walker (M(u,u) = 1)."""
    rows = a.sum(axis=1)
    dangling = rows <= 0
    m = a / np.where(dangling, 1.0, rows)[:, None]
    idx = np.flatnonzero(dangling)
    m[idx, idx] = 1.0
    return m


def _keep_top_n(a: np.ndarray, top_n: int) -> np.ndarray:
    """Keep each row's top_n weights, then symmetrise (an edge kept by either end stays, weight unchanged)."""
    keep = np.zeros(a.shape, dtype=bool)
    part = np.argpartition(-a, top_n - 1, axis=1)[:, :top_n]
    np.put_along_axis(keep, part, True, axis=1)
    keep |= keep.T
    return np.where(keep, a, 0.0).astype(a.dtype, copy=False)


def visiting_probabilities(a: np.ndarray, alpha: float = 0.85, symmetric: bool | None = None,
                           dtype=np.float64, overwrite: bool = False) -> np.ndarray:
    """Eq. 14 for the graph with edge weights `a`: P* = (1 - alpha)(I - alpha M^T)^-1, M = Eq. 8 of `a`.

    Column u is the visiting distribution of the walk restarting at u (non-negative, sums to 1).
    symmetric=None checks whether `a` is symmetric; symmetric weights take the Cholesky path, whose
    result is returned as the transpose of a row-major array (rows = start nodes in memory), so
    `p.T` is free. overwrite lets the solver use `a`'s memory.
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError("alpha must be in (0, 1)")
    if symmetric is None:
        symmetric = bool(np.allclose(a, a.T, rtol=1e-5, atol=1e-7))
    if not symmetric:
        return visiting_probabilities_general(transition_matrix(a), alpha, dtype)
    n = a.shape[0]
    a = a.astype(dtype, copy=not (overwrite and a.dtype == dtype and a.flags.c_contiguous))
    np.fill_diagonal(a, 0.0)
    d = a.sum(axis=1)
    live = np.flatnonzero(d > 0)
    if len(live) == n:
        k = a
        k *= -alpha
        k[np.diag_indices_from(k)] = d
        g = _spd_inverse(k)
        # P*[i, j] = (1 - alpha) d_i G_ij, i.e. P*^T[j, i] = G_ji (1 - alpha) d_i: scale G's columns
        g *= ((1.0 - alpha) * d).astype(dtype)[None, :]
        return g.T
    out = np.zeros((n, n), dtype=dtype)
    dead = np.flatnonzero(d <= 0)
    out[dead, dead] = 1.0
    if len(live):
        k = -alpha * a[np.ix_(live, live)]
        k[np.diag_indices_from(k)] = d[live]
        g = _spd_inverse(k)
        g *= ((1.0 - alpha) * d[live]).astype(dtype)[None, :]
        out[np.ix_(live, live)] = g
    return out.T


def visiting_probabilities_general(m: np.ndarray, alpha: float = 0.85, dtype=np.float64) -> np.ndarray:
    """Eq. 14 for any row-stochastic M, by an LU solve of (I - alpha M^T) X = (1 - alpha) I."""
    n = m.shape[0]
    lhs = np.eye(n, dtype=dtype) - alpha * m.T.astype(dtype)
    return np.linalg.solve(lhs, np.eye(n, dtype=dtype) * (1.0 - alpha))


def _single_blas_thread():
    """OpenBLAS's threaded potrf/potri scale poorly and stall when the cores are shared (measured here:
    2.8 s on one thread vs 5-7 s on two, for n = 5,825 under load), so the factorisation runs on one
    thread -- which also leaves the other core to HL-RW's user side. OSR_QOS_WALK_THREADS=N allows N."""
    try:
        from threadpoolctl import threadpool_limits

        return threadpool_limits(limits=int(os.environ.get("OSR_QOS_WALK_THREADS", "1")), user_api="blas")
    except ImportError:  # pragma: no cover - threadpoolctl ships with scikit-learn
        from contextlib import nullcontext

        return nullcontext()


def _spd_inverse(k: np.ndarray) -> np.ndarray:
    """Inverse of a symmetric positive definite, C-ordered matrix via LAPACK potrf + potri, in k's memory.

    LAPACK gets k^T (equal to k, and Fortran-ordered), so nothing is copied; potri leaves the
    inverse in one triangle, mirrored here (the returned array is C-ordered).
    """
    potrf, potri = (lapack.spotrf, lapack.spotri) if k.dtype == np.float32 else (lapack.dpotrf, lapack.dpotri)
    if not k.flags.c_contiguous:
        k = np.ascontiguousarray(k)
    with _single_blas_thread():
        c, info = potrf(k.T, lower=False, overwrite_a=True, clean=False)
        if info != 0:
            raise np.linalg.LinAlgError(f"potrf failed (info={info}): matrix not positive definite")
        inv, info = potri(c, lower=False, overwrite_c=True)
    if info != 0:
        raise np.linalg.LinAlgError(f"potri failed (info={info})")
    g = inv.T  # C-ordered view; the inverse sits in its lower triangle
    n = g.shape[0]
    for i0 in range(0, n, 512):  # mirror lower -> upper, a block of rows at a time (cache-friendly)
        i1 = min(n, i0 + 512)
        g[i0:i1, i1:] = g[i1:, i0:i1].T
        blk = g[i0:i1, i0:i1]
        np.copyto(blk, blk.T, where=np.tri(i1 - i0, k=-1, dtype=bool).T)
    return g


def walk_similarity(p_star: np.ndarray, direct: np.ndarray, inplace: bool = False) -> np.ndarray:
    """Eq. 15: r(u, v) = P*(v|u) / max_{w != u} P*(w|u) * max_w s(u, w); rows = start nodes.

    inplace reuses P*'s memory (its transpose must be C-ordered, as visiting_probabilities returns it).
    """
    r = p_star.T
    if not (inplace and r.flags.c_contiguous):
        r = np.array(r, order="C")
    np.fill_diagonal(r, 0.0)
    peak = r.max(axis=1)
    scale = np.where(peak > 0, direct.max(axis=1) / np.where(peak > 0, peak, 1.0), 0.0)
    r *= scale[:, None].astype(r.dtype)
    return r


def trust(common: np.ndarray, theta: float, inplace: bool = False) -> np.ndarray:
    """Eq. 16: phi(u, v) = min(|I_uv|, theta) / theta (theta <= 0: trust direct similarity fully)."""
    out = common if inplace else common.copy()
    if theta <= 0:
        out[...] = 1.0
        return out
    np.minimum(out, theta, out=out)
    out *= 1.0 / theta
    return out


def final_similarity(direct: np.ndarray, walk: np.ndarray, phi: np.ndarray, inplace: bool = False) -> np.ndarray:
    """Eq. 17: s* = phi * s + (1 - phi) * r = r + phi (s - r), 0 on the diagonal (inplace: in `direct`)."""
    out = direct if inplace else direct.copy()
    out -= walk
    out *= phi
    out += walk
    np.fill_diagonal(out, 0.0)
    return out


PHI_FORMS = ("ratio", "product")


def paper_similarity(p_star: np.ndarray, direct: np.ndarray, phi_form: str = "ratio",
                     inplace: bool = False) -> np.ndarray:
    """Eqs. 15-17: sim*(u,v) = (phi_u P*_uv + phi_v P*_vu) / 2, phi_u = mean over adj(u) of s(u,u') / P*_uu'.

    p_star: columns = start nodes (as visiting_probabilities returns it), so P*_uv = p_star[v, u];
    direct: the direct similarity s (adjacency: s > 0). 0 on the diagonal; a node without edges
    gets phi = 0. inplace reuses P*'s memory (its transpose must be C-ordered).
    """
    if phi_form not in PHI_FORMS:
        raise ValueError(f"phi_form {phi_form!r}: use one of {', '.join(PHI_FORMS)}")
    r = p_star.T  # r[u, v] = P*_uv
    if not (inplace and r.flags.c_contiguous):
        r = np.array(r, order="C")
    d = np.array(direct, dtype=r.dtype, order="C")
    np.fill_diagonal(d, 0.0)
    np.maximum(d, 0.0, out=d)
    deg = np.count_nonzero(d, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        if phi_form == "ratio":  # s / P* where s > 0 (an edge implies P* > 0; checked below)
            np.divide(d, r, out=d, where=d > 0)
        else:
            d *= r
    total = d.sum(axis=1, dtype=np.float64)
    del d
    if not np.isfinite(total).all():
        raise FloatingPointError("Eq. 15: an edge with zero visiting probability")
    phi = np.where(deg > 0, total / np.maximum(deg, 1), 0.0).astype(r.dtype)
    r *= phi[:, None]
    out = np.add(r, r.T)
    out *= 0.5
    np.fill_diagonal(out, 0.0)
    return out


def green(a: np.ndarray, alpha: float = 0.85, dtype=np.float64, overwrite: bool = False):
    """(G, d) with G = (D - alpha A)^-1 for symmetric weights `a` whose nodes all have an edge, else None.

    P* is (1 - alpha) D G, i.e. P*_uv (start u, visit v) = (1 - alpha) d_v G_uv; paper_similarity_green
    works on G directly, which spares the column scaling and the transposes of the P* route.
    """
    a = a.astype(dtype, copy=not (overwrite and a.dtype == dtype and a.flags.c_contiguous))
    np.fill_diagonal(a, 0.0)
    d = a.sum(axis=1)
    if not (d > 0).all():
        return None
    a *= -alpha
    a[np.diag_indices_from(a)] = d
    return _spd_inverse(a), d


def paper_similarity_green(g: np.ndarray, d: np.ndarray, direct: np.ndarray, alpha: float = 0.85,
                           phi_form: str = "ratio") -> np.ndarray:
    """Eqs. 15-17 from G (see green): equal to paper_similarity on P* = (1 - alpha) D G, in G's memory.

    phi_u = 1/|adj(u)| sum_v s_uv / ((1 - alpha) d_v G_uv)  (ratio; product: s_uv (1 - alpha) d_v G_uv)
    sim*(u, v) = (1 - alpha)/2 * G_uv * (phi_u d_v + phi_v d_u)
    """
    if phi_form not in PHI_FORMS:
        raise ValueError(f"phi_form {phi_form!r}: use one of {', '.join(PHI_FORMS)}")
    s = np.array(direct, dtype=g.dtype, order="C")
    np.fill_diagonal(s, 0.0)
    np.maximum(s, 0.0, out=s)
    deg = np.count_nonzero(s, axis=1)
    scale = (1.0 - alpha) * d
    with np.errstate(divide="ignore", invalid="ignore"):
        if phi_form == "ratio":
            np.divide(s, g, out=s, where=s > 0)
            total = s @ (1.0 / scale).astype(g.dtype)
        else:
            s *= g
            total = s @ scale.astype(g.dtype)
    del s
    total = total.astype(np.float64)
    if not np.isfinite(total).all():
        raise FloatingPointError("Eq. 15: an edge with zero visiting probability")
    phi = np.where(deg > 0, total / np.maximum(deg, 1), 0.0)
    phi, d = phi.astype(g.dtype), d.astype(g.dtype)
    w = np.multiply.outer(phi, d)
    w += np.multiply.outer(d, phi)  # (phi_u d_v + phi_v d_u), no transposed read
    w *= 0.5 * (1.0 - alpha)
    g *= w
    np.fill_diagonal(g, 0.0)
    return g
