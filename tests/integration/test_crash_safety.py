"""Crash safety, proven by crashing: a few thousand uploads stream in while the Faust worker is
killed -9 three times, the sink once and the push gateway once, each restarted; after the drain,
per person-moment (a person's phone and watch uploads of one moment are fused into one row, id
moment_id(user_id, moment_of(upload))):

- every moment of the valid uploads has exactly one feature row, fused from exactly its valid uploads
  (none lost, none twice); uploads in = uploads fused + dead-lettered, exactly;
- every copy of a moment on state.features (a replay re-emits it) is the same row: a redelivery neither
  advanced the filters again nor fused the moment from other devices;
- the notifications topic, read_committed, holds each moment's push at most once, and exactly the
  approvals recorded on tuner.decisions (none lost, none unapproved); one decision per scored moment;
- the store holds the same pushes, one per moment.
"""

from __future__ import annotations

import collections
import json
import time

import pytest

from pipelines.ingest.producer import produce_population
from pipelines.synthetic import population as P
from stream_checks import expected_moment_ids, fused_upload_ids, read_topic, store_rows as _q, stream_feature_rows
from stream_harness import produce_in_background, running_stream, topic

pytestmark = pytest.mark.integration

POP = P.PopulationParams(n_users=220, n_items=96, history_contexts_per_user=10, stream_contexts_per_user=8,
                         seed=33)


@pytest.fixture(scope="module")
def crashed(broker):
    with running_stream(POP) as s:
        s.start_sink()
        s.start_gateway()
        s.start_worker(0)
        thread, box = produce_in_background(produce_population, s.pop, 0.02, 9, rate_per_s=150)
        recoveries = []
        total = len(list(P.sensor_events(s.pop, "stream")))
        for k, share in enumerate((0.15, 0.35, 0.55)):  # kill the worker three times, mid-stream
            s.wait_consumed("sensor_raw", int(total * share))
            s.kill_worker(0)
            t = time.monotonic()
            if k == 1:
                s.kill_sink()
                s.start_sink()
            if k == 2:
                s.kill_gateway()
                s.start_gateway()
            time.sleep(1.0)
            s.start_worker(0)
            recoveries.append(round(time.monotonic() - t, 1))
        thread.join(600)
        assert "error" not in box, box.get("error")
        t = time.monotonic()
        s.drain(timeout=600)
        drain_s = time.monotonic() - t
        stops = s.stop_all()
        yield {"stream": s, "sent": box["result"], "recoveries": recoveries, "drain_s": drain_s, "stops": stops,
               "notes": read_topic(topic("notifications")), "scores": read_topic(topic("osr_scores"), timeout=60),
               "features": read_topic(topic("state_features"), timeout=60),
               "decisions": read_topic(topic("tuner_decisions"), timeout=60),
               "letters": read_topic(topic("sensor_deadletter"), timeout=60)}




def test_every_moment_processed_once_and_every_upload_fused_or_deadlettered(crashed):
    sent = crashed["sent"]
    print(f"\nrecovery (kill -> worker ready) s: {crashed['recoveries']}; drain after the last restart "
          f"{crashed['drain_s']:.1f} s")
    rows = stream_feature_rows()
    ids = [r[0] for r in rows]
    expected = expected_moment_ids(sent.event_ids, crashed["stream"].pop)
    assert len(ids) == len(set(ids))
    assert set(ids) == expected, f"lost moments {len(expected - set(ids))}, unexpected {len(set(ids) - expected)}"
    fused = fused_upload_ids(rows)
    valid = set(sent.event_ids)
    lettered_valid = collections.Counter(
        letter["reason"][:60] for letter in crashed["letters"] if letter.get("event_id") in valid
        and letter["event_id"] not in fused)
    assert sorted(fused) == sorted(sent.event_ids), (
        f"valid uploads not fused {len(valid - set(fused))}, fused twice {len(fused) - len(set(fused))}; "
        f"valid uploads dead-lettered instead: {lettered_valid.most_common(5)}")
    (dead,), = _q("SELECT count(*) FROM stream.deadletter WHERE deadletter_id LIKE '%sensor.raw:%'")
    also_fused = collections.Counter(letter["reason"][:70] for letter in crashed["letters"]
                                     if letter.get("event_id") in valid)
    assert dead == sent.malformed, f"valid uploads dead-lettered too: {also_fused.most_common(5)}"
    assert len(fused) + dead == sent.total
    print(f"{len(ids)} moments from {len(fused)} uploads; {sum('+' in r[2] for r in rows)} fused from two devices")


