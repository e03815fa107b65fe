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
    # read_uncommitted: no require_stable on the offsets fetch, so a transactional group's offsets
    # stuck "pending" after a broker restart (see pipelines.online.push_gateway) read as the last
    # stable ones (more lag, not a timeout); an open transaction's offsets are not counted as done
    c = Consumer(consumer_config(group_id, **{"isolation.level": "read_uncommitted"}))
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
