"""Admission control / degraded mode: what the score stage should do when even the cap of workers
cannot keep the latency under the SLA.

Why degrade before dropping: a rejected person loses the moment entirely, a degraded one gets a
push from fewer candidates. So the first step scores only the top candidates per person (cost
per moment falls roughly with the candidates scored); only when that is not enough are
low-priority people deferred (their moments wait a tick), and no one already admitted is
dropped downstream (the survey: police at the door, never at an inner tier).

The hook the score stage needs (integrated by the lead in streams/ and pipelines/online/): per
micro-batch, read the current `AdmissionPlan` (published by the capacity loop, e.g. on a small
control topic or a file the worker polls like the tuner rules), call `admit(people, priority)`
to split the batch into admitted / deferred, and pass `plan.top_k` to the OSR score as the number
of candidates per person (None = all).
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class AdmissionPlan:
    mode: str  # "normal" / "degraded" / "admission"
    top_k: int | None  # candidates to score per person (None: all)
    admit_share: float  # share of people admitted this interval (1.0: everyone)
    reason: str

    def admit(self, people: list[str], priority: dict[str, float]) -> tuple[list[str], list[str]]:
        """Split people into (admitted, deferred): the highest priority first; ties by id (stable)."""
        if self.admit_share >= 1.0:
            return list(people), []
        ranked = sorted(people, key=lambda p: (-priority.get(p, 0.0), p))
        n = max(1, math.floor(len(ranked) * self.admit_share)) if ranked else 0
        return ranked[:n], ranked[n:]


def plan_admission(demand: float, capacity_at_cap: float, *, candidates: int = 10,
                   degraded_top_k: int = 3, score_share: float = 0.5) -> AdmissionPlan:
    """demand: records/s to serve; capacity_at_cap: records/s the capped workers serve within the
    SLA; score_share: the score stage's share of a record's cost (measure it: bench/stream.py's
    per-stage costs); scoring top_k of `candidates` leaves score_share * top_k / candidates of it."""
    if capacity_at_cap <= 0:
        raise ValueError(f"capacity must be > 0, got {capacity_at_cap}")
    if demand <= capacity_at_cap:
        return AdmissionPlan("normal", None, 1.0, f"demand {demand:.1f}/s within capacity {capacity_at_cap:.1f}/s")
    if not 0 <= score_share <= 1 or not 0 < degraded_top_k <= candidates:
        raise ValueError(f"need 0 <= score_share <= 1 and 0 < top_k <= candidates ({score_share}, {degraded_top_k})")
    cost = (1 - score_share) + score_share * degraded_top_k / candidates
    degraded_capacity = capacity_at_cap / cost
    if demand <= degraded_capacity:
        return AdmissionPlan("degraded", degraded_top_k, 1.0,
                             f"demand {demand:.1f}/s > capacity {capacity_at_cap:.1f}/s at the cap: "
                             f"score the top {degraded_top_k} candidates only")
    share = degraded_capacity / demand
    return AdmissionPlan("admission", degraded_top_k, share,
                         f"demand {demand:.1f}/s > degraded capacity {degraded_capacity:.1f}/s: admit "
                         f"{share:.0%} of people (highest priority first), defer the rest")
