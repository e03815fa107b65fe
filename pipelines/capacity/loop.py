"""The MAPE-K loop: one step = monitor a sample, turn it into an Observation, let the policy
decide, let the effector act, keep the sample and the decision (with the effector's outcome) for
the store. The policy is any of pipelines.capacity.plan.Planner / policies.*: the bench runs the
same loop for each.

An "admission" decision (the planner's, beyond the cap) changes no worker: its plan goes to
`admission_sink` (pipelines.capacity.store.admission_recorder: the store, which every worker
follows), whose answer is the decision's outcome. A sink that fails is the outcome too; the
loop goes on."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pipelines.capacity.admission import AdmissionPlan
from pipelines.capacity.decision import Decision, Observation
from pipelines.capacity.execute import Effector
from pipelines.capacity.monitor import Monitor, Sample


NORMAL = AdmissionPlan("normal", None, 1.0, "no admission plan published yet")


def observation(s: Sample, t: float, hour: float, workers: int) -> Observation:
    """A sample as the policies see it; the group counts as settled only when the coordinator says
    Stable with exactly the workers the effector runs (a started worker that has not joined yet, or
    a stopped one still listed, means partitions are about to move)."""
    return Observation(t=t, hour=hour, arrival_rate=s.arrival_rate or 0.0, processing_rate=s.processing_rate or 0.0,
                       lag=float(s.lag), workers=workers, partitions=s.partitions, latency_s=s.latency_s,
                       true_rate=s.true_rate, busy_fraction=s.busy_fraction,
                       settled=s.settled and s.members == workers)


@dataclass
class ControlLoop:
    monitor: Monitor
    policy: object  # .decide(Observation) -> Decision, .name
    effector: Effector
    hour_of: Callable[[float], float]  # seconds since start -> hour of day on the load's clock
    worker_logs: Callable[[], dict[str, Path]] = dict
    admission_sink: Callable[[Decision], str] | None = None
    t0: float = field(default_factory=time.time)
    samples: list[tuple[Sample, float, int]] = field(default_factory=list)
    decisions: list[tuple[Decision, str | None]] = field(default_factory=list)
    observations: list[Observation] = field(default_factory=list)
    published: AdmissionPlan | None = None  # the last plan the sink recorded

    def step(self) -> tuple[Observation, Decision, str | None]:
        s = self.monitor.sample(self.worker_logs())
        t = s.t - self.t0
        hour = self.hour_of(t)
        obs = observation(s, t, hour, self.effector.workers)
        d = self.policy.decide(obs)
        outcome = self.effector.apply(d) if d.changes else None
        if d.admission is not None:
            outcome = self._publish(d)
        self.samples.append((s, hour, obs.workers))
        self.observations.append(obs)
        self.decisions.append((d, outcome))
        return obs, d, outcome

    def _publish(self, d: Decision) -> str:
        if self.admission_sink is None:
            return "admission plan not published (no admission sink)"
        try:
            outcome = self.admission_sink(d)
        except Exception as exc:  # noqa: BLE001 - a store outage must not stop the loop
            if hasattr(self.policy, "admission"):  # the workers still run the last published plan:
                self.policy.admission = self.published or NORMAL  # the next step decides the change again
            return f"admission plan not recorded: {exc.__class__.__name__}: {exc}"
        self.published = d.admission
        return outcome
