"""The MAPE-K loop: one step = monitor a sample, turn it into an Observation, let the policy
decide, let the effector act, keep the sample and the decision (with the effector's outcome) for
the store. The policy is any of pipelines.capacity.plan.Planner / policies.*: the bench runs the
same loop for each."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pipelines.capacity.decision import Decision, Observation
from pipelines.capacity.execute import Effector
from pipelines.capacity.monitor import Monitor, Sample


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
    t0: float = field(default_factory=time.time)
    samples: list[tuple[Sample, float, int]] = field(default_factory=list)
    decisions: list[tuple[Decision, str | None]] = field(default_factory=list)
    observations: list[Observation] = field(default_factory=list)

    def step(self) -> tuple[Observation, Decision, str | None]:
        s = self.monitor.sample(self.worker_logs())
        t = s.t - self.t0
        hour = self.hour_of(t)
        obs = observation(s, t, hour, self.effector.workers)
        d = self.policy.decide(obs)
        outcome = self.effector.apply(d) if d.changes else None
        self.samples.append((s, hour, obs.workers))
        self.observations.append(obs)
        self.decisions.append((d, outcome))
        return obs, d, outcome
