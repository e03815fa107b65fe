"""The MQTT bridge's decisions without a broker: topic map, topic path vs payload, dead letters, ack order."""

from __future__ import annotations

import json
from collections import deque

import numpy as np
import pytest

from pipelines.contracts import DeadLetter
from pipelines.ingest import mqtt_bridge as B
from pipelines.ingest.mqtt_publish import MQTT_KINDS, PATH_KINDS, REASON_FRAGMENT, topic_for
from pipelines.ingest.producer import CORRUPTIONS, ProduceReport, corrupt, mixed_uploads
from pipelines.synthetic import population as P



@pytest.fixture(scope="module")
def pop():
    return P.generate(P.PopulationParams(n_users=4, n_items=20, stream_contexts_per_user=3, history_contexts_per_user=2))


@pytest.fixture(scope="module")
def events(pop):
    return [e for e, _truth in P.sensor_events(pop, "stream")]


@pytest.fixture
def mapping(monkeypatch):
    monkeypatch.delenv("OSR_TOPIC_PREFIX", raising=False)
    monkeypatch.delenv("OSR_MQTT_TOPIC_MAP", raising=False)
    return B.topic_map()


# --- the topic map ---------------------------------------------------------------------------------

def test_default_map_sends_every_device_type_to_the_streams_input(mapping):
    assert mapping == {"*": "sensor.raw"}
    assert B.kafka_topic_for("phone", mapping) == B.kafka_topic_for("watch", mapping) == "sensor.raw"


def test_map_names_types_and_takes_the_prefix(monkeypatch):
    monkeypatch.setenv("OSR_TOPIC_PREFIX", "run7.")
    monkeypatch.setenv("OSR_MQTT_TOPIC_MAP", " watch = sensor.watch , *=sensor.raw")
    m = B.topic_map()
    assert m == {"watch": "run7.sensor.watch", "*": "run7.sensor.raw"}
    assert B.kafka_topic_for("watch", m) == "run7.sensor.watch"
    assert B.kafka_topic_for("phone", m) == "run7.sensor.raw"
    assert B.kafka_topic_for("phone", B.topic_map("watch=sensor.watch")) is None


@pytest.mark.parametrize("spec", ["", " , ", "phone", "phone=", "=sensor.raw", "phone=a b", "ph/one=x",
                                  "phone=a,phone=b"])
def test_a_bad_map_is_refused_with_the_entry(spec):
    with pytest.raises(ValueError, match="OSR_MQTT_TOPIC_MAP"):
        B.parse_topic_map(spec)


# --- the topic path ---------------------------------------------------------------------------------

def test_device_topic_round_trips():
    t = B.device_topic("watch", "u00012", "u00012-watch")
    assert t == "osr/watch/u00012/u00012-watch"
    assert B.parse_device_topic(t) == (("watch", "u00012", "u00012-watch"), None)


@pytest.mark.parametrize("topic", ["osr/phone/u1", "osr/phone/u1/d1/extra", "osr//u1/d1", "osr/phone/u1/",
                                   "devices/phone/u1/d1", "", "osr"])
def test_malformed_paths_get_a_reason(topic):
    path, reason = B.parse_device_topic(topic)
    assert path is None and "is not osr/<device_type>/<person>/<device>" in reason


def test_a_good_upload_goes_to_its_type_topic_keyed_by_person_unchanged(events, mapping):
    for e in events[:6]:
        raw = json.dumps(e).encode()
        r = B.route(B.device_topic(e["device_type"], e["user_id"], e["device_id"]), raw, mapping)
        assert isinstance(r, B.Routed), r
        assert (r.topic, r.key, r.value, r.event_id) == ("sensor.raw", e["user_id"].encode(), raw, e["event_id"])


@pytest.mark.parametrize("kind", MQTT_KINDS)
def test_every_bad_kind_is_dead_lettered_with_its_reason(kind, events, mapping):
    e = events[0]
    raw = json.dumps(e).encode() if kind in PATH_KINDS else corrupt(e, kind)
    topic = topic_for(e, kind)
    r = B.route(topic, raw, mapping)
    assert isinstance(r, B.Rejected)
    assert REASON_FRAGMENT[kind] in r.deadletter["reason"], r.deadletter["reason"]
    assert set(r.deadletter) == set(DeadLetter.__annotations__)
    assert r.deadletter["source"] == f"mqtt:{topic}:{B.payload_digest(raw)}"
    assert r.category == ("topic_path" if kind == "path_too_short" else
                          "path_mismatch" if kind in PATH_KINDS else "payload")
    if kind in PATH_KINDS:  # the payload itself was valid: its event id is kept for the operator
        assert r.deadletter["event_id"] == e["event_id"]


def test_the_path_must_name_the_payloads_person_even_when_both_are_valid(events, mapping):
    """A device of u00000 cannot upload as u00001 by publishing on u00001's topic, nor the reverse."""
    a, b = events[0], next(e for e in events if e["user_id"] != events[0]["user_id"])
    r = B.route(B.device_topic(a["device_type"], b["user_id"], a["device_id"]), json.dumps(a).encode(), mapping)
    assert isinstance(r, B.Rejected) and "user_id" in r.deadletter["reason"]
    assert r.key == b["user_id"].encode()  # dead letter keyed by whom the path named


