"""Input offsets an agent never processed, found from its own durable watermark and read back.

Why: Faust 0.15.3 can commit past a record no agent processed. Seen in the platform test (the Kafka
log read back afterwards): right at a rebalance a worker kept sensor.raw partition 3 and took offset
169 (a watch upload) into the person's state without offset 168 (the phone upload of the same moment);
the moment was fused from the watch alone, 168 never reached the state and no dead letter names it, and
the next commits moved past it. Faust's stream skips, and acks, an event fetched under the previous
group generation or while flow control is suspended (faust/streams.py `__aiter__`), and its consumer's
head-gap check lets a commit jump one unacked offset (`Consumer._new_offset`); a record delivered after
a higher offset of its partition is, by the stage's redelivery rule, taken as processed before.
Traced in a later run (OSR_STREAM_TRACE=1): after a rebalance a worker's first batch of partition 2
was offsets 127-129 and its next 130, then 111-133: records fetched ahead of the committed offset were
delivered before Faust's seek back to it (111-126 were read back here and processed first). So an agent keeps, per input partition, the last offset it
processed (a "watermark", logged with its batch); a batch whose first offset of a partition is more
than one past the watermark has a hole, which is read back from the broker and processed first.
Offsets at or below the watermark are redeliveries, which the stage's redelivery rules handle.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass


@dataclass(frozen=True)
class Record:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_s: float  # the record's timestamp (producer create time), seconds


def missing(watermarks: dict[int, int], offsets: list[tuple[int, int]]) -> dict[int, tuple[int, int]]:
    """partition -> (first, last) offsets skipped before this batch's records of that partition.

    watermarks: partition -> last offset processed (a partition absent: unknown, not checked);
    offsets: the batch's (partition, offset) pairs in delivery order. A hole inside the batch counts
    too (the first one per partition)."""
    out: dict[int, tuple[int, int]] = {}
    last = dict(watermarks)
    for p, o in offsets:
        if p in last and p not in out and o > last[p] + 1:
            out[p] = (last[p] + 1, o - 1)
        last[p] = max(last.get(p, o), o)
    return out


def advanced(watermarks: dict[int, int], offsets: list[tuple[int, int]]) -> dict[int, int]:
    """The watermarks after a batch: each partition it touched at the highest offset seen."""
    out: dict[int, int] = {}
    for p, o in offsets:
        out[p] = max(out.get(p, watermarks.get(p, -1)), o)
    return out


def fetch(topic: str, holes: dict[int, tuple[int, int]], timeout: float = 30.0) -> list[Record]:
    """The records of `topic` in each hole, in offset order per partition (a blocking read: run it in a
    thread). Raises TimeoutError when the broker does not return them all within `timeout` s."""
    from confluent_kafka import Consumer, KafkaError, TopicPartition

    from pipelines.ingest.kafka_clients import consumer_config

    c = Consumer(consumer_config(f"osr-hole-reader-{uuid.uuid4().hex[:8]}", **{"enable.partition.eof": True}))
    out: list[Record] = []
    try:
        c.assign([TopicPartition(topic, p, first) for p, (first, _) in holes.items()])
        left = {p: last for p, (_, last) in holes.items()}
        deadline = time.monotonic() + timeout
        while left:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{topic}: holes {holes} not read back in {timeout:.0f} s (left {left})")
            for m in c.consume(500, timeout=0.5):
                p = m.partition()
                if p not in left:
                    continue
                if m.error() is not None:
                    if m.error().code() == KafkaError._PARTITION_EOF:
                        raise ValueError(f"{topic}:{p}: hole up to {left[p]} lies past the partition's end")
                    continue
                if m.offset() <= left[p]:
                    out.append(Record(p, m.offset(), m.key(), m.value(), m.timestamp()[1] / 1000.0))
                if m.offset() >= left[p]:
                    del left[p]
        return sorted(out, key=lambda r: (r.partition, r.offset))
    finally:
        c.close()


def processed_but_unacked(committed: int | None, lowest_pending: int | None, watermark: int | None
                          ) -> tuple[int, int] | None:
    """(first, last) offsets of one partition that the consumer will never ack although the agent
    processed them, else None.

    Why: after a rebalance Faust can deliver records fetched ahead of its committed offset before it
    seeks back, and then drops the older ones as already read (`Consumer._drain_messages`: an offset
    below the read offset is not delivered). If they were processed before the rebalance (at or below
    the agent's watermark) nothing is lost, but they are never acked in this generation, and Faust's
    commit (the run of acked offsets from the committed one) stops below them for good. Seen in a
    fresh-clone platform test: partition 2 committed at 129 for 8 minutes, every record to 519 in
    state.features, the drain never ending.

    committed: Faust's committed offset (the next offset to read); lowest_pending: the lowest offset
    acked or about to be acked (this batch's); watermark: the last offset the agent processed (its
    durable state). Offsets above the watermark are not covered: those are holes, read back by
    `missing`."""
    if committed is None or lowest_pending is None or watermark is None:
        return None
    last = min(lowest_pending - 1, watermark)
    return (committed, last) if last >= committed else None
