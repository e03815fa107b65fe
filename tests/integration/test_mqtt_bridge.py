"""A real Mosquitto and a real Kafka with the bridge between them: nothing lost across a kill -9.

Mosquitto and the bridge are started by the project's own code (mosquitto_local), on a free port
in the session's OSR_HOME; Kafka is the session broker (conftest.py). Each test has its own topic
prefix and MQTT client id, so it reads only what it sent. No timing thresholds: deadlines only
guard against a hang.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import uuid

import pytest
from confluent_kafka import Consumer

from pipelines import config
from pipelines.contracts import TOPICS
from pipelines.ingest.mqtt_publish import MQTT_KINDS, PATH_KINDS, REASON_FRAGMENT, publish_population
from pipelines.ingest.validation import parse_sensor_event
from pipelines.ops.services import mosquitto_local, topics
from pipelines.ops.services.processes import find_free_port, wait_until
from pipelines.synthetic import population as P

HANG_GUARD_S = 180.0


@pytest.fixture(scope="module")
def mosquitto(broker):
    saved = os.environ.get("OSR_MQTT_PORT")
    os.environ["OSR_MQTT_PORT"] = str(find_free_port())
    try:
        info = mosquitto_local.start(timeout=30)
        yield info
    finally:
        try:
            mosquitto_local.BRIDGE.stop(30)
            mosquitto_local.stop()
        finally:
            if saved is None:
                os.environ.pop("OSR_MQTT_PORT", None)
            else:
                os.environ["OSR_MQTT_PORT"] = saved


@pytest.fixture
def run(mosquitto, monkeypatch):
    """A fresh topic prefix (topics created) and bridge client id for one test."""
    tag = uuid.uuid4().hex[:6]
    monkeypatch.setenv("OSR_TOPIC_PREFIX", f"mq{tag}.")
    monkeypatch.setenv("OSR_MQTT_CLIENT_ID", f"osr-mqtt-bridge-{tag}")
    topics.create_topics([config.topic(TOPICS.sensor_raw), config.topic(TOPICS.sensor_deadletter)],
                         include_defaults=False)
    yield tag
    mosquitto_local.BRIDGE.stop(30)


def _read_all(expected: int) -> tuple[list, list]:
    """(raw records, dead letters) from this test's topics: until `expected` distinct ones arrived, then
    until the topics stay quiet for 3 s (so a late duplicate or a stranger is seen too)."""
    c = Consumer({"bootstrap.servers": config.get("OSR_KAFKA_BOOTSTRAP"), "group.id": f"check-{uuid.uuid4().hex}",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False, "session.timeout.ms": 6000})
    raw_topic, dl_topic = config.topic(TOPICS.sensor_raw), config.topic(TOPICS.sensor_deadletter)
    c.subscribe([raw_topic, dl_topic])
    raw, dead = [], []
    deadline = time.monotonic() + HANG_GUARD_S
    quiet_since = None
    try:
        while time.monotonic() < deadline:
            batch = [m for m in c.consume(500, timeout=0.5) if m.error() is None]
            for m in batch:
                (raw if m.topic() == raw_topic else dead).append(m)
            distinct = len({json.loads(m.value())["event_id"] for m in raw}) + \
                len({json.loads(m.value())["source"] for m in dead})
            if distinct >= expected:
                quiet_since = quiet_since if not batch else time.monotonic()
                if time.monotonic() - quiet_since >= 3.0:
                    break
    finally:
        c.close()
    return raw, dead


def _check_reconciles(sent, raw, dead) -> dict:
    """count in = distinct event ids out + distinct dead letters, each dead letter with its kind's reason."""
    ids = [json.loads(m.value())["event_id"] for m in raw]
    assert set(ids) == set(sent.event_ids), (
        f"lost {len(set(sent.event_ids) - set(ids))}, strangers {len(set(ids) - set(sent.event_ids))}")
    for m in raw:  # forwarded unchanged, valid, keyed by the person
        upload, reason = parse_sensor_event(m.value())
        assert reason is None and m.key() == upload["user_id"].encode()
    letters = {}
    for m in dead:
        d = json.loads(m.value())
        assert d["source"].startswith("mqtt:osr/"), d["source"]
        letters.setdefault(d["source"], d)
    digests = {src.rsplit(":", 1)[1]: d for src, d in letters.items()}
    assert set(digests) == set(sent.bad_by_digest), "dead letters are not exactly the bad uploads sent"
    for digest, d in digests.items():
        kind = sent.bad_by_digest[digest]
        assert REASON_FRAGMENT[kind] in d["reason"], (kind, d["reason"])
    assert sent.total == len(set(ids)) + len(letters)
    return {"in": sent.total, "distinct_out": len(set(ids)), "dead_letters": len(letters),
            "duplicate_uploads": len(ids) - len(set(ids)), "duplicate_dead_letters": len(dead) - len(letters)}


