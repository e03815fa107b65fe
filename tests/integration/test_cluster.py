"""A broker dies mid-stream on a 3-broker Kafka cluster (replication 3, min ISR 2): nothing accepted is lost.

The cluster is the one `osr cluster up` starts (pipelines.ops.services.cluster_kafka, on free ports, its
own OSR_HOME); the stream is the real one — two Faust workers in one group, the push gateway and the
sink. While uploads stream in, the broker leading the most sensor.raw partitions is killed -9 and not
restarted. Then:

- every upload the producer got an ack for is in sensor.raw (sum of end offsets = uploads sent: the
  idempotent producer neither lost nor duplicated one across the leader change);
- uploads in = uploads fused + dead-lettered, exactly, and every valid upload was fused (none lost);
- every approved push reached the notifications topic, each moment at most once;
- the dead broker's partitions moved to the survivors and their in-sync replicas shrank to 2 (so the
  kill really hit the data path; a test that killed an idle broker would prove nothing).
"""

from __future__ import annotations

import collections
import os
import threading
import time

import pytest
from confluent_kafka import Consumer, TopicPartition

from pipelines import config
from pipelines.ingest.kafka_clients import consumer_config
from pipelines.ingest.producer import produce_population
from pipelines.ops import demo
from pipelines.ops.services import cluster_kafka
from pipelines.ops.services.processes import find_free_port
from pipelines.synthetic import population as P
from stream_checks import expected_moment_ids, fused_upload_ids, read_topic, store_rows, stream_feature_rows
from stream_harness import produce_in_background, running_stream, topic

pytestmark = pytest.mark.integration

POP = P.PopulationParams(n_users=120, n_items=80, history_contexts_per_user=8, stream_contexts_per_user=8, seed=41)
_ENV = ("OSR_HOME", "OSR_KAFKA_LIBS", "OSR_BROKER", "OSR_KAFKA_BOOTSTRAP", "OSR_TOPIC_REPLICATION", "OSR_KAFKA_HEAP")


@pytest.fixture(scope="module")
def kafka_cluster(tmp_path_factory):
    saved = {k: os.environ.get(k) for k in _ENV}
    libs = config.get("OSR_KAFKA_LIBS")
    home = tmp_path_factory.mktemp("osr-cluster")
    ns = cluster_kafka.nodes(home / "cluster", [find_free_port() for _ in range(3)], [find_free_port() for _ in range(3)])
    os.environ.update({"OSR_HOME": str(home), "OSR_KAFKA_LIBS": libs, "OSR_BROKER": "external",
                       "OSR_KAFKA_BOOTSTRAP": cluster_kafka.bootstrap(ns), "OSR_TOPIC_REPLICATION": "3",
                       "OSR_KAFKA_HEAP": "-Xms128m -Xmx384m"})
    try:
        cluster_kafka.start(ns, int(config.get("OSR_TOPIC_PARTITIONS")), timeout=240)
        yield ns
    finally:
        try:
            cluster_kafka.stop(ns)
        finally:
            for k, v in saved.items():
                os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)


def _metadata(topic_name: str):
    c = Consumer(consumer_config("cluster-test-meta"))
    try:
        return c.list_topics(topic_name, timeout=10).topics[topic_name].partitions
    finally:
        c.close()


def _end_offsets(topic_name: str) -> int:
    c = Consumer(consumer_config("cluster-test-ends"))
    try:
        parts = c.list_topics(topic_name, timeout=10).topics[topic_name].partitions
        return sum(c.get_watermark_offsets(TopicPartition(topic_name, p), timeout=10, cached=False)[1] for p in parts)
    finally:
        c.close()


def _wait_leaders_moved(topic_name: str, dead: int, timeout: float = 120.0):
    """Metadata once no partition names the dead broker as leader (or the last one seen after `timeout`)."""
    deadline = time.monotonic() + timeout
    while True:
        parts = _metadata(topic_name)
        if all(m.leader != dead for m in parts.values()) or time.monotonic() > deadline:
            return parts
        time.sleep(0.5)


