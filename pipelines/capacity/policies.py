"""The baselines the predictive planner is compared with, each as the system it imitates does it.

- Static: a fixed worker count (today's two-worker group).
- Lag threshold (KEDA's Kafka scaler behind the HPA): desired = ceil(lag / lagThreshold), at
  most one replica per partition and at most maxReplicaCount (`maximum`); scale-up at once, scale-down to the highest desire of the
  stabilization window (the HPA's scaleDown.stabilizationWindowSeconds).
- DS2 (the Flink Kubernetes operator's autoscaler): true processing rate = records / busy time;
  parallelism = ceil((observed rate + backlog / catch-up time) / (true rate * target
  utilization)), at most the maximum parallelism (`maximum`) and the partitions; no decision within the stabilization interval after a rescale, and a
  scale-down only once it has been wanted for the scale-down delay.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

from pipelines.capacity.decision import Decision, Observation, clamp


def _decide(policy: str, obs: Observation, target: int, reason: str, inputs: dict) -> Decision:
    if target > obs.workers:
        action = "scale_up"
    elif target < obs.workers:
        action = "scale_down_permanent"
    else:
        action = "hold"
    return Decision(obs.t, policy, action, obs.workers, target, reason, "STEADY", inputs)


def _cap(maximum: int | None, obs: Observation) -> int:
    """The most workers a baseline may ask for: one per partition, and the operator's maximum if set."""
    return obs.partitions if maximum is None else min(maximum, obs.partitions)


@dataclass
class StaticPolicy:
    workers: int = 2
    name: str = "static"

    def decide(self, obs: Observation) -> Decision:
        return _decide(self.name, obs, self.workers, f"static provisioning: {self.workers} workers", {})


@dataclass
class LagThresholdPolicy:
    lag_threshold: float = 500.0  # records of lag per replica (KEDA lagThreshold)
    minimum: int = 1
    stabilization_s: float = 30.0  # HPA scale-down stabilization window (300 s default, compressed)
    maximum: int | None = None  # maxReplicaCount; None: the partitions only
    name: str = "reactive_lag"
    _desired: deque = field(default_factory=deque)

    def decide(self, obs: Observation) -> Decision:
        cap = _cap(self.maximum, obs)
        want = clamp(math.ceil(obs.lag / self.lag_threshold), self.minimum, cap)
        self._desired.append((obs.t, want))
        while self._desired and self._desired[0][0] < obs.t - self.stabilization_s:
            self._desired.popleft()
        target = want if want >= obs.workers else max(w for _t, w in self._desired)
        reason = (f"lag {obs.lag:.0f} / threshold {self.lag_threshold:g} -> {want} "
                  f"(cap {cap}{'' if cap < obs.partitions else ' partitions'})")
        if target != want:
            reason += f"; scale-down held to {target} by the {self.stabilization_s:g} s stabilization window"
        return _decide(self.name, obs, target, reason, {"lag": obs.lag, "desired": want})


@dataclass
class Ds2Policy:
    target_utilization: float = 0.7
    catch_up_s: float = 30.0  # time the backlog should drain in
    stabilization_s: float = 20.0  # no decision this long after a rescale
    scale_down_delay_s: float = 30.0  # a lower parallelism must be wanted this long
    minimum: int = 1
    maximum: int | None = None  # the operator's maximum parallelism; None: the partitions only
    name: str = "ds2"
    _last_change: float = -math.inf
    _down_since: float | None = None
    _true_rate: float | None = None

    def decide(self, obs: Observation) -> Decision:
        if obs.true_rate:
            self._true_rate = obs.true_rate
        if obs.t - self._last_change < self.stabilization_s or not obs.settled:
            return _decide(self.name, obs, obs.workers, "stabilizing after a rescale", {})
        if not self._true_rate:
            return _decide(self.name, obs, obs.workers, "no busy-time measurement yet", {})
        demand = obs.arrival_rate + obs.lag / self.catch_up_s
        want = clamp(math.ceil(demand / (self._true_rate * self.target_utilization)), self.minimum,
                     _cap(self.maximum, obs))
        reason = (f"rate {obs.arrival_rate:.1f}/s + backlog {obs.lag:.0f}/{self.catch_up_s:g} s over true rate "
                  f"{self._true_rate:.1f}/s x {self.target_utilization:g} -> {want}")
        target = want
        if want < obs.workers:
            self._down_since = obs.t if self._down_since is None else self._down_since
            if obs.t - self._down_since < self.scale_down_delay_s:
                target = obs.workers
                reason += f"; scale-down waits {self.scale_down_delay_s:g} s"
        else:
            self._down_since = None
        if target != obs.workers:
            self._last_change, self._down_since = obs.t, None
        return _decide(self.name, obs, target, reason, {"demand": demand, "true_rate": self._true_rate})