def test_kill9_of_the_bridge_mid_stream_loses_nothing(run):
    pop = P.generate(P.PopulationParams(n_users=40, n_items=20, stream_contexts_per_user=12,
                                        history_contexts_per_user=2, seed=3))
    first = mosquitto_local.start_bridge(timeout=90)
    box: dict = {}
    progress = {"published": 0}
    stop = threading.Event()

    def publish():
        try:
            box["report"] = publish_population(pop, 0.12, seed=4, rate_per_s=120, kinds=MQTT_KINDS, stop=stop,
                                               on_progress=lambda r: progress.update(published=r.total),
                                               progress_every=10)
        except BaseException as exc:  # surfaced in the test thread below
            box["error"] = exc

    thread = threading.Thread(target=publish, daemon=True)
    thread.start()
    try:
        wait_until(lambda: mosquitto_local.bridge_stats().get("acked", 0) >= 150, "first bridge forwarding",
                   HANG_GUARD_S, mosquitto_local.BRIDGE, first)
        os.kill(first, signal.SIGKILL)
        wait_until(lambda: mosquitto_local.BRIDGE.running_pid() is None, "first bridge gone", 30)
        before = mosquitto_local.bridge_stats()
        at_kill = progress["published"]
        # the publisher goes on while no bridge runs: Mosquitto queues for the bridge's session
        wait_until(lambda: progress["published"] >= at_kill + 100 or not thread.is_alive(), "uploads while down",
                   HANG_GUARD_S)
        second = mosquitto_local.start_bridge(timeout=90)
        thread.join(HANG_GUARD_S)
    finally:
        stop.set()
        thread.join(30)
    assert "error" not in box, box.get("error")
    sent = box["report"]
    assert sent.no_subscribers == 0
    assert 0 < before["acked"] < sent.total, "the kill did not happen mid-stream"
    assert {k for k in sent.by_corruption} & set(PATH_KINDS) and set(sent.by_corruption) - set(PATH_KINDS)

    raw, dead = _read_all(sent.total)
    after = mosquitto_local.wait_bridge_handled(1, 30)
    assert after["pid"] == second and after["acked"] > 0
    figures = _check_reconciles(sent, raw, dead)
    figures.update(acked_by_first_bridge=before["acked"], redelivered_to_second=after["redelivered"],
                   published_while_down=progress["published"] - at_kill)
    print("mqtt kill -9:", json.dumps(figures))


def test_queued_uploads_survive_a_mosquitto_restart(run):
    """The bridge is away while devices publish, and Mosquitto restarts meanwhile: its persistence keeps
    the bridge's session and the queued uploads."""
    pop = P.generate(P.PopulationParams(n_users=10, n_items=20, stream_contexts_per_user=4,
                                        history_contexts_per_user=2, seed=8))
    mosquitto_local.start_bridge(timeout=90)  # creates the persistent session
    assert mosquitto_local.BRIDGE.stop(30).startswith("stopped")
    sent = publish_population(pop, 0.1, seed=9)
    assert sent.no_subscribers == 0  # the session's subscription outlives the bridge
    assert mosquitto_local.stop().startswith("stopped")
    mosquitto_local.start(timeout=30)
    mosquitto_local.start_bridge(timeout=90)
    stats = mosquitto_local.wait_bridge_handled(sent.total, HANG_GUARD_S)
    raw, dead = _read_all(sent.total)
    _check_reconciles(sent, raw, dead)
    assert stats["acked"] == sent.total and stats["redelivered"] == 0