@pytest.fixture(scope="module")
def broker_killed(kafka_cluster):
    with running_stream(POP, rank=8, iterations=4) as s:
        raw = topic("sensor_raw")
        before = _metadata(raw)
        assert all(len(p.replicas) == 3 and len(p.isrs) == 3 for p in before.values()), \
            {p: (m.replicas, m.isrs) for p, m in before.items()}
        s.start_sink()
        s.start_gateway()
        pids = [s.start_worker(i, wait=False) for i in (0, 1)]  # two workers, one group: they split the partitions
        for i, pid in enumerate(pids):
            demo.wait_worker_ready(pid, timeout=240, progress=lambda m: None, index=i)
        total = len(list(P.sensor_events(s.pop, "stream")))
        sending = threading.Event()
        thread, box = produce_in_background(
            produce_population, s.pop, 0.02, 9, rate_per_s=60, progress_every=50,
            on_progress=lambda r: r.total >= total * 0.4 and sending.set())
        assert sending.wait(300), "the producer did not get 40 % of the uploads out"
        s.wait_consumed("sensor_raw", 1)  # the stream is flowing
        leads = collections.Counter(m.leader for m in before.values())
        victim = next(n for n in kafka_cluster if n.node_id == leads.most_common(1)[0][0])
        pid = cluster_kafka.kill(victim)
        producing = thread.is_alive()
        s.note(f"broker {victim.node_id} killed -9 (pid {pid}), leader of {leads[victim.node_id]} sensor.raw partitions")
        after = _wait_leaders_moved(raw, victim.node_id)  # the controller fences it after broker.session.timeout.ms
        s.note(f"sensor.raw leaders moved off broker {victim.node_id}")
        thread.join(600)
        assert "error" not in box, box.get("error")
        t = time.monotonic()
        s.drain(timeout=600)
        drain_s = time.monotonic() - t
        result = {"stream": s, "sent": box["result"], "victim": victim.node_id, "producing": producing, "before": before, "after": after,
                  "drain_s": drain_s, "raw_end": _end_offsets(raw),
                  "notes": read_topic(topic("notifications")),
                  "decisions": read_topic(topic("tuner_decisions"), timeout=60)}
        result["stops"] = s.stop_all()
        yield result


def test_the_kill_hit_the_data_path(broker_killed):
    victim, before, after = broker_killed["victim"], broker_killed["before"], broker_killed["after"]
    led = [p for p, m in before.items() if m.leader == victim]
    assert led, "the killed broker led no sensor.raw partition"
    assert broker_killed["producing"], "the broker died after the producer had finished: not mid-stream"
    assert all(m.leader != victim and m.leader > 0 for m in after.values()), \
        {p: m.leader for p, m in after.items()}
    assert all(victim not in m.isrs and len(m.isrs) == 2 for m in after.values()), \
        {p: m.isrs for p, m in after.items()}
    t0 = broker_killed["stream"].events[0][0]
    print(f"\nbroker {victim} killed; it led partitions {led}; events "
          + "; ".join(f"{t - t0:.1f} s {what}" for t, what in broker_killed["stream"].events))


def test_every_acknowledged_upload_is_in_the_log(broker_killed):
    sent = broker_killed["sent"]
    assert broker_killed["raw_end"] == sent.total, f"sensor.raw holds {broker_killed['raw_end']}, acked {sent.total}"


def test_uploads_in_equal_fused_plus_deadlettered(broker_killed):
    sent, s = broker_killed["sent"], broker_killed["stream"]
    rows = stream_feature_rows()
    ids = [r[0] for r in rows]
    assert len(ids) == len(set(ids)), "a moment stored twice"
    expected = expected_moment_ids(sent.event_ids, s.pop)
    assert set(ids) == expected, f"lost moments {len(expected - set(ids))}, unexpected {len(set(ids) - expected)}"
    fused = fused_upload_ids(rows)
    assert sorted(fused) == sorted(sent.event_ids), \
        f"valid uploads not fused {len(set(sent.event_ids) - set(fused))}, fused twice {len(fused) - len(set(fused))}"
    (dead,), = store_rows("SELECT count(*) FROM stream.deadletter WHERE deadletter_id LIKE '%sensor.raw:%'")
    assert dead == sent.malformed
    assert len(fused) + dead == sent.total
    print(f"\nin {sent.total} = fused {len(fused)} + dead-lettered {dead}; drain after the kill "
          f"{broker_killed['drain_s']:.1f} s")


def test_every_approved_push_delivered_once(broker_killed):
    approved = {(d["user_id"], d["event_id"]) for d in broker_killed["decisions"] if d.get("approved")}
    delivered = [(n["user_id"], n["event_id"]) for n in broker_killed["notes"]]
    assert approved, "no push was approved: the check would hold by construction"
    assert len(delivered) == len(set(delivered)), "a moment pushed twice"
    assert set(delivered) == approved, f"lost {len(approved - set(delivered))}, unapproved {len(set(delivered) - approved)}"
