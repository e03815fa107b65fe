"""Streams a population's sensor uploads into sensor.raw, with a share of malformed ones.

Why malformed on purpose: the dead-letter path is part of the product, and the
reconciliation (in = processed + dead-lettered) only means something when both
sides are non-empty.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import numpy as np

from pipelines import config
from pipelines.contracts import TOPICS
from pipelines.ingest.kafka_clients import produce_waiting, producer_config
from pipelines.synthetic.population import Population
from pipelines.synthetic.replay import live_order

#: The ways a device or a buggy client breaks an upload; each must be dead-lettered.
CORRUPTIONS = ("not_json", "missing_field", "length_mismatch", "non_finite", "hr_out_of_range",
               "ts_not_increasing", "wrong_device_type", "json_array")


def corrupt(event: dict, kind: str) -> bytes:
    """A broken version of a valid upload."""
    e = json.loads(json.dumps(event))
    if kind == "not_json":
        return json.dumps(e).encode()[: 40] + b"\xff{{"
    if kind == "missing_field":
        e.pop("x")
    elif kind == "length_mismatch":
        e["y"] = e["y"][:-3]
    elif kind == "non_finite":
        e["acc"][len(e["acc"]) // 2] = math.inf
        return json.dumps(e, allow_nan=True).encode()
    elif kind == "hr_out_of_range":
        e["hr"] = [400.0] * len(e["ts"])
    elif kind == "ts_not_increasing":
        e["ts"][5], e["ts"][6] = e["ts"][6], e["ts"][5]
    elif kind == "wrong_device_type":
        e["device_type"] = "toaster"
    elif kind == "json_array":
        return json.dumps([e]).encode()
    return json.dumps(e).encode()


@dataclass
class ProduceReport:
    valid: int = 0
    malformed: int = 0
    by_corruption: dict[str, int] = field(default_factory=dict)
    event_ids: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.valid + self.malformed


def mixed_uploads(pop: Population, rng: np.random.Generator, malformed_share: float, limit: int | None,
                  kinds: tuple[str, ...], make_bad, report: ProduceReport):
    """Yield (k, event, kind, value) for the stream split of `pop`: kind None and the upload's JSON, or
    (a `malformed_share` of them) a kind drawn from `kinds` and make_bad(event, kind, rng). Counts into
    `report`. Shared by every way uploads enter (Kafka here, MQTT in pipelines.ingest.mqtt_publish), so
    the same seed mixes the same bad uploads in whichever way they travel."""
    for k, (event, _truth) in enumerate(live_order(pop, "stream")):  # by time across people, as live
        if limit is not None and k >= limit:
            break
        if rng.random() < malformed_share:
            kind = kinds[int(rng.integers(len(kinds)))]
            value = make_bad(event, kind, rng)
            report.malformed += 1
            report.by_corruption[kind] = report.by_corruption.get(kind, 0) + 1
        else:
            kind = None
            value = json.dumps(event).encode()
            report.valid += 1
            report.event_ids.append(event["event_id"])
        yield k, event, kind, value


def produce_population(pop: Population, malformed_share: float = 0.02, seed: int = 11, limit: int | None = None,
                       on_progress=None, progress_every: int = 500, rate_per_s: float | None = None,
                       kinds: tuple[str, ...] = CORRUPTIONS, make_bad=None, flush_timeout_s: float = 300.0,
                       hold=None) -> ProduceReport:
    """Send the stream split of `pop` to sensor.raw keyed by user id; returns what was sent.

    rate_per_s: offered uploads per second (None = as fast as the broker takes them).
    kinds / make_bad(event, kind, rng) -> bytes: which bad uploads to mix in (default: `corrupt`).
    The producer rides out a broker outage: librdkafka retries for message.timeout.ms (5 min),
    and the final flush waits up to flush_timeout_s.
    hold(k) -> None: called before the k-th upload, may block (a scripted pause); the offered rate
    resumes after it without a burst to catch up.
    """
    import time

    from confluent_kafka import Producer

    rng = np.random.default_rng(seed)
    make_bad = make_bad or (lambda event, kind, _rng: corrupt(event, kind))
    t0 = time.monotonic()
    producer = Producer(producer_config())
    topic = config.topic(TOPICS.sensor_raw)
    report = ProduceReport()
    errors: list[str] = []

    def delivered(err, msg):
        if err is not None:
            errors.append(str(err))

    for k, event, _kind, value in mixed_uploads(pop, rng, malformed_share, limit, kinds, make_bad, report):
        if hold is not None:
            paused = time.monotonic()
            hold(k)
            t0 += time.monotonic() - paused
        if rate_per_s:
            ahead = t0 + k / rate_per_s - time.monotonic()
            if ahead > 0:
                producer.poll(ahead)
        produce_waiting(producer, topic, event["user_id"].encode(), value, on_delivery=delivered)
        producer.poll(0)
        if on_progress and (k + 1) % progress_every == 0:
            on_progress(report)
    left = producer.flush(flush_timeout_s)
    if left or errors:
        raise RuntimeError(f"{left} uploads undelivered, {len(errors)} delivery errors (first: {errors[:1]})")
    return report
