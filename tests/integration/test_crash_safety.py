"""Crash safety, proven by crashing: a few thousand uploads stream in while the Faust worker is
killed -9 three times, the sink once and the push gateway once, each restarted; after the drain:

- in = processed + dead-lettered, exactly (no upload lost, none filtered twice);
- the notifications topic, read_committed, holds each moment's push at most once, and exactly
  the pushes a fresh tuner decides when it replays osr.scores in partition order (none lost);
- the store holds the same pushes, one per moment.
"""

from __future__ import annotations

import json
import time

import pytest

from pipelines.ingest.producer import produce_population
from pipelines.synthetic import population as P
from stream_checks import read_topic, store_rows as _q
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
               "notes": read_topic(topic("notifications")), "scores": read_topic(topic("osr_scores"), timeout=60)}




def test_every_upload_processed_or_deadlettered_exactly_once(crashed):
    sent = crashed["sent"]
    print(f"\nrecovery (kill -> worker ready) s: {crashed['recoveries']}; drain after the last restart "
          f"{crashed['drain_s']:.1f} s")
    feats = [r[0] for r in _q("SELECT event_id FROM features.state_features WHERE source = 'stream'")]
    (dead,), = _q("SELECT count(*) FROM stream.deadletter WHERE deadletter_id LIKE '%sensor.raw:%'")
    assert sorted(feats) == sorted(sent.event_ids)  # every good upload once: none lost, none twice
    assert dead == sent.malformed
    assert len(feats) + dead == sent.total


def test_filter_state_counted_each_upload_once(crashed):
    """A redelivered upload is filtered again from the state before it: readings are not double-counted."""
    spikes = dict(_q("SELECT event_id, spikes_rejected FROM features.state_features WHERE source = 'stream'"))
    n = dict(_q("SELECT event_id, n_readings FROM features.state_features WHERE source = 'stream'"))
    assert set(n.values()) == {POP.readings_per_event}
    assert all(v >= 0 for v in spikes.values())


def test_no_duplicate_push_on_the_topic(crashed):
    moments = [(n["user_id"], n["event_id"]) for n in crashed["notes"]]
    assert moments, "no push at all"
    assert len(moments) == len(set(moments)), f"{len(moments) - len(set(moments))} duplicate pushes"


def test_no_push_lost(crashed):
    """A fresh tuner replaying osr.scores (partition order, first copy of each moment) decides exactly the
    pushes that reached the topic."""
    from pipelines.online.snapshot import load_snapshot
    from pipelines.online.tuner import TunerStage

    snap = load_snapshot()
    tuner, states, expected = TunerStage(), {}, set()
    for scored in crashed["scores"]:  # read_topic keeps each partition's order
        note, _reason, states[scored["user_id"]] = tuner.decide(scored, snap, states.get(scored["user_id"]))
        if note is not None:
            expected.add((note["user_id"], note["event_id"], note["item_id"]))
    got = {(n["user_id"], n["event_id"], n["item_id"]) for n in crashed["notes"]}
    assert got == expected, f"lost {len(expected - got)}, unexpected {len(got - expected)}"


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
