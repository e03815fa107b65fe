"""A Faust table as its changelog topic holds it: the last value per key, read from outside.

Why from the changelog: it is the state a restarted worker recovers, so what is right there survives
any crash, and reading it needs no worker API (a worker may be dead, or several share the table).
Shared by the stream's drain check (moments still waiting for a device), the live profile checks
(pipelines.partitioning.live) and the tests' diagnostics.
"""

from __future__ import annotations

import time
import uuid

import orjson

from pipelines import config
from pipelines.ingest.kafka_clients import consumer_config


def topic_of(table: str, app_id: str | None = None) -> str:
    return f"{app_id or config.get('OSR_FAUST_APP_ID')}-{table}-changelog"


def _key(raw: bytes | None) -> str:
    """Faust JSON-encodes str keys ('"u00007"'); a key that is not JSON is taken as its text."""
    if raw is None:
        return ""
    if raw[:1] == b'"':
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass
    return raw.decode("utf-8", "replace")


def read_changelog(app_id: str | None = None, table: str = "profile_states", timeout: float = 30.0) -> dict:
    """Last value per key (JSON-decoded; a deleted key is absent). TimeoutError if the topic cannot
    be read to the end it had when the read began within `timeout` s."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    name = topic_of(table, app_id)
    c = Consumer(consumer_config(f"osr-changelog-reader-{uuid.uuid4().hex[:8]}"))
    try:
        md = c.list_topics(name, timeout=10).topics[name]
        if md.error is not None:
            raise RuntimeError(f"changelog {name}: {md.error}")
        parts = [TopicPartition(name, p, OFFSET_BEGINNING) for p in md.partitions]
        ends = {tp.partition: c.get_watermark_offsets(tp, timeout=10, cached=False)[1] for tp in parts}
        c.assign(parts)
        out: dict = {}
        done = {p for p, e in ends.items() if e == 0}
        deadline = time.monotonic() + timeout
        while len(done) < len(ends):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{name} not read to its end in {timeout} s")
            for m in c.consume(1000, timeout=0.5):
                if m.error() is not None:
                    continue
                if m.value() is None:
                    out.pop(_key(m.key()), None)
                else:
                    try:
                        out[_key(m.key())] = orjson.loads(m.value())
                    except orjson.JSONDecodeError:
                        out[_key(m.key())] = None
                if m.offset() + 1 >= ends[m.partition()]:
                    done.add(m.partition())
        return out
    finally:
        c.close()


def waiting_for_devices(app_id: str | None = None, timeout: float = 30.0) -> list[str]:
    """The moments the stream holds for a device that has not reported (the person_states table's
    "pending"): its input drained is not yet everything out, since a tick releases them after
    OSR_MOMENT_HOLD_S. Moments the admission plan deferred are not counted: they wait on purpose."""
    states = read_changelog(app_id, "person_states", timeout)
    return sorted(m for s in states.values() if isinstance(s, dict) for m in (s.get("pending") or {}))