def test_an_unmapped_device_type_is_dead_lettered(events):
    e = next(e for e in events if e["device_type"] == "phone")
    r = B.route(topic_for(e, None), json.dumps(e).encode(), B.topic_map("watch=sensor.raw"))
    assert isinstance(r, B.Rejected) and r.category == "unmapped" and "'phone'" in r.deadletter["reason"]


def test_source_is_stable_for_a_redelivery_and_differs_between_uploads(events, mapping):
    t = topic_for(events[0], None)
    one, again = corrupt(events[0], "json_array"), corrupt(events[0], "json_array")
    other = corrupt(events[2], "json_array")
    src = [B.route(t, p, mapping).deadletter["source"] for p in (one, again, other)]
    assert src[0] == src[1] != src[2]


def test_hostile_topics_and_payloads_never_raise(mapping):
    for topic in ("osr/phone/u1/d1", b"osr/\xff\xfe/u1/d1", "osr/" + "x" * 70000, "osr/+/#/\x00"):
        for payload in (b"", b"\x00" * 10, b"{" * 5000, b'{"event_id": 1}', "é".encode()):
            r = B.route(topic, payload, mapping)
            assert isinstance(r, B.Rejected)
            assert len(r.deadletter["source"]) < B.MAX_TOPIC_IN_SOURCE + 60


# --- the publisher shares the producer's mixing ----------------------------------------------------

def test_the_same_seed_mixes_the_same_bad_uploads_whichever_way_they_travel(pop):
    def kinds(seed, kinds_):
        report = ProduceReport()
        out = [(e["event_id"], k) for _n, e, k, _v in mixed_uploads(
            pop, np.random.default_rng(seed), 0.3, None, kinds_, lambda e, k, r: corrupt(e, k), report)]
        return out, report

    a, ra = kinds(5, CORRUPTIONS)
    b, _ = kinds(5, CORRUPTIONS)
    c, _ = kinds(6, CORRUPTIONS)
    assert a == b != c
    assert ra.malformed == sum(1 for _, k in a if k) > 0 and ra.valid == len(ra.event_ids) == len(a) - ra.malformed
    assert ra.by_corruption == {k: sum(1 for _, x in a if x == k) for k in CORRUPTIONS if any(x == k for _, x in a)}


# --- acknowledgements: in order, only after Kafka, never for an earlier connection -------------------

class _FakeClient:
    def __init__(self):
        self.acks = []

    def ack(self, mid, qos):
        self.acks.append(mid)


def _bridge_without_network():
    b = object.__new__(B.Bridge)
    b.client, b.queue, b.generation, b.stats = _FakeClient(), deque(), 1, B.BridgeStats(connected=True)
    return b


def test_acks_go_out_in_the_order_received_once_kafka_confirmed_the_prefix():
    b = _bridge_without_network()
    entries = [B._Entry(1, mid, 1) for mid in (7, 8, 9)]
    b.queue.extend(entries)
    entries[1].done = True  # Kafka confirmed the second first (another partition)
    b._ack_ready()
    assert b.client.acks == []  # the first is not confirmed yet: acking 8 now would break MQTT's order
    entries[0].done = True
    b._ack_ready()
    assert b.client.acks == [7, 8]
    entries[2].done = True
    b._ack_ready()
    assert b.client.acks == [7, 8, 9] and not b.queue and b.stats.acked == 3


def test_a_confirmation_from_an_earlier_connection_is_not_acked():
    """After a reconnect Mosquitto resends what was unacked, and packet ids may name new messages."""
    b = _bridge_without_network()
    old, new = B._Entry(1, 5, 1), B._Entry(2, 5, 1)
    b.queue.extend([old, new])
    b.generation = 2
    old.done = True
    b._ack_ready()
    assert b.client.acks == [] and b.stats.stale_acks == 1
    new.done = True
    b._ack_ready()
    assert b.client.acks == [5] and b.stats.acked == 1


# --- wiring: `osr mqtt`, `osr demo --via`, `osr services --only mqtt` -------------------------------

def test_cli_wiring():
    from pipelines.ops import cli
    from pipelines.ops.commands import mqtt as mqtt_cmd
    from pipelines.ops.commands.services import _only

    parser = cli.build_parser()
    args = parser.parse_args(["mqtt", "bridge", "--max-runtime", "1", "--stats-file", "stats.json"])
    assert args.func is mqtt_cmd.cmd_bridge and args.max_runtime == 1.0
    assert parser.parse_args(["demo", "--via", "mqtt"]).via == "mqtt"
    assert parser.parse_args(["demo"]).via == "kafka"
    with pytest.raises(SystemExit):
        parser.parse_args(["demo", "--via", "carrier-pigeon"])
    assert _only("mosquitto,kafka", ()) == ["mqtt", "broker"]
