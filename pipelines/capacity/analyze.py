"""Analyze: burstiness (index of dispersion over several windows), smoothed latency, SLA risk.

Why several windows: I = Var(N_t) / E[N_t] is 1 for a Poisson stream at every window length t;
bursts that last minutes show up only once t reaches their length, so one window can call a
bursty day smooth (the capacity-planning survey's Fig. 1: burstiness at different scales).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np


def index_of_dispersion(counts: Sequence[float], window: int = 1) -> float:
    """I = Var(N_t) / E[N_t] of the counts summed over consecutive windows of `window` bins."""
    if window < 1:
        raise ValueError(f"window must be >= 1 bin, got {window}")
    x = np.asarray(counts, dtype=float)
    n = len(x) // window
    if n < 2:
        raise ValueError(f"need at least two windows of {window} bins, got {len(x)} bins")
    sums = x[: n * window].reshape(n, window).sum(axis=1)
    mean = sums.mean()
    if mean <= 0:
        raise ValueError("no arrivals: the index of dispersion is undefined")
    return float(sums.var(ddof=1) / mean)


def dispersion_profile(counts: Sequence[float], windows: Iterable[int]) -> dict[int, float]:
    """{window bins: I} for each window with at least two full windows in the series."""
    return {w: round(index_of_dispersion(counts, w), 3) for w in windows if len(counts) // w >= 2}


def counts_per_bin(times: Iterable[float], bin_s: float, start: float, end: float) -> np.ndarray:
    """Arrival times -> counts per bin of bin_s seconds over [start, end)."""
    edges = np.arange(start, end + bin_s, bin_s)
    return np.histogram(np.fromiter(times, float), bins=edges)[0]


class Ewma:
    """WL = alpha * L + (1 - alpha) * WL (the survey's smoothed latency); the first value seeds it."""

    def __init__(self, alpha: float = 0.3):
        if not 0.0 < alpha <= 1.0:
            raise ValueError(f"alpha must be in (0, 1], got {alpha}")
        self.alpha, self.value = alpha, None

    def add(self, x: float | None) -> float | None:
        if x is not None:
            self.value = x if self.value is None else self.alpha * x + (1.0 - self.alpha) * self.value
        return self.value


@dataclass(frozen=True)
class Risk:
    level: str  # "ok" / "low" (room to remove) / "risk" (approaching the SLA) / "violation"
    reason: str


def sla_risk(latency_s: float | None, sla_s: float, *, high: float = 0.8, low: float = 0.3,
             lag: float = 0.0, lag_growth_per_s: float = 0.0) -> Risk:
    """Classify smoothed latency against the SLA: over it, above `high`*SLA (or a growing backlog:
    latency follows the lag), or below `low`*SLA (a worker might be removable)."""
    if latency_s is None:
        return Risk("ok", "no latency measured yet")
    if latency_s > sla_s:
        return Risk("violation", f"latency {latency_s:.2f} s > SLA {sla_s:g} s")
    if latency_s > high * sla_s:
        return Risk("risk", f"latency {latency_s:.2f} s > {high:g} x SLA")
    if lag > 0 and lag_growth_per_s > 0:
        return Risk("risk", f"backlog {lag:.0f} growing {lag_growth_per_s:.1f}/s")
    if latency_s < low * sla_s:
        return Risk("low", f"latency {latency_s:.2f} s < {low:g} x SLA")
    return Risk("ok", f"latency {latency_s:.2f} s within SLA {sla_s:g} s")
