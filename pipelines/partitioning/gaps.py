"""Input offsets the profile stream's agents never saw: the watermark and read-back of
pipelines.ingest.offset_holes (shared with the real-time path), keyed in the profile tables.

Why: Faust 0.15.3 can commit offsets of events no agent processed (issue 10: blocks of consecutive
CDRs, right after the offsets where a partition changed owner; run 11 of the live test caught 43 such
CDRs with its Kafka data kept). So each agent keeps, per input partition, the last offset it processed
(its "watermark") in its own table, written with the batch; a batch whose first offset of a partition
is more than one past it has a hole, read back from the broker and processed first, in offset order.
Offsets below the watermark are redeliveries, which the router and node steps already make harmless.
"""

from __future__ import annotations

from pipelines.ingest import offset_holes
from pipelines.ingest.offset_holes import advanced, missing  # noqa: F401 - this package's names for them

POS = "#pos"  # table key suffix of a watermark


def fetch(topic: str, holes: dict[int, tuple[int, int]], timeout: float = 30.0) -> list[tuple[int, int, bytes]]:
    """The records of `topic` in each hole, as (partition, offset, value), in offset order per partition.
    Raises TimeoutError when the broker does not return them all in `timeout` seconds."""
    return [(r.partition, r.offset, r.value) for r in offset_holes.fetch(topic, holes, timeout)]
