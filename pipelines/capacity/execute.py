"""Execute: the effectors, as callables passed in (start a worker with an index, stop one), so this
package never knows how a Faust worker is started (pipelines.ops.commands.capacity and the bench
pass pipelines.ops.demo's start/stop; a simulation passes its own).

A temporary removal stops a worker like a permanent one (a stopped Faust worker hands its
partitions back in a rebalance); what is temporary is the planner's state: a restore starts a
worker again at once, and no further removal happens until it is made permanent."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from pipelines.capacity.decision import Decision


@dataclass
class Effector:
    start: Callable[[int], int]  # index -> pid
    stop: Callable[[int], str]  # index -> what happened
    running: dict[int, int] = field(default_factory=dict)  # index -> pid
    actions: list[dict] = field(default_factory=list)

    @property
    def workers(self) -> int:
        return len(self.running)

    def apply(self, d: Decision) -> str | None:
        """Start or stop workers until `d.workers_to` run; returns the outcome to record (None: nothing to do)."""
        done = []
        while len(self.running) < d.workers_to:
            index = next(i for i in range(len(self.running) + 1) if i not in self.running)
            try:
                pid = self.start(index)
            except Exception as exc:  # noqa: BLE001 - recorded with the decision, the loop goes on
                done.append(f"start of worker {index} failed: {exc}")
                break
            self.running[index] = pid
            done.append(f"started worker {index} (pid {pid})")
        while len(self.running) > d.workers_to:
            index = max(self.running)
            pid = self.running.pop(index)
            done.append(f"stopped worker {index} (pid {pid}): {self.stop(index)}")
        if done:
            self.actions.append({"t": d.t, "action": d.action, "did": done, "reason": d.reason})
        return "; ".join(done) if done else None

    def stop_all(self) -> list[str]:
        out = [f"worker {i}: {self.stop(i)}" for i in sorted(self.running)]
        self.running.clear()
        return out
