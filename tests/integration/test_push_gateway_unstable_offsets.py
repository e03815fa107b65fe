"""The push gateway keeps delivering while its group's offsets are "unstable".

Seen in the platform test: after a one-minute broker outage, Kafka 4.4 kept the offsets of one of
the gateway's finished transactions pending for good, so every offsets fetch that requires stable
offsets (librdkafka's default, isolation.level=read_committed) answered UNSTABLE_OFFSET_COMMIT:
the gateway never fetched again and the drain check timed out, while approved pushes waited.

Here the same condition is made on purpose, on the real broker: another transactional producer
opens a transaction holding offsets of the gateway's group and leaves it open. The gateway must
still deliver every approved push exactly once, and the lag check must answer.
"""

from __future__ import annotations

import json
import os
import uuid

import pytest

from pipelines import config
from pipelines.contracts import TOPICS
from pipelines.ingest.kafka_clients import consumer_config, producer_config
from pipelines.ingest.lag import group_lag
from pipelines.online.push_gateway import run_gateway
from pipelines.ops.services import topics
from stream_checks import read_topic

pytestmark = pytest.mark.integration

N = 6


def _note(i: int) -> dict:
    return {"notification_id": f"m{i}:item-1", "event_id": f"m{i}", "user_id": f"u{i}", "item_id": "item-1",
            "category": "food", "ts": 1.0e9 + i, "osr_score": 0.9, "threshold": 0.5, "rule_scope": "default",
            "model_id": "test"}


def _stable_offsets_answer(group: str, topic: str, partitions: int) -> list[str]:
    from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": config.get("OSR_KAFKA_BOOTSTRAP")})
    req = [ConsumerGroupTopicPartitions(group, [TopicPartition(topic, p) for p in range(partitions)])]
    (fut,) = admin.list_consumer_group_offsets(req, require_stable=True, request_timeout=20).values()
    return [str(tp.error) for tp in fut.result().topic_partitions]


@pytest.fixture
def own_topics(broker):
    saved = {k: os.environ.get(k) for k in ("OSR_TOPIC_PREFIX", "OSR_PUSH_GATEWAY_ID")}
    tag = uuid.uuid4().hex[:6]
    os.environ.update({"OSR_TOPIC_PREFIX": f"u{tag}.", "OSR_PUSH_GATEWAY_ID": f"gw-{tag}"})
    try:
        topics.create_topics()
        yield tag
    finally:
        for k, v in saved.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)


def test_gateway_delivers_while_a_foreign_transaction_holds_its_offsets(own_topics):
    from confluent_kafka import Consumer, Producer, TopicPartition

    group = f"gw-group-{own_topics}"
    source, sink = config.topic(TOPICS.push_approved), config.topic(TOPICS.notifications)
    parts = int(config.get("OSR_TOPIC_PARTITIONS"))
    p = Producer(producer_config())
    for i in range(N):
        p.produce(source, key=f"u{i}".encode(), value=json.dumps(_note(i)).encode())
    assert p.flush(30) == 0

    # a transaction of another producer holding offsets of the gateway's group, left open
    blocker = Producer(producer_config(**{"transactional.id": f"blocker-{own_topics}", "transaction.timeout.ms": 600000}))
    blocker.init_transactions(30)
    blocker.begin_transaction()
    member = Consumer(consumer_config(group))  # not subscribed: group metadata without a generation
    try:
        blocker.send_offsets_to_transaction([TopicPartition(source, q, 0) for q in range(parts)],
                                            member.consumer_group_metadata(), 30)
    finally:
        member.close()
    try:
        answers = _stable_offsets_answer(group, source, parts)
        assert all("UNSTABLE_OFFSET_COMMIT" in a for a in answers), answers  # the condition is really there

        stats = run_gateway(group_id=group, idle_exit_s=15, max_runtime_s=120)
        assert stats.delivered == N, stats

        lag = group_lag(group, [source], timeout=20)  # answers (the stable offsets), does not time out
        assert lag == {source: 0}, lag
        notes = read_topic(sink)
        assert sorted(n["event_id"] for n in notes) == sorted(f"m{i}" for i in range(N))
    finally:
        blocker.abort_transaction(30)
