"""What every capacity policy sees (an Observation) and what it returns (a Decision with its reason).

One shape for all policies so the bench compares them on the same samples and the store records
each decision with the inputs it was taken on."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from pipelines.capacity.admission import AdmissionPlan


@dataclass(frozen=True)
class Observation:
    t: float  # seconds since the loop started (real time of the replay)
    hour: float  # hour of day (0-24) of the load's own clock (compressed in a replay)
    arrival_rate: float  # records/s into the group's input topic
    processing_rate: float  # records/s the group committed
    lag: float  # records not committed yet (log-end - committed, summed over partitions)
    workers: int  # workers running (started, not stopped)
    partitions: int  # partitions of the input topic: more workers than this would idle
    latency_s: float | None = None  # the latency percentile measured over the last interval
    true_rate: float | None = None  # records per busy second of one worker (DS2's true processing rate)
    busy_fraction: float | None = None  # mean share of wall time the workers were busy
    settled: bool = True  # every running worker is ready and the group has finished rebalancing

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Decision:
    t: float
    policy: str
    action: str  # hold / scale_up / scale_down_temporary / scale_down_permanent / restore / admission
    #: (admission: the admission mode changed, normal / degraded / admission; the workers stay)
    workers_from: int
    workers_to: int
    reason: str
    state: str = "STEADY"  # the planner's state after the decision (STEADY / MIGRATION / PROBATION)
    inputs: dict = field(default_factory=dict)
    admission: AdmissionPlan | None = None  # set on an "admission" decision: the plan the workers follow from now

    @property
    def changes(self) -> bool:
        return self.workers_to != self.workers_from

    def as_dict(self) -> dict:
        return asdict(self)


def clamp(n: int, minimum: int, cap: int) -> int:
    return max(minimum, min(cap, n))
