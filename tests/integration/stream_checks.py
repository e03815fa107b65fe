"""Reading what the stream produced straight from the broker, the way a downstream system would."""

from __future__ import annotations

import json
import uuid

from pipelines.ingest.kafka_clients import consumer_config


def read_topic(topic: str, timeout: float = 30.0, isolation: str = "read_committed") -> list[dict]:
    """Every message of `topic` (decoded JSON), read with its own group from the beginning to the end."""
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer(consumer_config(f"check-{uuid.uuid4().hex[:8]}", **{"isolation.level": isolation}))
    try:
        parts = c.list_topics(topic, timeout=timeout).topics[topic].partitions
        ends = {}
        for p in parts:
            low, high = c.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout, cached=False)
            if high > low:
                ends[p] = high
        c.assign([TopicPartition(topic, p, 0) for p in parts])
        out = []
        import time

        deadline = time.monotonic() + timeout
        idle = 0
        while ends and time.monotonic() < deadline:
            msgs = c.consume(1000, timeout=0.5)
            idle = idle + 1 if not msgs else 0
            for m in msgs:
                if m.error():
                    continue
                out.append(json.loads(m.value()))
                if m.offset() + 1 >= ends.get(m.partition(), 0):
                    ends.pop(m.partition(), None)
            if idle >= 4:  # read_committed stops before transaction markers at the end
                break
        return out
    finally:
        c.close()


def read_moments(topic: str) -> list[tuple[str, str]]:
    """(person, moment) of every push on a notifications-like topic, duplicates kept."""
    return [(n["user_id"], n["event_id"]) for n in read_topic(topic)]


def store_rows(sql: str) -> list[tuple]:
    """Rows of a read-only query against the configured store (which the sink may be writing meanwhile)."""
    from pipelines.store.db import connect

    con = connect(read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def alive(pid) -> bool:
    import os

    try:
        os.kill(pid, 0)
        return True
    except (ProcessLookupError, TypeError):
        return False
