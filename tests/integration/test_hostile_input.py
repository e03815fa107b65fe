"""Hostile input at scale, on the real broker: 10,000 bad uploads of every kind mixed into a day of good
ones. Every bad one must reach the dead-letter topic with a reason naming its kind; the worker, the
gateway and the sink stay up throughout; every good upload is fused exactly once into its person-moment
(a person's phone and watch uploads of one moment make one feature row, moment_id(user_id, moment)),
and no bad upload makes or changes a moment.

Kinds: every single-message kind of pipelines.ingest.hostile (malformed / truncated / non-UTF-8 /
UTF-16 / deeply nested JSON, lone surrogates and NUL in ids, wrong types, numbers as strings, huge
integers, NaN / inf, missing fields, out-of-range values of every sensor field, ms / future / pre-2000
timestamps, oversized messages, ...) plus the kinds that need the stream's memory: an unknown person,
a device registered to someone else, an event id reused under another person, a duplicate upload,
an upload out of order, and a message key that is not the sender.
"""

from __future__ import annotations

import collections
import json
import random

import pytest

from pipelines import config
from pipelines.contracts import TOPICS, event_id_for
from pipelines.ingest.hostile import STREAM_KINDS, expected_reason_fragment, make_hostile
from pipelines.ingest.kafka_clients import producer_config
from pipelines.synthetic import population as P
from stream_checks import alive as _alive
from stream_checks import read_topic
from stream_checks import store_rows as _q
from stream_harness import running_stream, topic

pytestmark = pytest.mark.integration

POP = P.PopulationParams(n_users=150, n_items=96, history_contexts_per_user=10, stream_contexts_per_user=8, seed=44)
N_BAD = 10_000

#: Kinds only the stream can recognise (it needs the registry or earlier uploads) and their reasons.
STREAM_MEMORY_KINDS = {
    "unknown_person": "unknown person",
    "foreign_device": "is not registered to",
    "reused_event_id": "is not scoped to device",
    "duplicate_upload": "duplicate upload",
    "out_of_order": "out of order",
    "key_not_sender": "is not the upload's user_id",
}


def _memory_kind(kind: str, event: dict, previous: dict | None, other: dict, rng: random.Random) -> tuple[bytes, bytes]:
    """(key, value) of a cross-message bad upload built from a valid upload."""
    e = json.loads(json.dumps(event))
    key = e["user_id"]
    if kind == "unknown_person":
        e["user_id"] = key = f"ghost{rng.randrange(10**6)}"
        e["device_id"] = f"{key}-phone"
        e["event_id"] = event_id_for(e["device_id"], "m1")
    elif kind == "foreign_device":  # someone else's device under my name
        e["device_id"] = other["device_id"]
        e["event_id"] = event_id_for(other["device_id"], f"x{rng.randrange(10**6)}")
    elif kind == "reused_event_id":  # another person's real event id on my upload
        e["event_id"] = other["event_id"]
    elif kind == "duplicate_upload":
        pass  # the very same upload a second time (sent after the original)
    elif kind == "out_of_order":  # the device's previous window again, under a new id
        e = json.loads(json.dumps(previous))
        e["event_id"] = event_id_for(e["device_id"], f"late{rng.randrange(10**6)}")
    elif kind == "key_not_sender":
        key = other["user_id"]
    return key.encode(), json.dumps(e).encode()


