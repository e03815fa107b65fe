"""Consumer-group lag: how the main job and the tests know the stream has finished.

A group has caught up when, on every partition of its input topics, its committed
offset equals the end offset. That is exact on Apache Kafka (tansu 0.6 reports a
wrong high watermark for multi-record batches, so lag there is unreliable).
"""

from __future__ import annotations

from confluent_kafka import Consumer, TopicPartition

from pipelines.ingest.kafka_clients import consumer_config


def group_lag(group_id: str, topics: list[str], timeout: float = 10.0) -> dict[str, int]:
    """Messages not yet committed by `group_id`, per topic (end offset - committed offset)."""
    c = Consumer(consumer_config(group_id))
    try:
        meta = c.list_topics(timeout=timeout).topics
        parts = [TopicPartition(t, p) for t in topics for p in (meta[t].partitions if t in meta else {})]
        committed = c.committed(parts, timeout=timeout) if parts else []
        lag: dict[str, int] = {t: 0 for t in topics}
        for tp in committed:
            low, high = c.get_watermark_offsets(TopicPartition(tp.topic, tp.partition), timeout=timeout)
            done = tp.offset if tp.offset >= 0 else low
            lag[tp.topic] += max(high - done, 0)
        return lag
    finally:
        c.close()
