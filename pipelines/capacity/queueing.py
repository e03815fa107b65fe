"""M/M/c sizing: how many workers keep a latency percentile under the SLA at a measured service rate.

Why a queueing model and not a utilization threshold: the latency a stream promises is a tail
percentile, and at a fixed utilization the tail of the queueing delay still grows with the
arrival rate's scale and shrinks with the number of servers (pooling). Erlang C gives the
probability an arrival waits; in M/M/c the wait, given that it waits, is exponential with rate
c*mu - lam, so the response time (wait + service) has a closed-form tail we can invert by
bisection. A tier factor beta (the capacity-planning survey's beta_i) scales the arrival rate
for a stage whose work per input differs from one (fan-out > 1, caching < 1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass


def erlang_c(c: int, offered: float) -> float:
    """P(an arrival waits) in M/M/c with offered load a = lam/mu; 1.0 when the queue is unstable (a >= c)."""
    if c <= 0:
        raise ValueError(f"servers must be >= 1, got {c}")
    if offered < 0:
        raise ValueError(f"offered load must be >= 0, got {offered}")
    if offered >= c:
        return 1.0
    # sum_{k<c} a^k/k! and a^c/c!, built iteratively (no factorial overflow)
    term, head = 1.0, 0.0
    for k in range(c):
        head += term
        term *= offered / (k + 1)
    tail = term / (1.0 - offered / c)
    return tail / (head + tail)


def response_tail(t: float, c: int, lam: float, mu: float) -> float:
    """P(T > t) for the response time T = wait + service of M/M/c (FCFS)."""
    if mu <= 0:
        raise ValueError(f"service rate must be > 0, got {mu}")
    if lam >= c * mu:
        return 1.0
    pw = erlang_c(c, lam / mu)
    theta = c * mu - lam  # rate of the conditional wait
    no_wait = math.exp(-mu * t)
    if abs(theta - mu) < 1e-12 * mu:
        waited = (1.0 + mu * t) * math.exp(-mu * t)
    else:  # hypoexponential: Exp(theta) + Exp(mu)
        waited = (theta * math.exp(-mu * t) - mu * math.exp(-theta * t)) / (theta - mu)
    return (1.0 - pw) * no_wait + pw * waited


def response_percentile(q: float, c: int, lam: float, mu: float) -> float:
    """The q-quantile (0 < q < 1) of the response time in seconds; inf when unstable."""
    if not 0.0 < q < 1.0:
        raise ValueError(f"percentile must be in (0, 1), got {q}")
    if lam >= c * mu:
        return math.inf
    lo, hi = 0.0, 1.0 / mu
    while response_tail(hi, c, lam, mu) > 1.0 - q:
        hi *= 2.0
    for _ in range(100):
        mid = (lo + hi) / 2.0
        if response_tail(mid, c, lam, mu) > 1.0 - q:
            lo = mid
        else:
            hi = mid
    return hi


@dataclass(frozen=True)
class Sizing:
    workers: int  # the smallest count meeting the SLA, clamped to [minimum, cap]
    needed: int | None  # the unclamped need (None: not even `cap` meets the SLA)
    percentile_s: float  # the model's latency percentile at `workers`
    utilization: float  # lam_eff / (workers * mu)
    reason: str


def workers_for_sla(lam: float, mu: float, sla_s: float, q: float = 0.99, *, beta: float = 1.0,
                    minimum: int = 1, cap: int = 64) -> Sizing:
    """The fewest workers (each serving mu records/s) whose q-th response-time percentile for
    beta*lam records/s stays <= sla_s, within [minimum, cap]."""
    if sla_s <= 0 or minimum < 1 or cap < minimum:
        raise ValueError(f"need sla_s > 0 and 1 <= minimum <= cap (got {sla_s}, {minimum}, {cap})")
    lam_eff = max(lam, 0.0) * beta
    for c in range(minimum, cap + 1):
        p = response_percentile(q, c, lam_eff, mu)
        if p <= sla_s:
            return Sizing(c, c, p, lam_eff / (c * mu),
                          f"M/M/{c}: p{q * 100:g} {p:.3f} s <= SLA {sla_s:g} s at {lam_eff:.1f}/s, mu {mu:.1f}/s")
    p = response_percentile(q, cap, lam_eff, mu)
    return Sizing(cap, None, p, lam_eff / (cap * mu),
                  f"beyond the cap: even {cap} workers give p{q * 100:g} {p:.3f} s > SLA {sla_s:g} s "
                  f"at {lam_eff:.1f}/s (admission control)")
