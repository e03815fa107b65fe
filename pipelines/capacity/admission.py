"""Admission control / degraded mode: what the score stage should do when even the cap of workers
cannot keep the latency under the SLA.

Why degrade before dropping: a rejected person loses the moment entirely, a degraded one gets a
push from fewer candidates. So the first step scores only the top candidates per person (cost
per moment falls roughly with the candidates scored); only when that is not enough are
low-priority people deferred (their moments wait a tick), and no one already admitted is
dropped downstream (the survey: police at the door, never at an inner tier).

Where it runs: the planner (pipelines.capacity.plan) makes the plan when the need is beyond the
cap and the workers are at the cap; the capacity loop records it in ops.admission_plans
(pipelines.capacity.admission_store); each worker follows it (admission_follow) and passes it to
the chain, which calls `admit(people, priority)` per micro-batch and scores `top_k` candidates per
person (pipelines.capacity.deferral, pipelines.online.chain).

What deferring saves: in this platform's chain a deferred person's records are still filtered
and turned into features (the state must advance in record order); only the scoring waits. So
the planner asks with defer_saves="score": admitting a share a of people leaves
(1 - s) + s * a * top_k / candidates of a record's cost, and no share can take more than the
score share s off it (`plan_cost`). defer_saves="record" is the survey's model (a deferred
person costs nothing this interval), for a door that drops whole records.
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


#: The least share a plan admits. When the demand would need fewer people admitted (deferring saves
#: only the scoring, so it cannot absorb much), the plan stays degraded and defers no one: deferring
#: nine people in ten for a few percent of capacity delays nearly everyone and restores the SLA for
#: no one (bench/capacity.py, 2026-12-02: the plan went to "admit 10 %" at every edge of the
#: capacity and those day-hours became SLA violations that two undeferred workers did not have).
MIN_SHARE = 0.1


def plan_cost(plan: AdmissionPlan, *, candidates: int = 10, score_share: float = 0.5,
              defer_saves: str = "record") -> float:
    """A record's cost under `plan`, as a share of its cost in normal mode (see the module docstring)."""
    k = plan.top_k if plan.top_k is not None else candidates
    scoring = score_share * min(k, candidates) / candidates
    if defer_saves == "score":
        return (1 - score_share) + scoring * plan.admit_share
    return ((1 - score_share) + scoring) * plan.admit_share


def plan_admission(demand: float, capacity_at_cap: float, *, candidates: int = 10,
                   degraded_top_k: int = 3, score_share: float = 0.5, defer_saves: str = "record") -> AdmissionPlan:
    """demand: records/s to serve; capacity_at_cap: records/s the capped workers serve within the
    SLA; score_share: the score stage's share of a record's cost (measure it: bench/stream.py's
    per-stage costs); scoring top_k of `candidates` leaves score_share * top_k / candidates of it.
    defer_saves: "record" (a deferred person costs nothing now) or "score" (only the scoring waits)."""
    if capacity_at_cap <= 0:
        raise ValueError(f"capacity must be > 0, got {capacity_at_cap}")
    if defer_saves not in ("record", "score"):
        raise ValueError(f"defer_saves is 'record' or 'score', not {defer_saves!r}")
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
    if defer_saves == "record":
        share = degraded_capacity / demand
    else:  # (1 - s) + s * k/n * share <= capacity / demand
        scoring = score_share * degraded_top_k / candidates
        share = (capacity_at_cap / demand - (1 - score_share)) / scoring if scoring > 0 else 0.0
    if defer_saves == "score" and share < MIN_SHARE:
        floor = capacity_at_cap / (1 - score_share) if score_share < 1 else float("inf")
        return AdmissionPlan("degraded", degraded_top_k, 1.0,
                             f"demand {demand:.1f}/s > {floor:.1f}/s, the most the cap serves even with every "
                             f"score deferred: deferring would delay nearly everyone and cannot restore the "
                             f"SLA, so no one is deferred; score the top {degraded_top_k} candidates only, the "
                             f"backlog grows until demand falls")
    return AdmissionPlan("admission", degraded_top_k, share,
                         f"demand {demand:.1f}/s > degraded capacity {degraded_capacity:.1f}/s: admit "
                         f"{share:.0%} of people (highest priority first), defer the rest")