def test_filter_state_counted_each_upload_once(crashed):
    """A redelivered upload re-emits its moment's row (the filters do not advance twice, the moment is not
    fused again from other devices): every copy of a moment on state.features is the same row."""
    copies: dict[str, list[dict]] = {}
    for row in crashed["features"]:
        copies.setdefault(row["event_id"], []).append(row)
    differing = {e: sorted({json.dumps(r, sort_keys=True) for r in rs}) for e, rs in copies.items()
                 if len({json.dumps(r, sort_keys=True) for r in rs}) > 1}
    assert not differing, f"{len(differing)} moments emitted differently, e.g. {list(differing.items())[:1]}"
    replayed = sum(len(rs) - 1 for rs in copies.values())
    print(f"\nstate.features: {len(crashed['features'])} messages for {len(copies)} moments ({replayed} replays)")
    assert set(copies) == {r[0] for r in stream_feature_rows()}
    n = dict(_q("SELECT event_id, n_readings FROM features.state_features WHERE source = 'stream'"))
    # a fused moment lies on the person's 1 s grid, which continues from their previous moment's grid, so
    # it may hold a reading or two fewer than an upload; a reading counted twice would make it more
    assert n and 0 < min(n.values()) and max(n.values()) <= POP.readings_per_event, sorted(set(n.values()))
    spikes = dict(_q("SELECT event_id, spikes_rejected FROM features.state_features WHERE source = 'stream'"))
    assert all(v >= 0 for v in spikes.values())


def test_no_duplicate_push_on_the_topic(crashed):
    moments = [(n["user_id"], n["event_id"]) for n in crashed["notes"]]
    assert moments, "no push at all"
    assert len(moments) == len(set(moments)), f"{len(moments) - len(set(moments))} duplicate pushes"


def test_no_push_lost(crashed):
    """Every scored moment has a decision on tuner.decisions; a moment is never approved with two items
    (a replay decides again from the remembered decision); the pushes on the topic are exactly the
    approvals (none lost, none without an approval)."""
    decided: dict[str, set] = {}
    for d in crashed["decisions"]:
        decided.setdefault(d["event_id"], set()).add((d["user_id"], d["approved"], d["item_id"]))
    assert set(decided) == {s["event_id"] for s in crashed["scores"]}
    conflicting = {e: v for e, v in decided.items() if len(v) > 1}
    assert not conflicting, f"{len(conflicting)} moments decided differently on replay, e.g. {list(conflicting.items())[:3]}"
    expected = {(u, e, i) for e, v in decided.items() for u, a, i in v if a}
    got = {(n["user_id"], n["event_id"], n["item_id"]) for n in crashed["notes"]}
    assert got == expected, f"lost {len(expected - got)}, unexpected {len(got - expected)}"
    stored = {e for (e,) in _q("SELECT event_id FROM stream.tuner_decisions")}
    assert stored == set(decided)


def test_store_holds_the_same_pushes_once_per_moment(crashed):
    stored = _q("SELECT user_id, event_id, item_id FROM stream.notifications")
    assert len(stored) == len({(u, e) for u, e, _ in stored})
    assert set(stored) == {(n["user_id"], n["event_id"], n["item_id"]) for n in crashed["notes"]}


def test_every_processed_upload_scored_once_per_candidate(crashed):
    (unscored,), = _q("SELECT count(*) FROM features.state_features f WHERE source = 'stream' AND NOT EXISTS "
                      "(SELECT 1 FROM stream.osr_scores s WHERE s.event_id = f.event_id)")
    assert unscored == 0
    per_event = {}
    for s in crashed["scores"]:
        per_event.setdefault(s["event_id"], set()).add(json.dumps(sorted(x["item_id"] for x in s["scores"])))
    assert all(len(v) == 1 for v in per_event.values()), "a replayed moment was scored with other candidates"