@pytest.fixture(scope="module")
def hostile(broker):
    from confluent_kafka import Producer

    with running_stream(POP) as s:
        s.start_sink()
        s.start_gateway()
        pid = s.start_worker(0)
        rng = random.Random(7)
        events = [e for e, _t in P.sensor_events(s.pop, "stream")]
        n_memory = len(events) // 2
        per_kind_single = (N_BAD - n_memory) // len(STREAM_KINDS)
        plan = [k for k in STREAM_KINDS for _ in range(per_kind_single)]
        plan += [rng.choice(list(STREAM_MEMORY_KINDS)) for _ in range(N_BAD - len(plan))]
        rng.shuffle(plan)
        producer = Producer(producer_config(**{"message.max.bytes": 2_000_000}))
        sent_kind: dict[str, str] = {}  # source (topic:partition:offset) -> kind ("good" for good ones)
        raw_topic = config.topic(TOPICS.sensor_raw)

        def on_delivery(kind):
            def cb(err, msg):
                assert err is None, err
                sent_kind[f"{msg.topic()}:{msg.partition()}:{msg.offset()}"] = kind
            return cb

        last_by_device: dict[str, dict] = {}
        bad_per_good = len(plan) / len(events)
        owed, good_ids = 0.0, []
        for i, e in enumerate(events):
            producer.produce(raw_topic, key=e["user_id"].encode(), value=json.dumps(e).encode(),
                             on_delivery=on_delivery("good"))
            good_ids.append(e["event_id"])
            owed += bad_per_good
            while owed >= 1 and plan:
                kind = plan.pop()
                owed -= 1
                other = events[(i + 1 + rng.randrange(len(events) - 1)) % len(events)]
                if other["user_id"] == e["user_id"]:
                    other = next(x for x in events if x["user_id"] != e["user_id"])
                if kind in STREAM_MEMORY_KINDS:
                    if kind == "out_of_order" and e["device_id"] not in last_by_device:
                        kind = "duplicate_upload"
                    key, value = _memory_kind(kind, e, last_by_device.get(e["device_id"]), other, rng)
                else:
                    key, value = e["user_id"].encode(), make_hostile(e, kind, rng)
                producer.produce(raw_topic, key=key, value=value, on_delivery=on_delivery(kind))
                producer.poll(0)
            last_by_device[e["device_id"]] = e
        while plan:  # what rounding left over
            kind = plan.pop()
            e = events[rng.randrange(len(events))]
            if kind in STREAM_MEMORY_KINDS:
                kind = "key_not_sender"
                other = next(x for x in events if x["user_id"] != e["user_id"])
                key, value = _memory_kind(kind, e, None, other, rng)
            else:
                key, value = e["user_id"].encode(), make_hostile(e, kind, rng)
            producer.produce(raw_topic, key=key, value=value, on_delivery=on_delivery(kind))
        assert producer.flush(120) == 0
        s.drain(timeout=900)
        alive = {"worker": s.workers.get(0) == pid and _alive(pid),
                 "sink": _alive(s_pid(s, "sink")), "gateway": _alive(s_pid(s, "gateway"))}
        letters = read_topic(topic("sensor_deadletter"), timeout=120)
        s.stop_all()
        yield {"stream": s, "sent_kind": sent_kind, "good_ids": good_ids, "letters": letters, "alive": alive}


def s_pid(s, which):
    from pipelines.ops import demo

    return (demo.SINK if which == "sink" else demo.GATEWAY).running_pid()




def test_every_process_stayed_up(hostile):
    assert hostile["alive"] == {"worker": True, "sink": True, "gateway": True}


def test_every_bad_upload_dead_lettered_with_its_reason(hostile):
    sent = hostile["sent_kind"]
    bad = {src: k for src, k in sent.items() if k != "good"}
    assert len(bad) == N_BAD
    by_source = {}
    for letter in hostile["letters"]:
        by_source.setdefault(letter["source"], []).append(letter)
    missing = [src for src in bad if src not in by_source]
    assert not missing, f"{len(missing)} bad uploads never dead-lettered, e.g. {[(s, bad[s]) for s in missing[:5]]}"
    wrong = collections.Counter()
    for src, kind in bad.items():
        reason = by_source[src][0]["reason"]
        fragment = STREAM_MEMORY_KINDS.get(kind) or expected_reason_fragment(kind)
        if fragment not in reason:
            wrong[(kind, reason[:100])] += 1
    assert not wrong, f"reasons that do not name their kind: {wrong.most_common(10)}"
    counts = collections.Counter(bad.values())
    print("\ndead-lettered per kind:", dict(sorted(counts.items())))
    assert set(counts) == set(STREAM_KINDS) | set(STREAM_MEMORY_KINDS)


def test_no_good_upload_dead_lettered(hostile):
    good_sources = {src for src, k in hostile["sent_kind"].items() if k == "good"}
    lettered_good = [letter for letter in hostile["letters"] if letter["source"] in good_sources]
    assert not lettered_good, lettered_good[:3]


def test_every_good_upload_processed_once(hostile):
    from stream_checks import expected_moment_ids, fused_upload_ids, stream_feature_rows

    rows = stream_feature_rows()
    ids = [r[0] for r in rows]
    assert len(ids) == len(set(ids))
    expected = expected_moment_ids(hostile["good_ids"], hostile["stream"].pop)
    assert set(ids) == expected, (f"moments lost {sorted(expected - set(ids))[:3]}, "
                                  f"made by bad uploads {sorted(set(ids) - expected)[:3]}")
    assert sorted(fused_upload_ids(rows)) == sorted(hostile["good_ids"])  # each good upload in one moment
    (ghosts,), = _q("SELECT count(*) FROM stream.notifications WHERE user_id LIKE 'ghost%'")
    assert ghosts == 0  # unknown people are never pushed to
