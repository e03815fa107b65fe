"""confluent-kafka settings shared by every non-Faust client (producer, sink, checkers).

Why: group joins take ~23 s with librdkafka's default session timeout on tansu
(~3.5 s at 6 s), and keys must land on the partitions Faust (aiokafka, murmur2 like
the Java client) would choose, so the Faust tables stay co-partitioned with input.
"""

from __future__ import annotations

import json
import logging
import socket

from pipelines import config
from pipelines.contracts import TOPICS


#: librdkafka's own log lines go through Python logging (where the long-running processes rate-limit
#: them, see pipelines.rate_limited_log), not straight to stderr: a broker outage would print one
#: line per connection attempt.
CLIENT_LOGGER = logging.getLogger("confluent_kafka.client")


def producer_config(**extra) -> dict:
    return {
        "bootstrap.servers": config.get("OSR_KAFKA_BOOTSTRAP"),
        "logger": CLIENT_LOGGER,
        "partitioner": "murmur2_random",
        "linger.ms": 20,
        "enable.idempotence": True,
        **extra,
    }


def consumer_config(group_id: str, auto_commit: bool = False, **extra) -> dict:
    return {
        "bootstrap.servers": config.get("OSR_KAFKA_BOOTSTRAP"),
        "logger": CLIENT_LOGGER,
        "group.id": group_id,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": auto_commit,
        "session.timeout.ms": 6000,
        "heartbeat.interval.ms": 1000,
        "topic.metadata.refresh.interval.ms": 5000,
        **extra,
    }


def announce_model(model_id: str, snapshot_path: str, timeout: float = 10.0) -> None:
    """Tell the stream a new snapshot is live (the score agents reload it)."""
    from confluent_kafka import Producer

    p = Producer(producer_config())
    p.produce(config.topic(TOPICS.control_models), key=b"live",
              value=json.dumps({"model_id": model_id, "snapshot": snapshot_path}).encode())
    if p.flush(timeout) > 0:
        raise RuntimeError(f"could not announce model {model_id} on the control topic within {timeout} s")


def broker_answers(bootstrap: str | None = None, timeout: float = 2.0) -> bool:
    """True when a Kafka AdminClient gets cluster metadata naming at least one broker."""
    from confluent_kafka.admin import AdminClient  # imported late: checks without a broker stay cheap

    bootstrap = bootstrap or config.get("OSR_KAFKA_BOOTSTRAP")
    host, _, port = bootstrap.split(",")[0].strip().rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=min(timeout, 1.0)):
            pass
    except (OSError, ValueError):
        return False
    admin = AdminClient({"bootstrap.servers": bootstrap, "logger": logging.getLogger("pipelines.kafka")})
    try:
        return bool(admin.list_topics(timeout=timeout).brokers)
    except Exception:  # KafkaException while the broker is still coming up
        return False


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 hash (the Java client's Utils.murmur2, librdkafka's murmur2_random), 32-bit."""
    m, r = 0x5BD1E995, 24
    length = len(data)
    h = (0x9747B28C ^ length) & 0xFFFFFFFF
    for i in range(0, length - length % 4, 4):
        k = data[i] | (data[i + 1] << 8) | (data[i + 2] << 16) | (data[i + 3] << 24)
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> r
        k = (k * m) & 0xFFFFFFFF
        h = ((h * m) & 0xFFFFFFFF) ^ k
    rest, tail = length % 4, length - length % 4
    if rest == 3:
        h ^= data[tail + 2] << 16
    if rest >= 2:
        h ^= data[tail + 1] << 8
    if rest >= 1:
        h ^= data[tail]
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return h


def partition_for_key(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner gives a key (murmur2, as the Java client and
    librdkafka's murmur2_random, which producer_config sets): where a person's records land."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def produce_waiting(producer, topic: str, key, value, **kw) -> None:
    """producer.produce, waiting (polling delivery reports) while librdkafka's queue is full rather
    than failing: a fast producer outruns the broker, and a full queue is back-pressure, not an error."""
    while True:
        try:
            producer.produce(topic, key=key, value=value, **kw)
            return
        except BufferError:
            producer.poll(0.05)
