"""Fusing one person's devices: centralized information KF and Olfati-Saber's consensus (distributed) KF.

Why: a person carries a phone and a watch (sometimes more); each sees the same path with its own
noise. The centralized Kalman filter (all fixes at one place) is the optimum; the distributed
version (R. Olfati-Saber, "Distributed Kalman Filter with Embedded Consensus Filters", CDC-ECC
2005) reaches it with each device only talking to its neighbours, and is what the design asks for
so fusion can move onto the devices / partitions later.

Where it is used today: `bench/filtering.py` and `tests/filtering/` only. The stream still
filters each device on its own (`kalman.filter_event` via `filtering.stage`); putting
`fuse_devices` into the filter agent, with the stage order re-checked against Olfati-Saber's
equations, is the work of the real-time-path issue.

Model (linear, same constant-velocity model as `kalman`): state [x, vx, y, vy], transition
F(dt), white-acceleration process noise Q(dt) with PSD q; sensor i sees z_i = H x + v_i,
R_i = r_i² I, H picks the positions.

Information form. Each sensor contributes u_i = Hᵀ R_i⁻¹ z_i and U_i = Hᵀ R_i⁻¹ H (zero when it
has no fix or its fix is gated out). The centralized filter uses y = Σ u_i, S = Σ U_i:
    M = (P⁻¹ + S)⁻¹,  x̂ = x̄ + M (y − S x̄),  P ← F M Fᵀ + Q,  x̄ ← F x̂.
In the distributed filter node i runs the same "micro-KF" on network averages ŷ_i ≈ y/n,
Ŝ_i ≈ S/n with the scaled covariance P_i = n P (and n Q), which gives exactly the centralized
update when the averages are exact:
    M_i = (P_i⁻¹ + Ŝ_i)⁻¹,  x̂_i = x̄_i + M_i (ŷ_i − Ŝ_i x̄_i),  P_i ← F M_i Fᵀ + n Q.
The averages come from consensus filters run for m iterations per time step (step size ε),
their internal states carried from step to step (they are dynamic filters, not restarted):
  * low-pass CF on u (paper eq.: ẋ_i = Σ_{j∈N_i}(x_j − x_i) + Σ_{j∈J_i}(u_j − x_i), J_i = N_i ∪ {i}),
  * band-pass CF on U: the same low-pass stage q_i followed by the high-pass (dynamic average)
    stage ṗ_i = Σ_{j∈N_i}(p_j − p_i) + q̇_i, which keeps Σ p = Σ q.
Fixed points: the high-pass stage reaches the exact average of q; the low-pass stage reaches the
exact average of its inputs on a complete graph (the phone+watch case and any all-to-all device
group) but only a local weighted average on sparse graphs. So with `mode="olfati-saber"` the
estimate converges to the centralized one as m grows on complete graphs; on sparse graphs use
`mode="average"` (plain average consensus with Metropolis weights on u and U, restarted each step —
"consensus on measurements"), which is exact as m → ∞ on any connected graph.

Gating: each node tests its own fix against its own prior (innovation covariance
H (P_i/n) Hᵀ + R_i, χ² 2 dof) — local information only; the centralized filter tests each sensor
against the central prior, so both make the same decisions once consensus has converged.

Implementation: with H picking positions and R_i = r_i² I, u_i = (w_i z_ix, 0, w_i z_iy, 0) and
U_i = diag(w_i, 0, w_i, 0), w_i = 1/r_i², so the consensus filters only ever carry the three
non-zero numbers [w z_x, w z_y, w] per node, the x and y axes decouple with equal 2×2 covariance
blocks, and (P⁻¹ + Ŝ)⁻¹ is a Sherman–Morrison update. The m consensus iterations of a step are
applied in closed form (`consensus_operators`), so a step costs the same for any m. Plain Python
floats over the nodes: a person has a handful of devices, and numpy's per-call overhead on 2–4
element arrays would dominate. The tests check this against the literal 4×4 information-form
equations iterated one consensus step at a time. The DKF works relative to the shared prior
position (an origin) because consensus errors act on R⁻¹z and so scale with |z|.
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

def _consensus_eps(A: np.ndarray, eps: float | None) -> tuple[float, float]:
    """Step sizes of the low-pass stage (1/(1+2Δ)) and the high-pass stage (1/(1+Δ)), Δ = max degree."""
    dmax = float(A.sum(1).max()) if len(A) else 0.0
    return (1.0 / (1.0 + 2.0 * dmax) if eps is None else eps), 1.0 / (1.0 + dmax)


def consensus_operators(A: np.ndarray, m: int, eps: float | None = None) -> dict:
    """Linear operators of m consensus iterations on graph A, so a time step costs the same for any m.

    One iteration of the low-pass CF (input u held for the step) is x ← G x + B u with
    G = I − ε(I + 2D − A), B = ε(A + I) — i.e. x_i += ε[Σ_{j∈N_i}(x_j − x_i) + Σ_{j∈J_i}(u_j − x_i)];
    the high-pass stage is p ← H p + (q⁺ − q) with H = I − ε_h L. After m iterations:
    x_m = G^m x_0 + Σ_{j<m} G^j B u, and since q_{k+1} − q_k = G^k((G − I) q_0 + B U),
    p_m = H^m p_0 + C (G − I) q_0 + C B U with C = Σ_{k<m} H^{m−1−k} G^k. Also W^m of the Metropolis
    weights for mode "average". Keys: G, B, H (one iteration), Gm, K = Σ G^j B, Hm, Cq = C (G − I),
    CB = C B, Wm.
    """
    if m < 1:
        raise ValueError("consensus_iters must be >= 1")
    n = len(A)
    deg = np.diag(A.sum(1))
    e_lp, e_hp = _consensus_eps(A, eps)
    eye = np.eye(n)
    G = eye - e_lp * (eye + 2.0 * deg - A)
    B = e_lp * (A + eye)
    H = eye - e_hp * (deg - A)
    Gp = [np.linalg.matrix_power(G, k) for k in range(m + 1)]
    Hp = [np.linalg.matrix_power(H, k) for k in range(m + 1)]
    C = sum(Hp[m - 1 - k] @ Gp[k] for k in range(m))
    return {"G": G, "B": B, "H": H, "Gm": Gp[m], "K": sum(Gp[:m]) @ B, "Hm": Hp[m],
            "Cq": C @ (G - eye), "CB": C @ B, "Wm": np.linalg.matrix_power(metropolis_weights(A), m)}


def _dkf_run(ts: list, Z: list, r: list, A: np.ndarray, q: float, node: dict, m: int, mode: str,
             eps: float | None, gate: float | None, *, max_rejects: int = 0, init_speed_std: float = 5.0):
    """Advance every node's micro-KF and consensus filters over the steps ts (mutates and returns `node`).

    node = {"tracks": n lists [x, vx, y, vy, a, b, c] — priors at ts[0] with the scaled covariance
    n·P —, "cf": n lists [low-pass of w·zx, of w·zy, of w] or None (not started), "p": n floats
    (high-pass stage, the band-pass output Ŝ), "rej_run": n ints}. Z nested list (T, n, 2), NaN = no fix.
    Returns (X (T, n, 4) node posteriors as lists, accepted (T, n), node with tracks = last posteriors).
    """
    if mode not in ("olfati-saber", "average"):
        raise ValueError(f"consensus_mode must be 'olfati-saber' or 'average', got {mode!r}")
    n = len(r)
    ops = {k: v.tolist() for k, v in consensus_operators(A, m, eps).items()}
    Gm, K, Hm, Cq, CB, Wm = ops["Gm"], ops["K"], ops["Hm"], ops["Cq"], ops["CB"], ops["Wm"]
    r2 = [v * v for v in r]
    w = [1.0 / v for v in r2]
    nq = n * q
    g = math.inf if gate is None else gate
    info_floor = 0.01 * min(w) / n  # below this a node's Ŝ means "nobody's fix was used"
    tracks = node["tracks"]
    cf = node.get("cf")
    p = node.get("p")
    rej_run = list(node.get("rej_run") or [0] * n)
    restart = [bool(max_rejects) and v >= max_rejects for v in rej_run]
    X = []
    acc_all = []
    rn = range(n)
    for k in range(len(ts)):
        if k > 0:
            dt = ts[k] - ts[k - 1]
            for t in tracks:
                _predict(t, dt, nq)
        fixes = Z[k]
        present = [f[0] == f[0] and f[1] == f[1] for f in fixes]
        for i in rn:
            if restart[i] and present[i]:  # this node decided its track is wrong: restart at its own fix
                tracks[i] = _default_prior([fixes[i]], [r[i]], init_speed_std)
                tracks[i][4] *= n
                tracks[i][6] *= n
                rej_run[i] = 0
                restart[i] = False
        # local gating and information contributions [w·zx, w·zy, w]
        acc = [False] * n
        u = [(0.0, 0.0, 0.0)] * n
        for i in rn:
            if present[i]:
                t = tracks[i]
                dx = fixes[i][0] - t[0]
                dy = fixes[i][1] - t[2]
                if (dx * dx + dy * dy) / (t[4] / n + r2[i]) <= g:
                    acc[i] = True
                    u[i] = (w[i] * fixes[i][0], w[i] * fixes[i][1], w[i])
        # consensus: m iterations (closed form) → ŷ_i, Ŝ_i
        if mode == "average":
            est = [[sum(Wm[i][j] * u[j][c] for j in rn) for c in range(3)] for i in rn]
            y_hat = [(e[0], e[1]) for e in est]
            s_hat = [e[2] for e in est]
        else:
            if cf is None:
                cf = [list(v) for v in u]
                p = [v[2] for v in u]
            p = [sum(Hm[i][j] * p[j] + Cq[i][j] * cf[j][2] + CB[i][j] * u[j][2] for j in rn) for i in rn]
            cf = [[sum(Gm[i][j] * cf[j][c] + K[i][j] * u[j][c] for j in rn) for c in range(3)] for i in rn]
            y_hat = [(c_[0], c_[1]) for c_ in cf]
            s_hat = p
        # micro-KF at every node
        for i in rn:
            _info_update(tracks[i], y_hat[i][0], y_hat[i][1], s_hat[i])
        X.append([t[:4] for t in tracks])
        acc_all.append(acc)
        if max_rejects:
            for i in rn:
                if present[i] and not acc[i] and s_hat[i] < info_floor:
                    rej_run[i] += 1
                elif acc[i]:
                    rej_run[i] = 0
                restart[i] = rej_run[i] >= max_rejects
    node.update(tracks=tracks, cf=cf, p=p, rej_run=rej_run)
    return X, acc_all, node


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
    node = {"tracks": [track[:] for _ in range(n)], "cf": None, "p": None, "rej_run": [0] * n}
    Zc = (Z - np.array([ox, oy])).tolist()
    X, acc, _ = _dkf_run(ts.tolist(), Zc, r.tolist(), A, q, node, consensus_iters, mode, eps, gate_chi2,
                         max_rejects=max_consecutive_rejects, init_speed_std=init_speed_std)
    X = np.array(X) + np.array([ox, 0.0, oy, 0.0])
    mean = X.mean(1)
    spread = np.sqrt(((X[:, :, [0, 2]] - mean[:, None, [0, 2]]) ** 2).sum(-1)).max(1)
    return {"x": X, "mean": mean, "spread": spread, "accepted": np.array(acc, bool)}


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


def _device_fixes(rd) -> tuple[np.ndarray, np.ndarray]:
    """(ts, xy) of a device's usable readings: nulls dropped, fixes flagged "rejected" dropped."""
    ts = np.asarray(rd["ts"], float)
    x = np.array([np.nan if v is None else v for v in rd["x"]], float)
    y = np.array([np.nan if v is None else v for v in rd["y"]], float)
    keep = np.isfinite(x) & np.isfinite(y) & np.isfinite(ts)
    if rd.get("rejected") is not None:
        keep &= ~np.asarray(rd["rejected"], bool)
    return ts[keep], np.column_stack([x[keep], y[keep]])


