"""The admission plan for a running stream worker: what the capacity loop last recorded in the store.

Why through the store, as the tuner rules are followed (pipelines.online.tuner_rules.RulesFollower):
the capacity loop and every worker already reach it, a plan is a few fields changing a few times a
day, and the store keeps the history with the reason. A worker holds one `AdmissionFollower`;
`refresh()` (blocking: the stream calls it from an executor on a timer) reads the newest plan
through its own read-only connection, which never takes the writer lock; `current()` (what the
chain gets per micro-batch) returns the last plan read without touching the store.

Never raises. While the store cannot be read the follower keeps serving the last plan it read
(logged once per outage, not per poll); a worker that never read one, or a store where none was
recorded, runs normal. A plan outlives the loop that recorded it: if the loop stops during an
overload, the workers stay in that mode until a new plan is recorded (`osr capacity admission
normal` ends it by hand).
"""

from __future__ import annotations

import logging
import threading

from pipelines.capacity.admission import AdmissionPlan
from pipelines.capacity.deferral import NORMAL
from pipelines.capacity.store import read_plan
from pipelines.store.kept_connection import KeptConnection

log = logging.getLogger(__name__)

#: Seconds between a worker's reads of the plan (a plan change reaches the workers within this).
POLL_S = 2.0


class AdmissionFollower(KeptConnection):
    def __init__(self, store=None, poll_s: float = POLL_S):
        self.store = store
        self.poll_s = float(poll_s)
        self.version: int | None = None  # of the plan served; None: none read (normal)
        self._plan: AdmissionPlan = NORMAL
        self._con = None
        self._lock = threading.Lock()
        self._failing: str | None = None

    def current(self) -> AdmissionPlan:
        """The plan last read (normal until one was). Never touches the store."""
        return self._plan

    def refresh(self) -> AdmissionPlan:
        """Read the current plan from the store; on any failure keep the last one. Never raises."""
        with self._lock:
            ok, found = self._read_kept(lambda: read_plan(self._connection()), "admission plan",
                                        lambda: f"version {self.version} ({self._plan.mode})" if self.version
                                        else "normal", log)
            if not ok:
                return self._plan
            version, plan = (found[0], found[1]) if found else (None, NORMAL)
            if version != self.version:
                log.info("admission plan: version %s, %s (%s)", version, plan.mode, plan.reason)
            self.version, self._plan = version, plan
            return plan
