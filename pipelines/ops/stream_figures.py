"""How fast a finished stream run was, from the broker's own record timestamps.

Why timestamps and not the store: the store says what was produced, not when. Each Kafka record
carries the time its producer created it, so after a run the latency of every pushed moment is
the notification's timestamp (the push gateway's produce) minus the timestamp of the moment's
last upload (the moment is complete only then), and the run's rate is the readings fused over
the time from the first upload to the last decision. Nothing has to be instrumented while the
stream runs.
"""

from __future__ import annotations

import time
import uuid

import orjson

from pipelines import config
from pipelines.contracts import TOPICS

READINGS_KEY = "ts"


def read_records(topic: str, timeout: float = 60.0, isolation: str = "read_committed") -> list[tuple[float, object]]:
    """(record timestamp in s, decoded JSON value or None when it is not JSON) of every record of
    `topic`, read with a group of its own from the beginning to the end."""
    from confluent_kafka import Consumer, TopicPartition

    from pipelines.ingest.kafka_clients import consumer_config

    c = Consumer(consumer_config(f"figures-{uuid.uuid4().hex[:8]}", **{"isolation.level": isolation}))
    out: list[tuple[float, object]] = []
    try:
        parts = c.list_topics(topic, timeout=timeout).topics[topic].partitions
        ends = {}
        for p in parts:
            low, high = c.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout, cached=False)
            if high > low:
                ends[p] = high
        c.assign([TopicPartition(topic, p, 0) for p in parts])
        deadline, idle = time.monotonic() + timeout, 0
        while ends and time.monotonic() < deadline and idle < 4:  # read_committed stops before end markers
            msgs = c.consume(1000, timeout=0.5)
            idle = idle + 1 if not msgs else 0
            for m in msgs:
                if m.error():
                    continue
                if m.offset() + 1 >= ends.get(m.partition(), 0):
                    ends.pop(m.partition(), None)
                try:
                    v = orjson.loads(m.value())
                except orjson.JSONDecodeError:
                    v = None
                out.append((m.timestamp()[1] / 1000.0, v))
        return out
    finally:
        c.close()


def read_with_timestamps(topic: str, fields: tuple[str, ...], timeout: float = 60.0,
                         isolation: str = "read_committed") -> list[tuple[float, dict]]:
    """(record timestamp in s, the chosen fields of its JSON value) for every record of `topic` that
    is a JSON object (others were dead-lettered by the stream)."""
    return [(ts, {f: v.get(f) for f in fields}) for ts, v in read_records(topic, timeout, isolation)
            if isinstance(v, dict)]


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    v = sorted(values)
    return v[min(len(v) - 1, int(round(q / 100 * (len(v) - 1))))]


def stream_figures(timeout: float = 60.0) -> dict:
    """readings/s of the run, produce -> notification p50 / p99 (ms), and the share of decisions
    dropped as stale."""
    q = config.topic
    uploads = read_with_timestamps(q(TOPICS.sensor_raw), ("event_id", "user_id", "device_id", READINGS_KEY),
                                   timeout, isolation="read_uncommitted")
    moment_ready: dict[str, float] = {}
    readings: dict[str, int] = {}
    for ts, v in uploads:
        eid, uid, dev = v["event_id"], v["user_id"], v["device_id"]
        if not (isinstance(eid, str) and isinstance(uid, str) and isinstance(dev, str) and eid.startswith(dev + ":")):
            continue
        mid = f"{uid}:{eid[len(dev) + 1:]}"
        moment_ready[mid] = max(moment_ready.get(mid, 0.0), ts)
        n = v[READINGS_KEY]
        readings[mid] = readings.get(mid, 0) + (len(n) if isinstance(n, list) else 0)
    decisions = read_with_timestamps(q(TOPICS.tuner_decisions), ("event_id", "reason"), timeout)
    notes = read_with_timestamps(q(TOPICS.notifications), ("event_id",), timeout)
    lat = [(ts - moment_ready[v["event_id"]]) * 1000 for ts, v in notes if v["event_id"] in moment_ready]
    decided = {v["event_id"] for _ts, v in decisions}
    fused_readings = sum(n for mid, n in readings.items() if mid in decided)
    span = (max(ts for ts, _v in decisions) - min(ts for ts, _v in uploads)) if decisions and uploads else 0.0
    stale = sum(str(v["reason"]).startswith("stale") for _ts, v in decisions)
    return {
        "readings_per_s": round(fused_readings / span) if span > 0 else None,
        "notifications_timed": len(lat),
        "p50_ms": None if not lat else round(_pct(lat, 50), 1),
        "p99_ms": None if not lat else round(_pct(lat, 99), 1),
        "decisions": len(decisions),
        "dropped_stale_share": round(stale / len(decisions), 4) if decisions else None,
    }
