"""Waiting for the broker's acks of one batch's outputs, bounded, telling a wedged producer from a broker outage.

Why: aiokafka 0.14 (under Faust 0.15.3) once left the produce batches of three profiles.updates partitions
unresolved for 11 minutes while the same producer kept delivering other partitions. The router waited on them
for good, and so did every commit of that worker (Faust's commit flushes the whole producer first), so a
rebalance could not finish either. Nothing inside the process un-wedges it. So after `timeout` seconds a probe
(one small record sent through the same producer) decides: acked -> the producer is wedged, give up the
process (`on_wedged`, which must not return: the worker exits, the group hands its partitions to a healthy
worker that replays them from the last commit, and every router and node step is idempotent; a dead process
cannot deliver the wedged records late). Not acked -> the broker is away: keep waiting (`on_waiting`).
"""

from __future__ import annotations

import asyncio
import time
from typing import Awaitable, Callable, Iterable


async def wait_acked(futures: Iterable[Awaitable], *, timeout: float, probe: Callable[[], Awaitable[bool]],
                     on_wedged: Callable[[int, int, float], None],
                     on_waiting: Callable[[int, int, float], None] = lambda pending, total, waited: None) -> None:
    """Return once every future is done (raising the first send error); see the module docstring."""
    futs = [asyncio.ensure_future(f) for f in futures]
    started = time.monotonic()
    while futs:
        done, pending = await asyncio.wait(futs, timeout=timeout)
        if not pending:
            for f in futs:
                f.result()
            return
        waited = time.monotonic() - started
        if await probe():
            on_wedged(len(pending), len(futs), waited)
            raise RuntimeError("on_wedged returned: the process must end when its producer is wedged")
        on_waiting(len(pending), len(futs), waited)
