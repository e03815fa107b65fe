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


# --- fused moments (pipelines.filtering.moment) ----------------------------------------------------

def fused_upload_ids(rows) -> list[str]:
    """The upload event ids ("<device_id>:<moment>") that feature rows were fused from, duplicates kept.

    rows: (event_id, user_id, device_id) per feature row; event_id is "<user_id>:<moment>" and device_id
    lists the fused devices joined by "+" — so a row stands for exactly these uploads."""
    from pipelines.contracts import event_id_for

    out = []
    for event_id, user_id, device_id in rows:
        assert event_id.startswith(user_id + ":"), f"feature row {event_id!r} is not a moment of {user_id!r}"
        moment = event_id[len(user_id) + 1:]
        out += [event_id_for(d, moment) for d in device_id.split("+")]
    return out


def expected_moment_ids(upload_ids, pop) -> set[str]:
    """The moment ids the valid uploads `upload_ids` must be fused into: moment_id(user_id, moment_of(upload)).
    A moment is expected as soon as one of its uploads is valid (a corrupted partner is dead-lettered,
    the moment is fused from the remaining device)."""
    from pipelines.filtering.moment import moment_id, moment_of

    user_of = dict(zip(pop.devices.device_id, pop.devices.user_id))
    out = set()
    for eid in upload_ids:
        device_id = eid.split(":", 1)[0]
        out.add(moment_id(user_of[device_id], moment_of({"event_id": eid, "device_id": device_id})))
    return out


def stream_feature_rows() -> list[tuple[str, str, str]]:
    """(event_id, user_id, device_id) of every stream feature row in the store."""
    return store_rows("SELECT event_id, user_id, device_id FROM features.state_features WHERE source = 'stream'")
