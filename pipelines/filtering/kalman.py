"""Per-device Kalman filters for the sensor stream: GPS position/velocity, heart rate, acceleration.

Why this shape: the Faust agent calls `filter_event` once per device message (a batch of ~30–120
readings) and keeps the returned state in a table, so the functions are pure (state in, state out)
and the state is a small JSON-serializable dict. A Kalman filter is sequential, so the per-reading
loop cannot be vectorized; it is written as hand-expanded scalar arithmetic (no per-reading numpy
calls, which would cost microseconds each) to keep a message well under a millisecond.

Models
------
Position: constant velocity in x and y, state [x, vx, y, vy]; process noise from continuous white
acceleration with power spectral density q (m²/s³), so for a step dt each axis gets
``Q = q·[[dt³/3, dt²/2], [dt²/2, dt]]`` — exact for any irregular dt. GPS noise is isotropic
(``r_pos`` m std) and the axes are independent, so each axis carries its own 2×2 block (the state
stores the block-diagonal 4×4). The GPS noise level differs by device and place, and a wrong r
either rejects good fixes (too small) or lags (too large), so r is learnt per device from the
accepted innovations (``r_adapt``). One q cannot both smooth a walker (q≈0.05) and follow a car
braking or turning (q≈4), so by default two such CV filters run as an IMM (interacting multiple
model, Blom & Bar-Shalom): a calm model ``q_pos`` and a manoeuvre model ``q_pos_maneuver`` with
Markov switching whose probabilities follow from mean sojourn times (irregular dt handled exactly);
the output is the probability-weighted mix. ``q_pos_maneuver=None`` gives the plain single CV
filter. Each fix is gated on the squared Mahalanobis distance of its 2-D innovation (χ² with
2 dof, threshold ``gate_chi2``; under the IMM a fix passes if either model accepts it): a fix beyond
the gate is a spike, is not used, and is counted. ``max_consecutive_rejects`` rejections in a row
mean the track itself is wrong (e.g. it started on a spike), so it is restarted at the current fix.

Heart rate: local level + trend (the same white-acceleration model in 1-D, ``q_hr``), nulls are
prediction-only steps; output clipped to ``hr_bounds``.
Acceleration magnitude: local level (random walk, ``q_acc`` per second), nulls skipped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

STATE_VERSION = 1


@dataclass(frozen=True)
class FilterParams:
    """Tuning of the per-device filters (defaults fit ~1 Hz phone/watch GPS in a city)."""

    #: white-acceleration power spectral density of the calm position model [m²/s³]
    #: (walking / steady motion; lower smooths more, higher follows turns faster)
    q_pos: float = 0.05
    #: white-acceleration PSD of the manoeuvre model [m²/s³] (braking, cornering cars); None = no
    #: IMM, a single CV filter with q_pos
    q_pos_maneuver: float | None = 4.0
    #: mean time [s] the motion stays calm before a manoeuvre (IMM switching rate calm → manoeuvre)
    calm_sojourn_s: float = 60.0
    #: mean duration [s] of a manoeuvre (IMM switching rate manoeuvre → calm)
    maneuver_sojourn_s: float = 10.0
    #: GPS measurement noise, one-axis standard deviation [m], at the start of a device's track
    #: (phones ~5–10 m, watches worse); learnt per device from then on when r_adapt > 0
    r_pos: float = 8.0
    #: rate of the per-device noise estimate: r² ← r² + r_adapt·(½|ν|² − HPHᵀ − r²) on every accepted
    #: fix (ν = innovation, E[½|ν|²] = HPHᵀ + r²); ~1/r_adapt fixes of memory; 0 = keep r_pos fixed
    r_adapt: float = 0.02
    #: bounds of the learnt noise std [m]
    r_pos_bounds: tuple[float, float] = (3.0, 30.0)
    #: innovation gate: squared Mahalanobis distance above which a fix is a spike (χ², 2 dof;
    #: 13.82 = 99.9 % of good fixes pass if the model is right)
    gate_chi2: float = 13.815510557964274
    #: this many rejected fixes in a row restart the track at the current fix
    max_consecutive_rejects: int = 5
    #: prior velocity standard deviation of a new track [m/s]
    init_speed_std: float = 5.0
    #: a gap longer than this [s] restarts every filter at the next reading (velocity/trend are stale)
    gap_reset_s: float = 600.0
    #: heart-rate trend noise: white "HR acceleration" spectral density [bpm²/s³]
    q_hr: float = 0.02
    #: heart-rate measurement noise std [bpm]
    r_hr: float = 4.0
    #: prior std of a new HR trend [bpm/s]
    init_hr_trend_std: float = 0.5
    #: filtered heart rate is clipped into this range [bpm]
    hr_bounds: tuple[float, float] = (25.0, 230.0)
    #: acceleration-magnitude random-walk variance per second [(m/s²)²/s]
    q_acc: float = 0.02
    #: acceleration-magnitude measurement noise std [m/s²]
    r_acc: float = 0.8


DEFAULT_PARAMS = FilterParams()


def filter_positions_cv(ts: list[float], xs: list, ys: list, state: dict | None, p: FilterParams = DEFAULT_PARAMS):
    """Single constant-velocity 2-D KF (q = p.q_pos) with innovation gating over one batch of fixes.

    Returns (x, y, vx, vy, rejected, spikes, resets, new_state); x..vy are lists with None before
    the track has started (no valid fix yet). `state` is the "pos" part of the device state.
    Isotropic noise and equal start covariances keep the x and y blocks equal, so one block is run.
    """
    q = p.q_pos
    r2 = p.r_pos * p.r_pos
    alpha = p.r_adapt
    lo2, hi2 = p.r_pos_bounds[0] ** 2, p.r_pos_bounds[1] ** 2
    gate = p.gate_chi2
    maxrej = p.max_consecutive_rejects
    gap = p.gap_reset_s
    v0 = p.init_speed_std * p.init_speed_std
    n = len(ts)
    ox = [None] * n
    oy = [None] * n
    ovx = [None] * n
    ovy = [None] * n
    rej = [False] * n
    spikes = resets = 0
    if state is None:
        init = False
        t_last = x = vx = y = vy = p00 = p01 = p11 = 0.0
        inrow = 0
    else:
        init = True
        t_last = float(state["ts"])
        x, vx, y, vy = (float(v) for v in state["x"])
        P = state["P"]
        # isotropic model: both axis blocks are equal; average them so a hand-edited state still works
        p00 = 0.5 * (P[0][0] + P[2][2])
        p01 = 0.25 * (P[0][1] + P[1][0] + P[2][3] + P[3][2])
        p11 = 0.5 * (P[1][1] + P[3][3])
        inrow = int(state.get("rejects_in_row", 0))
        r2 = float(state.get("r2", r2))
    for i in range(n):
        t = ts[i]
        zx = xs[i]
        zy = ys[i]
        ok = zx is not None and zy is not None
        if ok:
            zx = float(zx)
            zy = float(zy)
            ok = zx == zx and zy == zy  # NaN check
        if not init:
            if ok:
                init = True
                t_last, x, y, vx, vy = t, zx, zy, 0.0, 0.0
                p00, p01, p11, inrow = r2, 0.0, v0, 0
                ox[i], oy[i], ovx[i], ovy[i] = x, y, 0.0, 0.0
            continue
        dt = t - t_last
        if dt > 0.0:
            if dt > gap and ok:  # stale track: restart at this fix
                t_last, x, y, vx, vy = t, zx, zy, 0.0, 0.0
                p00, p01, p11, inrow = r2, 0.0, v0, 0
                resets += 1
                ox[i], oy[i], ovx[i], ovy[i] = x, y, 0.0, 0.0
                continue
            x += vx * dt
            y += vy * dt
            qdt = q * dt
            p00 += dt * (2.0 * p01 + dt * p11) + qdt * dt * dt / 3.0
            p01 += dt * p11 + 0.5 * qdt * dt
            p11 += qdt
            t_last = t
        if ok:
            s = p00 + r2
            nx = zx - x
            ny = zy - y
            if (nx * nx + ny * ny) / s > gate:
                inrow += 1
                if inrow >= maxrej:  # the track, not the fixes, is wrong: restart here
                    x, y, vx, vy = zx, zy, 0.0, 0.0
                    p00, p01, p11, inrow = r2, 0.0, v0, 0
                    resets += 1
                else:
                    rej[i] = True
                    spikes += 1
            else:
                inrow = 0
                if alpha:
                    r2 = min(max(r2 + alpha * (0.5 * (nx * nx + ny * ny) - p00 - r2), lo2), hi2)
                k0 = p00 / s
                k1 = p01 / s
                x += k0 * nx
                y += k0 * ny
                vx += k1 * nx
                vy += k1 * ny
                p11 -= k1 * p01
                p01 *= 1.0 - k0
                p00 *= 1.0 - k0
        ox[i] = x
        oy[i] = y
        ovx[i] = vx
        ovy[i] = vy
    new_state = None
    if init:
        new_state = {
            "ts": t_last, "x": [x, vx, y, vy],
            "P": [[p00, p01, 0.0, 0.0], [p01, p11, 0.0, 0.0], [0.0, 0.0, p00, p01], [0.0, 0.0, p01, p11]],
            "rejects_in_row": inrow, "r2": r2,
        }
    return ox, oy, ovx, ovy, rej, spikes, resets, new_state


def _block(P: list, k: int) -> tuple[float, float, float]:
    """Axis block k (0 = x, 1 = y) of a 4×4 covariance as (var pos, cov pos-vel, var vel)."""
    i = 2 * k
    return float(P[i][i]), 0.5 * (P[i][i + 1] + P[i + 1][i]), float(P[i + 1][i + 1])


def _cov4(bx: tuple, by: tuple) -> list:
    return [[bx[0], bx[1], 0.0, 0.0], [bx[1], bx[2], 0.0, 0.0], [0.0, 0.0, by[0], by[1]], [0.0, 0.0, by[1], by[2]]]


def filter_positions_imm(ts: list[float], xs: list, ys: list, state: dict | None, p: FilterParams = DEFAULT_PARAMS):
    """IMM of two CV models (calm q_pos, manoeuvre q_pos_maneuver) with innovation gating.

    Same returns as `filter_positions_cv`. Model a = calm, b = manoeuvre; the mixing step keeps the
    per-axis blocks and drops the x–y cross terms of the mixture spread (axes stay independent).
    """
    qa = p.q_pos
    qb = p.q_pos_maneuver
    ta = p.calm_sojourn_s
    tb = p.maneuver_sojourn_s
    r2 = p.r_pos * p.r_pos
    alpha = p.r_adapt
    lo2, hi2 = p.r_pos_bounds[0] ** 2, p.r_pos_bounds[1] ** 2
    gate = p.gate_chi2
    maxrej = p.max_consecutive_rejects
    gap = p.gap_reset_s
    v0 = p.init_speed_std * p.init_speed_std
    exp = math.exp
    log = math.log
    n = len(ts)
    ox = [None] * n
    oy = [None] * n
    ovx = [None] * n
    ovy = [None] * n
    rej = [False] * n
    spikes = resets = 0
    dt_cached = -1.0
    if state is None:
        init = False
        t_last = 0.0
        inrow = 0
    else:
        init = True
        t_last = float(state["ts"])
        mua, mub = (float(v) for v in state["mu"])
        ma, mb = state["models"]
        xa, vxa, ya, vya = (float(v) for v in ma["x"])
        xb, vxb, yb, vyb = (float(v) for v in mb["x"])
        ax0, ax1, ax2 = _block(ma["P"], 0)
        ay0, ay1, ay2 = _block(ma["P"], 1)
        bx0, bx1, bx2 = _block(mb["P"], 0)
        by0, by1, by2 = _block(mb["P"], 1)
        inrow = int(state.get("rejects_in_row", 0))
        r2 = float(state.get("r2", r2))
    for i in range(n):
        t = ts[i]
        zx = xs[i]
        zy = ys[i]
        ok = zx is not None and zy is not None
        if ok:
            zx = float(zx)
            zy = float(zy)
            ok = zx == zx and zy == zy
        restart = False
        if not init:
            if not ok:
                continue
            init = restart = True
        else:
            dt = t - t_last
            if dt > 0.0:
                if dt > gap and ok:
                    restart = True
                    resets += 1
                else:
                    # IMM interaction: switching probabilities over dt, predicted mode probabilities
                    if dt != dt_cached:  # ~1 Hz devices repeat dt; skip the exps then
                        dt_cached = dt
                        pab = 1.0 - exp(-dt / ta)
                        pba = 1.0 - exp(-dt / tb)
                        dt2 = dt * dt
                        qa0, qa1, qa2 = qa * dt2 * dt / 3.0, 0.5 * qa * dt2, qa * dt
                        qb0, qb1, qb2 = qb * dt2 * dt / 3.0, 0.5 * qb * dt2, qb * dt
                    ca = (1.0 - pab) * mua + pba * mub
                    cb = pab * mua + (1.0 - pba) * mub
                    waa = (1.0 - pab) * mua / ca  # weight of model a in a's mixed start
                    wbb = (1.0 - pba) * mub / cb  # weight of model b in b's mixed start
                    dx = xa - xb
                    dvx = vxa - vxb
                    dy = ya - yb
                    dvy = vya - vyb
                    # mixed covariances: w·Pa + (1-w)·Pb + w(1-w)·d dᵀ (per axis)
                    sa = waa * (1.0 - waa)
                    sb = wbb * (1.0 - wbb)
                    nax0 = bx0 + waa * (ax0 - bx0) + sa * dx * dx
                    nax1 = bx1 + waa * (ax1 - bx1) + sa * dx * dvx
                    nax2 = bx2 + waa * (ax2 - bx2) + sa * dvx * dvx
                    nay0 = by0 + waa * (ay0 - by0) + sa * dy * dy
                    nay1 = by1 + waa * (ay1 - by1) + sa * dy * dvy
                    nay2 = by2 + waa * (ay2 - by2) + sa * dvy * dvy
                    bx0 = ax0 + wbb * (bx0 - ax0) + sb * dx * dx
                    bx1 = ax1 + wbb * (bx1 - ax1) + sb * dx * dvx
                    bx2 = ax2 + wbb * (bx2 - ax2) + sb * dvx * dvx
                    by0 = ay0 + wbb * (by0 - ay0) + sb * dy * dy
                    by1 = ay1 + wbb * (by1 - ay1) + sb * dy * dvy
                    by2 = ay2 + wbb * (by2 - ay2) + sb * dvy * dvy
                    ax0, ax1, ax2, ay0, ay1, ay2 = nax0, nax1, nax2, nay0, nay1, nay2
                    # mixed means
                    nxa, nvxa, nya, nvya = xb + waa * dx, vxb + waa * dvx, yb + waa * dy, vyb + waa * dvy
                    xb, vxb, yb, vyb = xa - wbb * dx, vxa - wbb * dvx, ya - wbb * dy, vya - wbb * dvy
                    xa, vxa, ya, vya = nxa, nvxa, nya, nvya
                    mua, mub = ca, cb
                    # predict both models
                    xa += vxa * dt
                    ya += vya * dt
                    xb += vxb * dt
                    yb += vyb * dt
                    ax0 += dt * (2.0 * ax1 + dt * ax2) + qa0
                    ax1 += dt * ax2 + qa1
                    ax2 += qa2
                    ay0 += dt * (2.0 * ay1 + dt * ay2) + qa0
                    ay1 += dt * ay2 + qa1
                    ay2 += qa2
                    bx0 += dt * (2.0 * bx1 + dt * bx2) + qb0
                    bx1 += dt * bx2 + qb1
                    bx2 += qb2
                    by0 += dt * (2.0 * by1 + dt * by2) + qb0
                    by1 += dt * by2 + qb1
                    by2 += qb2
                    t_last = t
        if not restart and ok:
            sax, say, sbx, sby = ax0 + r2, ay0 + r2, bx0 + r2, by0 + r2
            nxa_, nya_, nxb_, nyb_ = zx - xa, zy - ya, zx - xb, zy - yb
            d2a = nxa_ * nxa_ / sax + nya_ * nya_ / say
            d2b = nxb_ * nxb_ / sbx + nyb_ * nyb_ / sby
            if d2a > gate and d2b > gate:
                inrow += 1
                if inrow >= maxrej:
                    restart = True
                    resets += 1
                else:
                    rej[i] = True
                    spikes += 1
            else:
                inrow = 0
                if alpha:  # learn r² from the innovation of the mixed prior
                    mx = mua * xa + mub * xb
                    my = mua * ya + mub * yb
                    ex, ey = zx - mx, zy - my
                    hph = 0.5 * (mua * (ax0 + ay0 + (xa - mx) ** 2 + (ya - my) ** 2)
                                 + mub * (bx0 + by0 + (xb - mx) ** 2 + (yb - my) ** 2))
                    r2 = min(max(r2 + alpha * (0.5 * (ex * ex + ey * ey) - hph - r2), lo2), hi2)
                # mode likelihoods (log, shifted) → posterior mode probabilities
                dl = 0.5 * (d2a - d2b + log((sax * say) / (sbx * sby)))  # log-likelihood b minus a
                if dl <= 0.0:
                    wa, wb = mua, mub * exp(dl)
                else:
                    wa, wb = mua * exp(-dl), mub
                tot = wa + wb
                mua = min(max(wa / tot, 1e-9), 1.0 - 1e-9)
                mub = 1.0 - mua
                # Kalman updates, per model and axis
                k0, k1 = ax0 / sax, ax1 / sax
                xa += k0 * nxa_
                vxa += k1 * nxa_
                ax2 -= k1 * ax1
                ax1 *= 1.0 - k0
                ax0 *= 1.0 - k0
                k0, k1 = ay0 / say, ay1 / say
                ya += k0 * nya_
                vya += k1 * nya_
                ay2 -= k1 * ay1
                ay1 *= 1.0 - k0
                ay0 *= 1.0 - k0
                k0, k1 = bx0 / sbx, bx1 / sbx
                xb += k0 * nxb_
                vxb += k1 * nxb_
                bx2 -= k1 * bx1
                bx1 *= 1.0 - k0
                bx0 *= 1.0 - k0
                k0, k1 = by0 / sby, by1 / sby
                yb += k0 * nyb_
                vyb += k1 * nyb_
                by2 -= k1 * by1
                by1 *= 1.0 - k0
                by0 *= 1.0 - k0
        if restart:
            t_last = t
            xa = xb = zx
            ya = yb = zy
            vxa = vxb = vya = vyb = 0.0
            ax0 = ay0 = bx0 = by0 = r2
            ax1 = ay1 = bx1 = by1 = 0.0
            ax2 = ay2 = bx2 = by2 = v0
            mua = mub = 0.5
            inrow = 0
        ox[i] = mua * xa + mub * xb
        oy[i] = mua * ya + mub * yb
        ovx[i] = mua * vxa + mub * vxb
        ovy[i] = mua * vya + mub * vyb
    new_state = None
    if init:
        new_state = {
            "ts": t_last, "mu": [mua, mub],
            "models": [{"x": [xa, vxa, ya, vya], "P": _cov4((ax0, ax1, ax2), (ay0, ay1, ay2))},
                       {"x": [xb, vxb, yb, vyb], "P": _cov4((bx0, bx1, bx2), (by0, by1, by2))}],
            "rejects_in_row": inrow, "r2": r2,
        }
    return ox, oy, ovx, ovy, rej, spikes, resets, new_state


def filter_positions(ts: list[float], xs: list, ys: list, state: dict | None, p: FilterParams = DEFAULT_PARAMS):
    """The position filter `p` asks for: IMM if p.q_pos_maneuver is set, else the single CV filter."""
    if p.q_pos_maneuver is None:
        return filter_positions_cv(ts, xs, ys, state, p)
    return filter_positions_imm(ts, xs, ys, state, p)


def filter_level_trend(ts: list[float], zs: list, state: dict | None, q: float, r: float, *,
                       trend_std: float = 0.5, gap_reset_s: float = 600.0,
                       bounds: tuple[float, float] | None = None):
    """1-D local level + trend KF (white-acceleration model) that predicts through nulls.

    Returns (levels, new_state); levels are None until the first non-null reading.
    """
    r2 = r * r
    b0 = trend_std * trend_std
    lo, hi = bounds if bounds is not None else (-math.inf, math.inf)
    n = len(ts)
    out = [None] * n
    if state is None:
        init = False
        t_last = l = b = p00 = p01 = p11 = 0.0
    else:
        init = True
        t_last = float(state["ts"])
        l, b = (float(v) for v in state["x"])
        (p00, p01), (_, p11) = state["P"]
    for i in range(n):
        t = ts[i]
        z = zs[i]
        ok = z is not None
        if ok:
            z = float(z)
            ok = z == z
        if not init:
            if ok:
                init = True
                t_last, l, b, p00, p01, p11 = t, z, 0.0, r2, 0.0, b0
                out[i] = min(max(l, lo), hi)
            continue
        dt = t - t_last
        if dt > 0.0:
            if dt > gap_reset_s and ok:
                t_last, l, b, p00, p01, p11 = t, z, 0.0, r2, 0.0, b0
                out[i] = min(max(l, lo), hi)
                continue
            l += b * dt
            qdt = q * dt
            p00 += dt * (2.0 * p01 + dt * p11) + qdt * dt * dt / 3.0
            p01 += dt * p11 + 0.5 * qdt * dt
            p11 += qdt
            t_last = t
        if ok:
            s = p00 + r2
            nu = z - l
            k0 = p00 / s
            k1 = p01 / s
            l += k0 * nu
            b += k1 * nu
            p11 -= k1 * p01
            p01 *= 1.0 - k0
            p00 *= 1.0 - k0
        out[i] = min(max(l, lo), hi)
    new_state = {"ts": t_last, "x": [l, b], "P": [[p00, p01], [p01, p11]]} if init else None
    return out, new_state


def filter_random_walk(ts: list[float], zs: list, state: dict | None, q: float, r: float, *,
                       gap_reset_s: float = 600.0):
    """1-D local-level (random walk) KF; nulls are prediction-only. Returns (levels, new_state)."""
    r2 = r * r
    n = len(ts)
    out = [None] * n
    if state is None:
        init = False
        t_last = l = pv = 0.0
    else:
        init = True
        t_last = float(state["ts"])
        l = float(state["x"][0])
        pv = float(state["P"][0][0])
    for i in range(n):
        t = ts[i]
        z = zs[i]
        ok = z is not None
        if ok:
            z = float(z)
            ok = z == z
        if not init:
            if ok:
                init = True
                t_last, l, pv = t, z, r2
                out[i] = l
            continue
        dt = t - t_last
        if dt > 0.0:
            if dt > gap_reset_s and ok:
                t_last, l, pv = t, z, r2
                out[i] = l
                continue
            pv += q * dt
            t_last = t
        if ok:
            k = pv / (pv + r2)
            l += k * (z - l)
            pv *= 1.0 - k
        out[i] = l
    new_state = {"ts": t_last, "x": [l], "P": [[pv]]} if init else None
    return out, new_state


def _column(event: dict, key: str, n: int) -> list:
    v = event.get(key)
    return [None] * n if v is None else v


def filter_event(event: dict, state: dict | None, params: FilterParams | None = None) -> tuple[dict, dict]:
    """Filter one device message and carry the device's filter state to the next message.

    `event`: {"event_id", "user_id", "device_id", "device_type", "ts", "x", "y", "hr"?, "acc"?}
    (validated upstream; "hr"/"acc" may be omitted or hold nulls). `state`: what the previous call
    returned for this device, or None for its first message (filters start from the first reading).
    Returns (filtered_event, new_state): the filtered event carries the ids and per reading "ts", "x",
    "y", "vx", "vy" (m, m/s), "hr" (null only while no HR was ever seen), "acc", plus "rejected"
    (bool per reading: the fix was gated out as a spike) and "spikes_rejected" (count in this message).
    The state is plain floats/lists (JSON-serializable) and holds each filter's last time, so gaps
    between messages are predicted over like any other dt.
    """
    p = params or DEFAULT_PARAMS
    st = state or {}
    ts = [float(t) for t in event["ts"]]
    n = len(ts)
    ox, oy, ovx, ovy, rej, spikes, resets, pos_state = filter_positions(
        ts, _column(event, "x", n), _column(event, "y", n), st.get("pos"), p)
    hr, hr_state = filter_level_trend(ts, _column(event, "hr", n), st.get("hr"), p.q_hr, p.r_hr,
                                      trend_std=p.init_hr_trend_std, gap_reset_s=p.gap_reset_s, bounds=p.hr_bounds)
    acc, acc_state = filter_random_walk(ts, _column(event, "acc", n), st.get("acc"), p.q_acc, p.r_acc,
                                        gap_reset_s=p.gap_reset_s)
    filtered = {k: event[k] for k in ("event_id", "user_id", "device_id", "device_type") if k in event}
    filtered.update(ts=ts, x=ox, y=oy, vx=ovx, vy=ovy, hr=hr, acc=acc, rejected=rej, spikes_rejected=spikes)
    new_state = {
        "version": STATE_VERSION,
        "pos": pos_state,
        "hr": hr_state if hr_state is not None else st.get("hr"),
        "acc": acc_state if acc_state is not None else st.get("acc"),
        "last_event_id": event.get("event_id"),
        "readings": int(st.get("readings", 0)) + n,
        "spikes_total": int(st.get("spikes_total", 0)) + spikes,
        "track_resets": int(st.get("track_resets", 0)) + resets,
    }
    return filtered, new_state
