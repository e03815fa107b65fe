"""Seeded synthetic sensor traces with known ground truth.

Why: filtering can only be scored against a truth, and tests / benchmarks need
traces with the noise the devices really produce (Gaussian GPS noise, rare
100–500 m spikes, irregular sampling with gaps, HR noise and dropouts), plus
the exact set of injected spikes, so spike rejection can be counted.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: (cruise speed m/s, speed wobble m/s, heading-rate noise rad/s, corner turns?, stops?, HR base bpm)
_KINDS: dict[str, tuple[float, float, float, bool, bool, float]] = {
    "walk": (1.4, 0.2, 0.05, True, False, 95.0),
    "run": (3.2, 0.4, 0.04, True, False, 150.0),
    "drive": (12.0, 3.0, 0.01, True, True, 80.0),
}


@dataclass
class SimTrace:
    """One device's simulated readings plus the truth they were drawn from."""

    ts: np.ndarray          # (n,) epoch seconds, increasing, irregular
    truth_xy: np.ndarray    # (n, 2) true position [m]
    truth_v: np.ndarray     # (n, 2) true velocity [m/s]
    xy: np.ndarray          # (n, 2) measured position [m] (noise + spikes)
    spike: np.ndarray       # (n,) bool: reading carries an injected outlier
    truth_hr: np.ndarray    # (n,) true heart rate [bpm]
    hr: np.ndarray          # (n,) measured heart rate, NaN = dropout
    truth_acc: np.ndarray   # (n,) true acceleration magnitude [m/s²]
    acc: np.ndarray         # (n,) measured acceleration magnitude

    def event(self, start: int = 0, stop: int | None = None, *, event_id: str = "ev-0", user_id: str = "u-0",
              device_id: str = "d-0", device_type: str = "watch") -> dict:
        """The readings [start:stop] as a stream event (HR null for dropouts, all null for phones)."""
        sl = slice(start, stop)
        n = len(self.ts[sl])
        hr = [None if np.isnan(v) else float(v) for v in self.hr[sl]] if device_type == "watch" else [None] * n
        return {
            "event_id": event_id, "user_id": user_id, "device_id": device_id, "device_type": device_type,
            "ts": self.ts[sl].tolist(), "x": self.xy[sl, 0].tolist(), "y": self.xy[sl, 1].tolist(),
            "hr": hr, "acc": self.acc[sl].tolist(),
        }


def _truth_path(kind: str, duration: float, rng: np.random.Generator):
    """True path on a 10 Hz grid: (tf, x, y, vx, vy) with tf relative seconds."""
    cruise, wobble, heading_noise, corners, stops, _ = _KINDS[kind]
    h = 0.1
    tf = np.arange(0.0, duration + 2 * h, h)
    m = len(tf)
    speed_target = np.full(m, cruise)
    # slow speed wobble: white noise smoothed over ~20 s, scaled to `wobble` m/s std
    wob = np.convolve(rng.normal(0, 1, m), np.ones(200) / 200, mode="same")
    speed_target = np.clip(speed_target + wobble * wob / (np.std(wob) + 1e-9), 0.0, None)
    turns = []
    if corners:  # a 90° turn over ~6 s roughly every 60-90 s
        t_turn = rng.uniform(20, 60)
        while t_turn < tf[-1]:
            turns.append(t_turn)
            t_turn += rng.uniform(60, 90)
    if stops:  # drives: stop ~20 s every ~120 s, and slow to ~5 m/s through corners
        period, stop_len = 120.0, 20.0
        phase = rng.uniform(0, period)
        speed_target[((tf + phase) % period) < stop_len] = 0.0
        for t_turn in turns:
            sel = (tf >= t_turn - 4.0) & (tf < t_turn + 8.0)
            speed_target[sel] = np.minimum(speed_target[sel], 5.0)
    # first-order speed response (acceleration limited)
    amax = 2.5 if kind == "drive" else 1.0
    speed = np.empty(m)
    s = speed_target[0]
    for i in range(m):
        s += min(max(speed_target[i] - s, -amax * h), amax * h)
        speed[i] = s
    heading_rate = rng.normal(0, heading_noise, m)
    for t_turn in turns:
        sel = (tf >= t_turn) & (tf < t_turn + 6.0)
        heading_rate[sel] += rng.choice([-1, 1]) * (np.pi / 2) / 6.0
    heading = rng.uniform(0, 2 * np.pi) + np.cumsum(heading_rate) * h
    vxf, vyf = speed * np.cos(heading), speed * np.sin(heading)
    x0, y0 = rng.uniform(-5000, 5000, 2)
    xf = x0 + np.concatenate([[0.0], np.cumsum(vxf[:-1]) * h])
    yf = y0 + np.concatenate([[0.0], np.cumsum(vyf[:-1]) * h])
    return tf, xf, yf, vxf, vyf