def fuse_devices(readings_by_device: dict, state: dict | None = None,
                 params: FusionParams | None = None) -> tuple[dict, dict | None]:
    """Fuse one person's devices onto a common time grid; state in, state out (JSON-serializable).

    readings_by_device: {device_id: {"ts": [...], "x": [...], "y": [...], "r"?: std m,
    "rejected"?: [bool]}} — raw device messages (or `filter_event` inputs) work as they are; fixes a
    per-device filter flagged "rejected" are left out (recommended: pass filter_event's "rejected").
    Pass the devices' readings for the same time window (e.g. a tumbling window per person): the
    grid runs from the state's next grid time (or the first reading; also after a silence longer
    than gap_reset_s) to the last reading, and readings older than the state's grid are not used.
    Returns (fused, new_state); fused = {"ts", "x", "y", "vx", "vy" (lists per grid time),
    "n_fixes" (devices whose fix was used, per grid time), "devices", "spikes_rejected" (aligned fixes
    gated out), "node_spread_m" (largest disagreement between device nodes; 0 when centralized)}.
    With no usable reading the state comes back unchanged and the lists are empty.
    """
    p = params or DEFAULT_FUSION
    if p.method not in ("consensus", "centralized"):
        raise ValueError(f"method must be 'consensus' or 'centralized', got {p.method!r}")
    if p.method == "consensus" and p.consensus_mode == "olfati-saber" and p.graph != "complete":
        raise ValueError("the low-pass consensus filter reaches the network average only on a complete graph; "
                         "use consensus_mode='average' for a ring or path")
    devices = sorted(readings_by_device)
    fixes = {d: _device_fixes(readings_by_device[d]) for d in devices}
    t_all = [f[0] for f in fixes.values() if len(f[0])]
    empty = {"ts": [], "x": [], "y": [], "vx": [], "vy": [], "n_fixes": [], "devices": devices,
             "spikes_rejected": 0, "node_spread_m": 0.0}
    if not t_all:
        return empty, state
    g = p.grid_dt
    t_first = min(float(t[0]) for t in t_all)
    t_end = max(float(t[-1]) for t in t_all)
    if state and t_first - float(state["t_next"]) > p.gap_reset_s:
        state = None  # the person's devices were silent for long: start a new track, no empty grid between
    start = float(state["t_next"]) if state else math.ceil(t_first / g - 1e-9) * g
    if t_end < start:
        return empty, state
    grid = start + g * np.arange(int(math.floor((t_end - start) / g + 1e-9)) + 1)
    Z = np.stack([align_to_grid(*fixes[d], grid, grid_dt=g, max_interp_gap_s=p.max_interp_gap_s)
                  for d in devices], axis=1)
    if not np.isfinite(Z).all(2).any():  # readings too sparse to put any fix on the grid
        return empty, state
    r = [float(readings_by_device[d].get("r") or p.r_pos) for d in devices]
    n = len(devices)
    same_nodes = bool(state) and state.get("devices") == devices and state.get("method") == p.method

    # each device's prior at grid[0]: carried from the state (new devices start from the average of
    # the known ones), else a new track from the first step with a fix
    priors = None
    if state:
        known = {d: v for d, v in state["tracks"].items() if d in devices}
        if known:
            avg = np.mean([v for v in known.values()], axis=0).tolist()
            dt = float(grid[0] - state["t_last"])
            priors = {}
            for d in devices:
                tr = list(known.get(d, avg))
                _predict(tr, dt, p.q_pos)
                priors[d] = tr
    if priors is None:
        first = int(np.isfinite(Z).all(2).any(1).argmax())
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
    else:
        carry = same_nodes and state.get("consensus") is not None
        # consensus runs relative to an origin all nodes share (see consensus_dkf); it stays fixed while
        # the consensus filters carry on and moves to the current track when they (re)start
        if carry:
            ox, oy = state["consensus"]["origin"]
        else:
            ox = float(np.mean([priors[d][0] for d in devices]))
            oy = float(np.mean([priors[d][2] for d in devices]))
        tracks = []
        for d in devices:
            tr = priors[d][:]
            tr[0] -= ox
            tr[2] -= oy
            tr[4] *= n
            tr[5] *= n
            tr[6] *= n
            tracks.append(tr)
        node = {"tracks": tracks, "cf": state["consensus"]["cf"] if carry else None,
                "p": state["consensus"]["p"] if carry else None, "rej_run": rej0}
        A = graph_adjacency(n, p.graph)
        X, acc, node = _dkf_run(ts, (Z - np.array([ox, oy])).tolist(), r, A, p.q_pos, node, p.consensus_iters,
                                p.consensus_mode, p.eps, p.gate_chi2, max_rejects=p.max_consecutive_rejects,
                                init_speed_std=p.init_speed_std)
        X = np.array(X) + np.array([ox, 0.0, oy, 0.0])
        est = X.mean(1)
        spread = float(np.sqrt(((X[:, :, [0, 2]] - est[:, None, [0, 2]]) ** 2).sum(-1)).max())
        new_tracks = {}
        for d, tr in zip(devices, node["tracks"]):
            new_tracks[d] = [tr[0] + ox, tr[1], tr[2] + oy, tr[3], tr[4] / n, tr[5] / n, tr[6] / n]
        new_rej = {d: int(v) for d, v in zip(devices, node["rej_run"])}
        cons = {"origin": [ox, oy], "cf": node["cf"], "p": node["p"]}
    acc = np.array(acc, bool)
    present = np.isfinite(Z).all(2)
    fused = {
        "ts": ts, "x": est[:, 0].tolist(), "y": est[:, 2].tolist(),
        "vx": est[:, 1].tolist(), "vy": est[:, 3].tolist(), "n_fixes": acc.sum(1).astype(int).tolist(),
        "devices": devices, "spikes_rejected": int((present & ~acc).sum()), "node_spread_m": spread,
    }
    new_state = {"method": p.method, "devices": devices, "t_last": ts[-1], "t_next": ts[-1] + g,
                 "tracks": new_tracks, "rej_run": new_rej, "consensus": cons}
    return fused, new_state
