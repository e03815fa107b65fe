"""Fusing one person's devices: centralized information KF and Olfati-Saber's distributed KF.

Why: a person carries a phone and a watch (sometimes more); each sees the same path with its own
noise. The centralized Kalman filter (all fixes at one place) is the optimum; the distributed
version (R. Olfati-Saber, "Distributed Kalman Filter with Embedded Consensus Filters", CDC-ECC
2005, the design paper's ref. [16]) reaches it with each device only talking to its neighbours,
which is what the design asks for, so fusion can move onto the devices / partitions later. The
stream calls `fuse_devices` once per person and moment (all their devices' uploads of one ~60 s
window), state in, state out.

Source of the equations. Olfati-Saber's paper itself is not in /work/shared/papers and no copy of
its text was found; the consensus filters below are the ones the design paper reproduces from it
(000_8370cdc94c757846.txt, §III.A "Distributed Kalman Filter", items 1 and 2, which number no
equation), labelled (LP1)-(LP3), (BP1)-(BP4) here; the micro-KF (MKF1)-(MKF4) is the information
form the paper says the DKF splits into ("weighted measurements & inverse-covariance matrices").

Model (linear, constant velocity as in `kalman`): state [x, vx, y, vy], transition F(dt),
white-acceleration noise Q(dt) with PSD q; sensor i sees z_i = H x + v_i, R_i = r_i² I, H picks
the positions. Node i's inputs: u_i = Hᵀ R_i⁻¹ z_i and U_i = Hᵀ R_i⁻¹ H (both 0 when the node
has no fix, or its fix is gated out). Centralized: y = Σ u_i, S = Σ U_i and
    M = (P⁻¹ + S)⁻¹,  x̂ = x̄ + M (y − S x̄),  P ← F M Fᵀ + Q,  x̄ ← F x̂.
(LP) low-pass consensus filter on u → ŷ_i ≈ y/n (§III.A.1):
    (LP1) ẋ_i = Σ_{j∈N_i} (x_j − x_i) + Σ_{j∈J_i} (u_j − x_i),   J_i = N_i ∪ {i}
    (LP2) ẋ = −L̂ x − L̂ u + (I + Δ̂)(u − x)        [the extraction prints Â for Δ̂; (LP1) fixes it]
    (LP3) H_lp(s) = ((s + 1) I + Δ̂ + L̂)⁻¹ (I + Â)  from u to x.
(BP) band-pass consensus filter on U → Ŝ_i ≈ S/n (§III.A.2), state (e_i, q_i), input U_i, output q_i:
    (BP1) H_bp(s) = H_lp(s) H_hp(s)
    (BP2) ė = −L̂ e − L̂ U
    (BP3) p_i = e_i + U_i        [printed "p' = ei + ui"; read as an output map, not a derivative:
                                  the state is (e_i, q_i) ∈ R^2m, so p is no state, and with
                                  p = e + U the first stage is s (sI + L̂)⁻¹ = H_hp(s), as (BP1) says]
    (BP4) q̇_i = Σ_{j∈N_i} (q_j − q_i) + Σ_{j∈J_i} (p_j − q_i)     [(LP1) with input p]
  Stage order: U → high-pass (BP2, BP3) → p → low-pass (BP4) → q = Ŝ. Both (BP1), where H_hp acts
  first, and (BP2)-(BP4), where the low-pass stage's input is the high-pass output p, say so.
  (Until this version the code ran low-pass first, then high-pass: reversed.) On regular graphs
  (complete, ring) L̂ and Â commute, so in continuous time both orders have the same zero-state
  transfer function; their Euler-discretised filters still differ measurably, on two nodes too
  (tests). This order keeps Σ p = Σ U (1ᵀL̂ = 0), and the low-pass stage maps a network-wide
  constant onto itself, so a constant U ends at its exact average on any connected graph.
(MKF) micro-KF at node i on its consensus outputs, with the scaled covariance P_i = n P, Q_i = n Q
  (which makes it the centralized filter when ŷ_i = y/n, Ŝ_i = S/n):
    (MKF1) M_i = (P_i⁻¹ + Ŝ_i)⁻¹   (MKF2) x̂_i = x̄_i + M_i (ŷ_i − Ŝ_i x̄_i)
    (MKF3) P_i ← F M_i Fᵀ + n Q      (MKF4) x̄_i ← F x̂_i
Discretisation: explicit Euler with step ε, m iterations per grid step, the inputs held over the
step: x ← x + ε ẋ, (e, q) ← (e, q) + ε (ė, q̇), all right-hand sides at the old values (so q's
step uses p = e + U before e moves). ε = 1/(1 + 2Δ) (Δ = max degree) unless given: the largest step
that keeps every (LP1) weight non-negative. The filters' states carry from step to step and from
moment to moment (they are dynamic filters); when they (re)start, x = u, e = 0, q = U of the first
step, before its iterations.

Gating: each node tests its own fix against its own prior (innovation covariance H (P_i/n) Hᵀ + R_i,
χ² 2 dof): local information only; the centralized filter tests each sensor against the central
prior, so both decide alike once consensus has converged. `consensus_mode="average"` (plain average
consensus, Metropolis weights, restarted every step: "consensus on measurements") is kept as the
alternative for sparse graphs, where the low-pass estimate ŷ is only a local weighted average.

Implementation (why it is fast): with H picking positions and R_i = r_i² I, u_i = (w_i z_ix, 0,
w_i z_iy, 0), U_i = diag(w_i, 0, w_i, 0), w_i = 1/r_i², so the filters carry three numbers per
node ([w z_x, w z_y] low-pass, w band-pass), the axes decouple with equal 2×2 covariance blocks and
(MKF1) is a Sherman-Morrison update. The consensus filters are linear in their inputs, so their
outputs over a whole window are two matrix products (causal block-Toeplitz operators of the m-
iteration step, precomputed once per graph); the window is first run as if every present fix were
accepted, and a fix a node gates out is taken back by subtracting its impulse response from that
step on. Only the micro-KFs run step by step, in plain floats. `tests/filtering/
test_consensus_reference.py` checks all of it against a literal 4×4 implementation iterated one
consensus step at a time. The DKF works relative to a shared origin (the first prior position)
because consensus errors act on R⁻¹z and so scale with |z|.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class FusionParams:
    """Tuning of device fusion (defaults: ~1 Hz phone/watch GPS)."""

    #: common time grid step the devices' fixes are aligned to [s]
    grid_dt: float = 1.0
    #: white-acceleration PSD of the CV model [m²/s³] (several devices → lower effective noise, so a
    #: livelier q than the single-device calm model)
    q_pos: float = 1.0
    #: GPS noise std [m] for a device whose readings carry no "r" (the per-device filter learns one:
    #: sqrt(state["pos"]["r2"]) of `kalman.filter_event`)
    r_pos: float = 8.0
    #: χ² (2 dof) innovation gate per device fix; None = no gating
    gate_chi2: float | None = 13.815510557964274
    #: "consensus" (Olfati-Saber DKF, one node per device) or "centralized" (information KF)
    method: str = "consensus"
    #: consensus iterations per grid step
    consensus_iters: int = 10
    #: "olfati-saber" (low-pass CF on u, band-pass CF on U) or "average" (Metropolis average consensus)
    consensus_mode: str = "olfati-saber"
    #: device communication graph: "complete", "ring" or "path" (devices in sorted id order)
    graph: str = "complete"
    #: consensus step size; None = 1/(1 + 2·max degree) (keeps every CF weight non-negative)
    eps: float | None = None
    #: prior velocity std of a new track [m/s]
    init_speed_std: float = 5.0
    #: this many steps in a row where fixes were present but none was accepted restart the track at
    #: the current fixes (a track that started on a spike); under consensus each node decides
    #: locally (its own fix rejected and its consensus information ~0)
    max_consecutive_rejects: int = 3
    #: when the next readings start this long [s] after the state's grid, the track starts afresh
    gap_reset_s: float = 600.0
    #: a fix is interpolated onto a grid time only between two readings at most this far apart [s];
    #: otherwise the nearest reading within grid_dt/2 is used
    max_interp_gap_s: float = 2.5


DEFAULT_FUSION = FusionParams()


def cv_model(dt: float, q: float) -> tuple[np.ndarray, np.ndarray]:
    """Constant-velocity transition F and white-acceleration process noise Q (4×4, [x, vx, y, vy])."""
    F1 = np.array([[1.0, dt], [0.0, 1.0]])
    Q1 = q * np.array([[dt ** 3 / 3.0, dt ** 2 / 2.0], [dt ** 2 / 2.0, dt]])
    Z = np.zeros((2, 2))
    return np.block([[F1, Z], [Z, F1]]), np.block([[Q1, Z], [Z, Q1]])


def graph_adjacency(n: int, kind: str = "complete") -> np.ndarray:
    """Symmetric 0/1 adjacency (no self loops) of a complete graph, ring or path on n nodes."""
    A = np.zeros((n, n))
    if kind == "complete":
        A[:] = 1.0
    elif kind == "ring":
        for i in range(n):
            A[i, (i + 1) % n] = A[(i + 1) % n, i] = 1.0
    elif kind == "path":
        for i in range(n - 1):
            A[i, i + 1] = A[i + 1, i] = 1.0
    else:
        raise ValueError(f"graph must be complete, ring or path, got {kind!r}")
    np.fill_diagonal(A, 0.0)
    return A


def metropolis_weights(A: np.ndarray) -> np.ndarray:
    """Doubly stochastic Metropolis–Hastings weights of a graph (average consensus on any connected graph)."""
    d = A.sum(1)
    W = np.where(A > 0, 1.0 / (1.0 + np.maximum(d[:, None], d[None, :])), 0.0)
    np.fill_diagonal(W, 1.0 - W.sum(1))
    return W


def _default_prior(fixes: list, r: list, init_speed_std: float) -> list:
    """Track [x, vx, y, vy, a, b, c] from one step's fixes: their median (robust to one spike among 3+
    devices), at rest, position variance a of the noisiest sensor, velocity variance c."""
    pts = np.array([f for f in fixes if f[0] == f[0] and f[1] == f[1]], float)
    if len(pts) == 0:
        raise ValueError("no device has a fix at this time step")
    mx, my = np.median(pts, axis=0)
    return [float(mx), 0.0, float(my), 0.0, max(r) ** 2, 0.0, init_speed_std ** 2]


def _predict(t: list, dt: float, q: float) -> None:
    """CV prediction of a track [x, vx, y, vy, a, b, c] over dt with white-acceleration PSD q (in place)."""
    x, vx, y, vy, a, b, c = t
    qdt = q * dt
    t[0] = x + vx * dt
    t[2] = y + vy * dt
    t[4] = a + dt * (2.0 * b + dt * c) + qdt * dt * dt / 3.0
    t[5] = b + dt * c + 0.5 * qdt * dt
    t[6] = c + qdt


def _info_update(t: list, yx: float, yy: float, s: float) -> None:
    """Information-form update with Ŝ = diag(s, 0, s, 0), ŷ = (yx, 0, yy, 0) (in place).

    M = (P⁻¹ + Ŝ)⁻¹ per axis by Sherman–Morrison: M = P − s P e eᵀ P / (1 + s a);
    x̂ = x̄ + M (ŷ − Ŝ x̄) = x̄ + P e (ŷ − s x̄_pos) / (1 + s a). A negative s (consensus transient)
    only matters if it makes P⁻¹ + Ŝ indefinite; then Ŝ is dropped for the step.
    """
    x, vx, y, vy, a, b, c = t
    den = 1.0 + s * a
    if den < 1e-9:  # a consensus transient made Ŝ so negative that P⁻¹ + Ŝ is not positive: skip it
        s, den = 0.0, 1.0
    m0 = a / den
    m1 = b / den
    ex = yx - s * x
    ey = yy - s * y
    t[0] = x + m0 * ex
    t[1] = vx + m1 * ex
    t[2] = y + m0 * ey
    t[3] = vy + m1 * ey
    t[4] = m0
    t[5] = m1
    t[6] = c - s * b * m1


def _track_from(x, P) -> list:
    """Track list from a 4-vector and a 4×4 covariance (the model keeps both axis blocks equal)."""
    P = np.asarray(P, float)
    return [float(v) for v in x] + [0.5 * (P[0, 0] + P[2, 2]), 0.5 * (P[0, 1] + P[2, 3]), 0.5 * (P[1, 1] + P[3, 3])]


def _check_inputs(ts, Z, r):
    ts = np.asarray(ts, float)
    Z = np.asarray(Z, float)
    r = np.asarray(r, float)
    if Z.ndim != 3 or Z.shape[2] != 2 or Z.shape[0] != len(ts) or Z.shape[1] != len(r):
        raise ValueError(f"need ts (T,), Z (T, n, 2), r (n,); got {ts.shape}, {Z.shape}, {r.shape}")
    return ts, Z, r


# ---------------------------------------------------------------- centralized information filter

def _ckf_run(ts, Z: list, r: list, q: float, track: list, gate: float | None, *, max_rejects: int = 0,
             rej_run: int = 0, init_speed_std: float = 5.0):
    """Centralized filter over the steps ts from `track` = prior at ts[0] (mutated to the last posterior).

    Z is a nested list (T, n, 2) with NaN for no fix. Returns (X (T,4) posteriors as lists,
    accepted (T,n) lists of bool, rej_run: steps in a row with fixes but none accepted).
    """
    n = len(r)
    r2 = [v * v for v in r]
    w = [1.0 / v for v in r2]
    g = math.inf if gate is None else gate
    X = []
    acc_all = []
    for k in range(len(ts)):
        if k > 0:
            _predict(track, ts[k] - ts[k - 1], q)
        fixes = Z[k]
        present = [f[0] == f[0] and f[1] == f[1] for f in fixes]
        acc = [False] * n
        for attempt in (0, 1):
            x, y, a = track[0], track[2], track[4]
            for i in range(n):
                if present[i]:
                    dx = fixes[i][0] - x
                    dy = fixes[i][1] - y
                    acc[i] = (dx * dx + dy * dy) / (a + r2[i]) <= g
            if any(present) and not any(acc):
                rej_run += 1
                if attempt == 0 and max_rejects and rej_run >= max_rejects:
                    track[:] = _default_prior(fixes, r, init_speed_std)  # the track is wrong: restart here
                    rej_run = 0
                    continue
            elif any(acc):
                rej_run = 0
            break
        yx = yy = s = 0.0
        for i in range(n):
            if acc[i]:
                yx += w[i] * fixes[i][0]
                yy += w[i] * fixes[i][1]
                s += w[i]
        _info_update(track, yx, yy, s)
        X.append(track[:4])
        acc_all.append(acc)
    return X, acc_all, rej_run


def centralized_kf(ts, Z, r, *, q: float = DEFAULT_FUSION.q_pos, x0=None, P0=None,
                   gate_chi2: float | None = None, max_consecutive_rejects: int = 0,
                   init_speed_std: float = DEFAULT_FUSION.init_speed_std) -> dict:
    """Centralized information-form KF over all sensors' fixes.

    ts (T,) times; Z (T, n, 2) fixes, NaN = no fix; r (n,) noise std per sensor [m].
    x0 (4,) / P0 (4×4, equal x and y blocks): prior at ts[0] (default: median of the first fixes,
    noisiest sensor's variance, at rest). max_consecutive_rejects: restart rule (0 = never).
    Returns {"x": (T,4) posteriors [x, vx, y, vy], "accepted": (T,n) fixes used}.
    """
    ts, Z, r = _check_inputs(ts, Z, r)
    track = _default_prior(Z[0].tolist(), r.tolist(), init_speed_std)
    if x0 is not None:
        track[:4] = [float(v) for v in x0]
    if P0 is not None:
        track[4:] = _track_from(np.zeros(4), P0)[4:]
    X, acc, _ = _ckf_run(ts.tolist(), Z.tolist(), r.tolist(), q, track, gate_chi2,
                         max_rejects=max_consecutive_rejects, init_speed_std=init_speed_std)
    return {"x": np.array(X), "accepted": np.array(acc, bool)}


# ---------------------------------------------------------------- consensus (distributed) filter

#: steps per block of the precomputed Toeplitz operators (a window longer than this runs in blocks)
_BLOCK = 64
_OPS_CACHE: dict = {}


def consensus_eps(A: np.ndarray, eps: float | None = None) -> float:
    """Euler step of the consensus filters: ε, or 1/(1 + 2Δ) (Δ = max degree) when None."""
    if eps is not None:
        if not 0.0 < eps:
            raise ValueError(f"eps must be > 0, got {eps!r}")
        return float(eps)
    dmax = float(A.sum(1).max()) if len(A) else 0.0
    return 1.0 / (1.0 + 2.0 * dmax)


def consensus_operators(A: np.ndarray, m: int, eps: float | None = None) -> dict:
    """Linear operators of the consensus filters on graph A, per Euler iteration and per m iterations.

    One iteration of (LP1): x ← G x + B u with G = I − ε(I + 2D − A), B = ε(A + I).
    One iteration of (BP2)-(BP4) on the state s = (e, q): s ← T s + V U with
    T = [[I − εL, 0], [B, G]], V = [[−εL], [B]] (L = D − A; q's step sees p = e + U at the old e).
    m iterations with the input held: x ← Gm x + K u, s ← Tm s + KB U (Gm = G^m, K = Σ_{j<m} G^j B,
    Tm = T^m, KB = Σ_{j<m} T^j V). Wm = W^m of the Metropolis weights, for mode "average".
    """
    if m < 1:
        raise ValueError("consensus_iters must be >= 1")
    A = np.asarray(A, float)
    n = len(A)
    D = np.diag(A.sum(1))
    L = D - A
    e = consensus_eps(A, eps)
    eye = np.eye(n)
    G = eye - e * (eye + 2.0 * D - A)
    B = e * (A + eye)
    T = np.block([[eye - e * L, np.zeros((n, n))], [B, G]])
    V = np.vstack([-e * L, B])
    Gm, K = eye, np.zeros((n, n))
    Tm, KB = np.eye(2 * n), np.zeros((2 * n, n))
    for _ in range(m):
        K = G @ K + B
        Gm = G @ Gm
        KB = T @ KB + V
        Tm = T @ Tm
    return {"eps": e, "G": G, "B": B, "T": T, "V": V, "Gm": Gm, "K": K, "Tm": Tm, "KB": KB,
            "Wm": np.linalg.matrix_power(metropolis_weights(A), m)}


def _window_ops(A: np.ndarray, m: int, eps: float | None, mode: str) -> dict:
    """Impulse responses and causal block-Toeplitz operators over _BLOCK steps (cached per graph).

    Step k's outputs respond to step j's inputs (j ≤ k) through lp[k−j] (low-pass, n×n) and
    bp[k−j] (band-pass, full state 2n×n), and to the state carried in through lp0[k] = Gm^(k+1),
    bp0[k] = Tm^(k+1). LPT, BPT stack these as (k, j) blocks so a block of steps is one product.
    """
    A = np.asarray(A, float)
    key = (A.tobytes(), len(A), m, eps, mode)
    ops = _OPS_CACHE.get(key)
    if ops is not None:
        return ops
    n, N = len(A), _BLOCK
    o = consensus_operators(A, m, eps)
    if mode == "average":
        ops = {"Wm": o["Wm"]}
    else:
        lp, lp0, bp, bp0 = [], [], [], []
        Gk, Tk = np.eye(n), np.eye(2 * n)
        for _ in range(N):
            lp.append(Gk @ o["K"])
            bp.append(Tk @ o["KB"])
            Gk = o["Gm"] @ Gk
            Tk = o["Tm"] @ Tk
            lp0.append(Gk)
            bp0.append(Tk)
        lp, lp0, bp, bp0 = (np.array(v) for v in (lp, lp0, bp, bp0))
        LPT = np.zeros((N, n, N, n))
        BPT = np.zeros((N, 2 * n, N, n))
        for k in range(N):
            for j in range(k + 1):
                LPT[k, :, j, :] = lp[k - j]
                BPT[k, :, j, :] = bp[k - j]
        ops = {"lp": lp, "lp0": lp0, "bp": bp, "bp0": bp0,
               "LPT": LPT.reshape(N * n, N * n), "BPT": BPT.reshape(N * 2 * n, N * n)}
    if len(_OPS_CACHE) > 256:
        _OPS_CACHE.clear()
    _OPS_CACHE[key] = ops
    return ops


def _dkf_run(ts: list, Z: np.ndarray, r: list, A: np.ndarray, q: float, node: dict, m: int, mode: str,
             eps: float | None, gate: float | None, *, max_rejects: int = 0, init_speed_std: float = 5.0):
    """Advance every node's micro-KF and consensus filters over the steps ts (mutates and returns `node`).

    node = {"tracks": n lists [x, vx, y, vy, a, b, c] — priors at ts[0] with the scaled covariance
    n·P —, "cf": None (filters not started) or {"x": n×2 low-pass states, "e": n, "q": n band-pass
    states}, "rej_run": n ints}. Z array (T, n, 2), NaN = no fix.
    Returns (X (T, n, 4) node posteriors, accepted (T, n) bool, node with tracks = last posteriors).
    """
    if mode not in ("olfati-saber", "average"):
        raise ValueError(f"consensus_mode must be 'olfati-saber' or 'average', got {mode!r}")
    T, n = Z.shape[0], Z.shape[1]
    ops = _window_ops(A, m, eps, mode)
    w = np.array([1.0 / (v * v) for v in r])
    present = np.isfinite(Z).all(2)
    Zf = np.where(present[:, :, None], Z, 0.0)
    u_all = Zf * w[None, :, None]                     # (T, n, 2): w z per node, 0 without a fix
    U_all = present * w[None, :]                      # (T, n): w per node
    cf = node.get("cf")
    recs: list = [[] for _ in range(n)]
    for k0 in range(0, T, _BLOCK):
        k1 = min(T, k0 + _BLOCK)
        cf = _dkf_block(ts, Z, present, u_all, U_all, k0, k1, r, ops, q, node, cf, mode, gate,
                        recs, max_rejects, init_speed_std)
    node["cf"] = cf
    R = np.array(recs)  # (n, T, 10)
    return R[:, :, :4].transpose(1, 0, 2), R[:, :, 9].T.astype(bool), node


def _node_pass(k_from, kend, prior, rej, rst, forced, Zi, pi, yx, yy, sh, ts, k0, nq, n, r2i, ri, g, floor,
               max_rejects, init_speed_std):
    """Node i's micro-KF over block steps k_from..kend−1 from its prior at k_from, on fixed consensus outputs.

    Stops at the first fix the node gates out (its own and everyone's consensus outputs change from
    there on). forced: the fix at k_from is already known to be gated out. Returns (records, stop):
    records per finished step (x, vx, y, vy, a, b, c, rej_run, restart, accepted); stop None, or
    (k, prior at k after any restart, rej_run, restart).
    """
    x, vx, y, vy, a, b, c = prior
    recs = []
    k = k_from
    while True:
        ok = False
        if pi[k]:
            zx, zy = Zi[k]
            if rst:  # this node decided its track is wrong: restart at its own fix
                x, vx, y, vy, a, b, c = _default_prior([Zi[k]], [ri], init_speed_std)
                a *= n
                c *= n
                rej, rst = 0, False
            if not (forced and k == k_from):
                dx = zx - x
                dy = zy - y
                if (dx * dx + dy * dy) / (a / n + r2i) <= g:
                    ok = True
                else:
                    return recs, (k, [x, vx, y, vy, a, b, c], rej, rst)
        s = sh[k]  # (MKF1), (MKF2): Sherman-Morrison per axis
        den = 1.0 + s * a
        if den < 1e-9:  # a consensus transient made Ŝ so negative that P⁻¹ + Ŝ is not positive: skip it
            s, den = 0.0, 1.0
        m0 = a / den
        m1 = b / den
        ex = yx[k] - s * x
        ey = yy[k] - s * y
        x += m0 * ex
        vx += m1 * ex
        y += m0 * ey
        vy += m1 * ey
        c -= s * b * m1
        a, b = m0, m1
        if max_rejects:
            if pi[k] and not ok and s < floor:
                rej += 1
            elif ok:
                rej = 0
            rst = rej >= max_rejects
        recs.append((x, vx, y, vy, a, b, c, rej, rst, ok))
        k += 1
        if k >= kend:
            return recs, None
        dt = ts[k0 + k] - ts[k0 + k - 1]  # (MKF3), (MKF4) per axis block [a b; b c]
        qdt = nq * dt
        x += vx * dt
        y += vy * dt
        a += dt * (2.0 * b + dt * c) + qdt * dt * dt / 3.0
        b += dt * c + 0.5 * qdt * dt
        c += qdt


def _dkf_block(ts, Z, present, u_all, U_all, k0, k1, r, ops, q, node, cf, mode, gate, recs_all,
               max_rejects, init_speed_std):
    """Steps k0..k1−1 (at most _BLOCK) of `_dkf_run`; returns the consensus filters' state after k1−1.

    The consensus outputs of the block are computed as if every present fix were accepted; nodes then
    run their micro-KFs up to the first step where one of them gates its fix out, that fix's impulse
    response is taken back out of everyone's outputs from that step on, and the nodes carry on from it.
    """
    n = len(r)
    nb = k1 - k0
    u = u_all[k0:k1]
    U = U_all[k0:k1]
    fresh = cf is None and mode != "average"
    if mode == "average":
        Wm = ops["Wm"]
        Y = np.einsum("ab,kbc->kac", Wm, u)
        full = U @ Wm.T
        S = full
    else:
        if fresh:  # (re)start: x = u, e = 0, q = U of the first step, before its iterations
            x0 = u[0]
            s0 = np.concatenate([np.zeros(n), U[0]])
        else:
            x0 = np.asarray(cf["x"], float)
            s0 = np.concatenate([np.asarray(cf["e"], float), np.asarray(cf["q"], float)])
        Y = (ops["LPT"][:nb * n, :nb * n] @ u.reshape(nb * n, 2)).reshape(nb, n, 2) \
            + np.einsum("kab,bc->kac", ops["lp0"][:nb], x0)
        full = (ops["BPT"][:nb * 2 * n, :nb * n] @ U.reshape(nb * n)).reshape(nb, 2 * n) + ops["bp0"][:nb] @ s0
        S = full[:, n:]
    YT = Y.transpose(1, 2, 0).tolist()   # [node][channel][step]
    ST = S.T.tolist()                    # [node][step]
    r2 = [v * v for v in r]
    nq = n * q
    g = math.inf if gate is None else gate
    floor = 0.01 * min(1.0 / v for v in r2) / n  # below this a node's Ŝ means "nobody's fix was used"
    tracks = node["tracks"]
    rej_run = node["rej_run"]
    restart = node.setdefault("restart", [bool(max_rejects) and v >= max_rejects for v in rej_run])
    ZT = Z[k0:k1].transpose(1, 0, 2).tolist()
    PT = present[k0:k1].T.tolist()
    # each node's prior at the block's first step
    state = []
    for i in range(n):
        t = list(tracks[i])
        if k0 > 0:
            dt = ts[k0] - ts[k0 - 1]
            qdt = nq * dt
            t = [t[0] + t[1] * dt, t[1], t[2] + t[3] * dt, t[3], t[4] + dt * (2.0 * t[5] + dt * t[6]) + qdt * dt * dt / 3.0,
                 t[5] + dt * t[6] + 0.5 * qdt * dt, t[6] + qdt]
        state.append([t, rej_run[i], restart[i], False])
    k_from = 0
    while k_from < nb:
        ks, runs = nb, []
        for i in range(n):
            pr, rj, rs, forced = state[i]
            recs, stop = _node_pass(k_from, min(nb, ks + 1), pr, rj, rs, forced, ZT[i], PT[i], YT[i][0], YT[i][1],
                                    ST[i], ts, k0, nq, n, r2[i], r[i], g, floor, max_rejects, init_speed_std)
            if stop is not None and stop[0] < ks:
                ks = stop[0]
            runs.append((recs, stop))
        if ks == nb:
            for i in range(n):
                recs_all[i].extend(runs[i][0][:nb - k_from])
            break
        gated = []
        for i in range(n):
            recs, stop = runs[i]
            keep = recs[:ks - k_from]
            recs_all[i].extend(keep)
            if stop is not None and stop[0] == ks:
                state[i] = [stop[1], stop[2], stop[3], True]
                gated.append(i)
            elif keep:
                lt = keep[-1]
                dt = ts[k0 + ks] - ts[k0 + ks - 1]
                qdt = nq * dt
                state[i] = [[lt[0] + lt[1] * dt, lt[1], lt[2] + lt[3] * dt, lt[3],
                             lt[4] + dt * (2.0 * lt[5] + dt * lt[6]) + qdt * dt * dt / 3.0,
                             lt[5] + dt * lt[6] + 0.5 * qdt * dt, lt[6] + qdt], lt[7], lt[8], False]
            else:
                state[i][3] = False
        for i in gated:  # take the gated-out fix back out of the consensus outputs from ks on
            if mode == "average":
                Y[ks] -= np.outer(Wm[:, i], u[ks, i])
                full[ks] -= Wm[:, i] * U[ks, i]
            else:
                h = nb - ks
                lp_i = ops["lp"][:h, :, i]
                bp_i = ops["bp"][:h, :, i]
                if fresh and ks == 0:  # the start state was this step's input, too
                    lp_i = lp_i + ops["lp0"][:h, :, i]
                    bp_i = bp_i + ops["bp0"][:h, :, n + i]
                Y[ks:] -= lp_i[:, :, None] * u[ks, i][None, None, :]
                full[ks:] -= bp_i * U[ks, i]
        Yr = Y[ks:].transpose(1, 2, 0).tolist()
        Sr = S[ks:].T.tolist()
        for i in range(n):
            YT[i][0][ks:] = Yr[i][0]
            YT[i][1][ks:] = Yr[i][1]
            ST[i][ks:] = Sr[i]
        k_from = ks
    for i in range(n):
        last = recs_all[i][-1]
        tracks[i] = list(last[:7])
        rej_run[i] = last[7]
        restart[i] = last[8]
    if mode == "average":
        return None
    last = full[nb - 1]
    return {"x": Y[nb - 1].tolist(), "e": last[:n].tolist(), "q": last[n:].tolist()}


def consensus_dkf(ts, Z, r, adjacency=None, *, q: float = DEFAULT_FUSION.q_pos, consensus_iters: int = 10,
                  mode: str = "olfati-saber", eps: float | None = None, x0=None, P0=None,
                  gate_chi2: float | None = None, max_consecutive_rejects: int = 0,
                  init_speed_std: float = DEFAULT_FUSION.init_speed_std) -> dict:
    """Olfati-Saber distributed KF: one node per sensor, m consensus iterations per step.

    ts (T,), Z (T, n, 2) NaN = no fix, r (n,) std [m]; adjacency (n,n) 0/1 symmetric (default complete).
    Every node starts from the same prior (x0, P0) as `centralized_kf` with the same defaults, so the
    two are comparable. Returns {"x": (T,n,4) each node's posterior, "mean": (T,4) node average,
    "spread": (T,) largest node distance from the node average [m], "accepted": (T,n)}.
    """
    ts, Z, r = _check_inputs(ts, Z, r)
    n = Z.shape[1]
    A = graph_adjacency(n) if adjacency is None else np.asarray(adjacency, float)
    track = _default_prior(Z[0].tolist(), r.tolist(), init_speed_std)
    if x0 is not None:
        track[:4] = [float(v) for v in x0]
    if P0 is not None:
        track[4:] = _track_from(np.zeros(4), P0)[4:]
    # work relative to the shared prior position: consensus transients (and the low-pass bias on sparse
    # graphs) act on information vectors R⁻¹z, so they scale with the distance from the origin; the
    # centralized filter is translation-invariant, so comparisons are unaffected
    ox, oy = track[0], track[2]
    track[0] = track[2] = 0.0
    track[4] *= n
    track[5] *= n
    track[6] *= n
    node = {"tracks": [track[:] for _ in range(n)], "cf": None, "rej_run": [0] * n}
    X, acc, _ = _dkf_run(ts.tolist(), Z - np.array([ox, oy]), r.tolist(), A, q, node, consensus_iters, mode,
                         eps, gate_chi2, max_rejects=max_consecutive_rejects, init_speed_std=init_speed_std)
    X = X + np.array([ox, 0.0, oy, 0.0])
    mean = X.mean(1)
    spread = np.sqrt(((X[:, :, [0, 2]] - mean[:, None, [0, 2]]) ** 2).sum(-1)).max(1)
    return {"x": X, "mean": mean, "spread": spread, "accepted": acc}


# ---------------------------------------------------------------- stream entry point

def align_to_grid(ts, values, grid: np.ndarray, *, grid_dt: float, max_interp_gap_s: float) -> np.ndarray:
    """Values (n, d) read at ts, put on `grid`: linear interpolation between two readings at most
    max_interp_gap_s apart, else the nearest reading within grid_dt/2, else NaN."""
    ts = np.asarray(ts, float)
    v = np.asarray(values, float).reshape(len(ts), -1)
    out = np.full((len(grid), v.shape[1]), np.nan)
    if len(ts) == 0:
        return out
    j = np.searchsorted(ts, grid, side="left")          # ts[j-1] < g <= ts[j]
    hi = np.clip(j, 0, len(ts) - 1)
    lo = np.clip(j - 1, 0, len(ts) - 1)
    exact = (j < len(ts)) & (ts[hi] == grid)
    bracket = (j > 0) & (j < len(ts)) & ((ts[hi] - ts[lo]) <= max_interp_gap_s) & ~exact
    w = np.where(bracket, (grid - ts[lo]) / np.where(bracket, ts[hi] - ts[lo], 1.0), 0.0)
    interp = v[lo] + w[:, None] * (v[hi] - v[lo])
    # nearest within half a grid step
    d_lo = np.where(j > 0, grid - ts[lo], np.inf)
    d_hi = np.where(j < len(ts), ts[hi] - grid, np.inf)
    near_idx = np.where(d_lo <= d_hi, lo, hi)
    near_ok = np.minimum(d_lo, d_hi) <= grid_dt / 2.0
    out[near_ok] = v[near_idx[near_ok]]
    out[bracket] = interp[bracket]
    out[exact] = v[hi[exact]]
    return out


def _device_fixes(device: str, rd) -> tuple[np.ndarray, np.ndarray]:
    """(ts, xy (k, 2)) of a device's usable readings, in time order: nulls and fixes flagged "rejected" dropped.

    A NaN coordinate (from an unchecked source) counts as null; mismatched lengths are an error.
    """
    try:
        ts_raw, xs, ys = rd["ts"], rd["x"], rd["y"]
    except (KeyError, TypeError) as exc:
        raise ValueError(f"device {device!r}: readings need 'ts', 'x' and 'y' lists") from exc
    if not (len(ts_raw) == len(xs) == len(ys)):
        raise ValueError(f"device {device!r}: ts, x and y differ in length ({len(ts_raw)}, {len(xs)}, {len(ys)})")
    rej = rd.get("rejected")
    if rej is not None and len(rej) != len(ts_raw):
        raise ValueError(f"device {device!r}: 'rejected' has {len(rej)} entries for {len(ts_raw)} readings")
    if None in xs or None in ys or None in ts_raw:
        xs = [math.nan if v is None else v for v in xs]
        ys = [math.nan if v is None else v for v in ys]
        ts_raw = [math.nan if v is None else v for v in ts_raw]
    ts = np.asarray(ts_raw, float)
    xy = np.column_stack([np.asarray(xs, float), np.asarray(ys, float)])
    keep = np.isfinite(xy).all(1) & np.isfinite(ts)
    if rej is not None:
        keep &= ~np.asarray(rej, bool)
    if not keep.all():
        ts, xy = ts[keep], xy[keep]
    if len(ts) > 1 and (np.diff(ts) < 0).any():
        o = np.argsort(ts, kind="stable")
        ts, xy = ts[o], xy[o]
    return ts, xy


def _device_r(device: str, rd, default: float) -> float:
    r = rd.get("r")
    if r is None:
        return default
    r = float(r)
    if not (math.isfinite(r) and r > 0):
        raise ValueError(f"device {device!r}: 'r' (GPS noise std, m) must be a positive number, got {rd.get('r')!r}")
    return r


def fuse_devices(readings_by_device: dict, state: dict | None = None,
                 params: FusionParams | None = None) -> tuple[dict, dict | None]:
    """Fuse one person's devices onto a common time grid; state in, state out (JSON-serializable).

    readings_by_device: {device_id: {"ts": [...], "x": [...], "y": [...], "r"?: std m,
    "rejected"?: [bool]}} — raw uploads (or `filter_event` inputs) work as they are; nulls are
    skipped; fixes a per-device filter flagged "rejected" are left out. Pass one person's moment: the
    uploads of all their devices for the same window. The grid runs from the state's next grid time
    (or the first reading; also after a silence longer than gap_reset_s) to the last reading;
    readings older than the state's grid are not used. A device without any usable fix in the window
    is no node this time (listed in "devices_without_fix"); devices may come and go between moments
    (a new one starts from the known devices' track; a change of the node set restarts the consensus
    filters, which converge within the step).
    Returns (fused, new_state); fused = {"ts", "x", "y", "vx", "vy" (lists per grid time),
    "n_fixes" (devices whose fix was used, per grid time), "devices" (the nodes), "devices_without_fix",
    "spikes_rejected" (aligned fixes gated out), "node_spread_m" (largest disagreement between device
    nodes; 0 when centralized)}. With no usable reading the state comes back unchanged and the lists
    are empty. Bad input (mismatched lengths, a non-positive "r") raises ValueError naming the device.
    """
    p = params or DEFAULT_FUSION
    if p.method not in ("consensus", "centralized"):
        raise ValueError(f"method must be 'consensus' or 'centralized', got {p.method!r}")
    if p.method == "consensus" and p.consensus_mode == "olfati-saber" and p.graph != "complete":
        raise ValueError("the low-pass consensus filter reaches the network average only on a complete graph; "
                         "use consensus_mode='average' for a ring or path")
    given = sorted(readings_by_device)
    fixes = {d: _device_fixes(d, readings_by_device[d]) for d in given}
    devices = [d for d in given if len(fixes[d][0])]
    without = [d for d in given if not len(fixes[d][0])]
    empty = {"ts": [], "x": [], "y": [], "vx": [], "vy": [], "n_fixes": [], "devices": devices,
             "devices_without_fix": without, "spikes_rejected": 0, "node_spread_m": 0.0}
    if not devices:
        return empty, state
    g = p.grid_dt
    t_first = min(float(fixes[d][0][0]) for d in devices)
    t_end = max(float(fixes[d][0][-1]) for d in devices)
    if state and t_first - float(state["t_next"]) > p.gap_reset_s:
        state = None  # the person's devices were silent for long: start a new track, no empty grid between
    # the grid: from the state's next grid time, or, after a gap, from the first reading (the filters
    # predict over the gap in one step; the moment's output covers its own readings only)
    start = math.ceil(t_first / g - 1e-9) * g
    if state:
        start = max(float(state["t_next"]), start)
    if t_end < start:
        return empty, state
    grid = start + g * np.arange(int(math.floor((t_end - start) / g + 1e-9)) + 1)
    # devices of one moment share their timestamps: align them together
    groups: dict = {}
    for d in devices:
        groups.setdefault(fixes[d][0].tobytes(), []).append(d)
    n = len(devices)
    col = {d: i for i, d in enumerate(devices)}
    Z = np.empty((len(grid), n, 2))
    for ds in groups.values():
        vals = np.hstack([fixes[d][1] for d in ds])
        al = align_to_grid(fixes[ds[0]][0], vals, grid, grid_dt=g, max_interp_gap_s=p.max_interp_gap_s)
        for k, d in enumerate(ds):
            Z[:, col[d]] = al[:, 2 * k:2 * k + 2]
    present = np.isfinite(Z).all(2)
    if not present.any():  # readings too sparse to put any fix on the grid
        return empty, state
    r = [_device_r(d, readings_by_device[d], p.r_pos) for d in devices]
    same_nodes = bool(state) and state.get("devices") == devices and state.get("method") == p.method

    # each device's prior at grid[0]: carried from the state (new devices start from the average of
    # the known ones), else a new track from the first step with a fix
    priors = None
    if state:
        known = {d: v for d, v in state["tracks"].items() if d in col}
        if known:
            avg = np.mean([v for v in known.values()], axis=0).tolist()
            dt = float(grid[0] - state["t_last"])
            priors = {}
            for d in devices:
                tr = list(known.get(d, avg))
                _predict(tr, dt, p.q_pos)
                priors[d] = tr
    if priors is None:
        first = int(present.any(1).argmax())
        tr = _default_prior(Z[first].tolist(), r, p.init_speed_std)
        priors = {d: tr[:] for d in devices}
    rej0 = [int(state.get("rej_run", {}).get(d, 0)) for d in devices] if same_nodes else [0] * n

    ts = grid.tolist()
    if p.method == "centralized":
        track = np.mean([priors[d] for d in devices], axis=0).tolist()
        X, acc, rej = _ckf_run(ts, Z.tolist(), r, p.q_pos, track, p.gate_chi2,
                               max_rejects=p.max_consecutive_rejects, rej_run=max(rej0),
                               init_speed_std=p.init_speed_std)
        est = np.array(X)
        spread = 0.0
        new_tracks = {d: track[:] for d in devices}
        new_rej = {d: rej for d in devices}
        cons = None
        acc = np.array(acc, bool)
    else:
        carry = same_nodes and (state.get("consensus") or {}).get("cf") is not None
        # consensus runs relative to an origin all nodes share (see consensus_dkf); it stays fixed while
        # the consensus filters carry on and moves to the current track when they (re)start
        if carry:
            ox, oy = state["consensus"]["origin"]
        else:
            ox = sum(priors[d][0] for d in devices) / n
            oy = sum(priors[d][2] for d in devices) / n
        tracks = []
        for d in devices:
            tr = priors[d][:]
            tr[0] -= ox
            tr[2] -= oy
            tr[4] *= n
            tr[5] *= n
            tr[6] *= n
            tracks.append(tr)
        node = {"tracks": tracks, "cf": state["consensus"]["cf"] if carry else None, "rej_run": rej0}
        A = graph_adjacency(n, p.graph)
        Z -= (ox, oy)
        X, acc, node = _dkf_run(ts, Z, r, A, p.q_pos, node, p.consensus_iters, p.consensus_mode, p.eps,
                                p.gate_chi2, max_rejects=p.max_consecutive_rejects, init_speed_std=p.init_speed_std)
        X[:, :, 0] += ox
        X[:, :, 2] += oy
        est = X.mean(1) if n > 1 else X[:, 0]
        spread = float(np.sqrt(((X[:, :, [0, 2]] - est[:, None, [0, 2]]) ** 2).sum(-1)).max()) if n > 1 else 0.0
        new_tracks = {}
        for d, tr in zip(devices, node["tracks"]):
            new_tracks[d] = [tr[0] + ox, tr[1], tr[2] + oy, tr[3], tr[4] / n, tr[5] / n, tr[6] / n]
        new_rej = {d: int(v) for d, v in zip(devices, node["rej_run"])}
        cons = {"origin": [ox, oy], "cf": node["cf"]}
    fused = {
        "ts": ts, "x": est[:, 0].tolist(), "y": est[:, 2].tolist(),
        "vx": est[:, 1].tolist(), "vy": est[:, 3].tolist(), "n_fixes": acc.sum(1).tolist(),
        "devices": devices, "devices_without_fix": without,
        "spikes_rejected": int((present & ~acc).sum()), "node_spread_m": spread,
    }
    new_state = {"method": p.method, "devices": devices, "t_last": ts[-1], "t_next": ts[-1] + g,
                 "tracks": new_tracks, "rej_run": new_rej, "consensus": cons}
    return fused, new_state