def simulate_trace(kind: str = "walk", n: int = 600, seed: int = 0, *, gps_std: float = 7.0,
                   spike_rate: float = 0.03, spike_range: tuple[float, float] = (100.0, 500.0),
                   dt_mean: float = 1.0, dt_jitter: float = 0.3, gap_rate: float = 0.01,
                   hr_std: float = 4.0, hr_dropout: float = 0.1, acc_std: float = 0.8,
                   t0: float = 1_760_000_000.0, device: int = 0, offset: float | None = None) -> SimTrace:
    """A walk, run or drive in planar city coordinates, sampled at ~1 Hz with jitter and occasional gaps.

    The path follows a speed profile (with stops at lights for drives) and a heading that wanders and
    makes smooth 90° corner turns; truth is integrated at 10 Hz and read at the sample times.
    `seed` fixes the path; `device` picks an independent sampling/noise stream on the same path
    (several devices of one person); `offset` is the first reading's time after t0 (default random
    in [0, dt_mean), so devices are not in step).
    """
    if kind not in _KINDS:
        raise ValueError(f"kind must be one of {sorted(_KINDS)}, got {kind!r}")
    cruise, hr_base = _KINDS[kind][0], _KINDS[kind][5]
    tf, xf, yf, vxf, vyf = _truth_path(kind, 2.0 * n * dt_mean + 120.0, np.random.default_rng([seed, 0]))
    rng = np.random.default_rng([seed, 1, device])

    # irregular sample times: jittered ~1 s steps, plus rare gaps of 3-10 s
    steps = dt_mean + rng.uniform(-dt_jitter, dt_jitter, n - 1)
    gaps = rng.random(n - 1) < gap_rate
    steps[gaps] += rng.uniform(2.0, 9.0, gaps.sum())
    rel = np.concatenate([[0.0], np.cumsum(steps)]) + (rng.uniform(0.0, dt_mean) if offset is None else offset)
    if rel[-1] > tf[-1]:
        raise ValueError("trace longer than the simulated path; lower gap_rate")
    ts = t0 + rel
    truth_xy = np.column_stack([np.interp(rel, tf, xf), np.interp(rel, tf, yf)])
    truth_v = np.column_stack([np.interp(rel, tf, vxf), np.interp(rel, tf, vyf)])

    xy = truth_xy + rng.normal(0, gps_std, (n, 2))
    spike = rng.random(n) < spike_rate
    spike[0] = False  # a track that starts on an outlier is a different (rarer) problem; tested separately
    ang = rng.uniform(0, 2 * np.pi, spike.sum())
    mag = rng.uniform(*spike_range, spike.sum())
    xy[spike] += np.column_stack([mag * np.cos(ang), mag * np.sin(ang)])

    # heart rate: follows effort (speed) with a slow drift, noisy, with dropouts
    sp = np.hypot(truth_v[:, 0], truth_v[:, 1])
    effort = 15.0 * (sp / cruise - 1.0) if kind != "drive" else 0.0
    truth_hr = hr_base + effort + 8.0 * np.sin(2 * np.pi * rel / 400.0 + (seed % 7))
    hr = truth_hr + rng.normal(0, hr_std, n)
    hr[rng.random(n) < hr_dropout] = np.nan

    # acceleration magnitude: activity level plus a slow component
    acc_base = {"walk": 1.2, "run": 3.0, "drive": 0.6}[kind]
    truth_acc = acc_base + 0.3 * np.sin(2 * np.pi * rel / 120.0) + np.abs(np.gradient(sp, rel)) * 0.5
    acc = truth_acc + rng.normal(0, acc_std, n)
    return SimTrace(ts=ts, truth_xy=truth_xy, truth_v=truth_v, xy=xy, spike=spike,
                    truth_hr=truth_hr, hr=hr, truth_acc=truth_acc, acc=acc)


def simulate_multi_sensor(n_sensors: int = 4, n: int = 300, seed: int = 0, *, kind: str = "walk",
                          gps_std: tuple[float, ...] | float = (5.0, 7.0, 9.0, 10.0), dt: float = 1.0,
                          spike_rate: float = 0.0, missing_rate: float = 0.0,
                          t0: float = 1_760_000_000.0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Several sensors observing one person on a common time grid: (ts, truth (T,2), Z (T,n,2) NaN=missing, std (n,))."""
    base = simulate_trace(kind, n=n, seed=seed, spike_rate=0.0, dt_jitter=0.0, gap_rate=0.0, dt_mean=dt, t0=t0,
                          offset=0.0)
    rng = np.random.default_rng(seed + 10_007)
    std = np.resize(np.asarray(gps_std, dtype=float), n_sensors)
    Z = base.truth_xy[:, None, :] + rng.normal(0, 1, (n, n_sensors, 2)) * std[None, :, None]
    if spike_rate > 0:
        sp = rng.random((n, n_sensors)) < spike_rate
        sp[0] = False
        ang = rng.uniform(0, 2 * np.pi, sp.sum())
        mag = rng.uniform(100, 500, sp.sum())
        Z[sp] += np.column_stack([mag * np.cos(ang), mag * np.sin(ang)])
    if missing_rate > 0:
        miss = rng.random((n, n_sensors)) < missing_rate
        miss[0] = False
        Z[miss] = np.nan
    return base.ts, base.truth_xy, Z, std
