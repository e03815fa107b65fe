"""The stream, for real: Apache Kafka (or tansu), a Faust worker process, the push gateway, the sink.

A few thousand sensor uploads, some deliberately malformed, go in; the test proves the
Faust agent consumed them (its group drained sensor.raw) and reconciles the store. A person's
phone and watch uploads of one moment are fused into one feature row (id "<user_id>:<moment>",
device_id "phone+watch" style), so: uploads in = uploads fused into feature rows + dead-lettered,
one feature row per expected moment, every valid upload in exactly one row, one tuner decision per
scored moment, each approved decision pushed once, no duplicated id anywhere.
"""

import os
import uuid

import pytest
from stream_checks import expected_moment_ids, fused_upload_ids, stream_feature_rows
from stream_checks import store_rows as _q

from pipelines import config
from pipelines.contracts import TOPICS
from pipelines.reco import nightly
from pipelines.synthetic import population as P
from pipelines.ingest.lag import group_lag
from pipelines.ops.demo import (FAUST_WORKER, GATEWAY, SINK, start_gateway, start_sink, start_worker, wait_drained,
                                wait_worker_ready)
from pipelines.store.population_loader import load_population
from pipelines.ingest.producer import produce_population
from pipelines.ops.services.processes import find_free_port
from pipelines.store.db import connect, migrate

pytestmark = pytest.mark.integration

POP = P.PopulationParams(n_users=120, n_items=96, history_contexts_per_user=12, stream_contexts_per_user=12,
                         seed=21)


@pytest.fixture(scope="module")
def streamed(broker):
    """Run the whole stream once for the module; yield what was sent."""
    saved = {k: os.environ.get(k) for k in ("OSR_FAUST_APP_ID", "OSR_FAUST_WEB_PORT")}
    app_id = os.environ["OSR_FAUST_APP_ID"] = f"osr-test-{uuid.uuid4().hex[:6]}"
    os.environ["OSR_FAUST_WEB_PORT"] = str(find_free_port())
    pop = P.generate(POP)
    con = connect()
    migrate(con)
    load_population(con, pop)
    con.close()
    nightly.run_all(rank=16, iterations=8)
    try:
        start_sink()
        start_gateway()
        wait_worker_ready(start_worker())
        sent = produce_population(pop, malformed_share=0.05, seed=5)
        wait_drained(timeout=600)
    finally:
        sink_stop, worker_stop, _ = SINK.stop(60), FAUST_WORKER.stop(60), GATEWAY.stop(60)
        for k, v in saved.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
    yield {"sent": sent, "pop": pop, "app_id": app_id, "stops": (sink_stop, worker_stop)}




def test_enough_uploads_and_both_kinds(streamed):
    sent = streamed["sent"]
    assert sent.total >= 2000
    assert sent.malformed > 50 and sent.valid > 1900


def test_services_stopped_cleanly(streamed):
    sink_stop, worker_stop = streamed["stops"]
    assert sink_stop.startswith("stopped"), sink_stop
    assert worker_stop.startswith("stopped"), worker_stop


def test_reconciliation_in_equals_processed_plus_deadlettered(streamed):
    """uploads in = uploads fused into feature rows + dead-lettered; the report's figures say the same."""
    sent = streamed["sent"]
    fused = fused_upload_ids(stream_feature_rows())
    (dead,), = _q("SELECT count(*) FROM stream.deadletter WHERE deadletter_id LIKE 'sensor.raw:%'")
    assert len(fused) == sent.valid
    assert dead == sent.malformed
    assert len(fused) + dead == sent.total
    report = store_report()
    assert report["uploads_fused"] == sent.valid and report["deadlettered"] == sent.malformed
    assert report["features"] == report["distinct_feature_events"] < sent.valid  # fused: fewer moments than uploads


def store_report() -> dict:
    from pipelines.store.db import connect

    sql = (config.PROJECT_ROOT / "sql" / "reports" / "stream_reconciliation.sql").read_text()
    con = connect(read_only=True)
    try:
        cur = con.execute(sql)
        return dict(zip([d[0] for d in cur.description], cur.fetchone()))
    finally:
        con.close()


def test_every_expected_moment_has_exactly_one_feature_row(streamed):
    """One row per person-moment (moment_id(user_id, moment_of(upload)) of the valid uploads), each
    valid upload fused into exactly one of them; phone and watch really were fused."""
    rows = stream_feature_rows()
    ids = [r[0] for r in rows]
    assert len(ids) == len(set(ids))
    assert set(ids) == expected_moment_ids(streamed["sent"].event_ids, streamed["pop"])
    assert sorted(fused_upload_ids(rows)) == sorted(streamed["sent"].event_ids)
    fused_pairs = [d for _e, _u, d in rows if "+" in d]
    assert fused_pairs, "no moment was fused from two devices"
    owner = dict(zip(streamed["pop"].devices.device_id, streamed["pop"].devices.user_id))
    assert all(owner[part] == u for _e, u, d in rows for part in d.split("+"))  # only the person's own devices


def test_one_push_per_moment_and_scores_complete(streamed, broker):
    """At most one push per moment (the old check, count(*) = count(DISTINCT notification_id) on a key
    made of event:item, could not fail even when the tuner approved a second item for a moment), the
    topic read_committed holds exactly the stored pushes, and every processed upload was scored."""
    from stream_checks import read_moments

    (dupes,), = _q("SELECT count(*) FROM (SELECT user_id, event_id FROM stream.notifications "
                   "GROUP BY 1, 2 HAVING count(*) > 1)")
    assert dupes == 0
    on_topic = read_moments(config.topic(TOPICS.notifications))
    assert len(on_topic) == len(set(on_topic)), "a moment's push appears twice on the notifications topic"
    stored = {(u, e) for u, e in _q("SELECT user_id, event_id FROM stream.notifications")}
    assert set(on_topic) == stored and len(stored) > 0
    moments = {r[0] for r in stream_feature_rows()}
    assert {e for _u, e in stored} <= moments, "a push names no fused moment"
    (unscored,), = _q("SELECT count(*) FROM features.state_features f WHERE source = 'stream' AND NOT EXISTS "
                      "(SELECT 1 FROM stream.osr_scores s WHERE s.event_id = f.event_id)")
    assert unscored == 0
    # a scored moment lists each candidate once (a re-delivered upload once listed every item twice)
    (doubled,), = _q("SELECT count(*) FROM (SELECT event_id, item_id FROM stream.osr_scores GROUP BY 1, 2 "
                     "HAVING count(*) > 1)")
    assert doubled == 0


def test_one_decision_per_scored_moment_and_each_approval_pushed(streamed):
    """tuner.decisions (stream.tuner_decisions): exactly one decision per scored moment; the approved
    ones are exactly the pushes (person, moment, item); a refused or stale one is never pushed."""
    decisions = _q("SELECT event_id, user_id, approved, item_id, reason FROM stream.tuner_decisions")
    ids = [d[0] for d in decisions]
    assert len(ids) == len(set(ids))
    scored = {e for (e,) in _q("SELECT DISTINCT event_id FROM stream.osr_scores")}
    assert set(ids) == scored
    assert all(reason for *_x, reason in decisions)
    assert all(a == (reason == "approved") for _e, _u, a, _i, reason in decisions)
    approved = {(u, e, i) for e, u, a, i, _r in decisions if a}
    pushed = set(_q("SELECT user_id, event_id, item_id FROM stream.notifications"))
    assert approved == pushed, f"approved not pushed {len(approved - pushed)}, pushed not approved {len(pushed - approved)}"
    stale = sum(r.startswith("stale") for *_x, r in decisions)
    print(f"\ndecisions {len(decisions)}: approved {len(approved)}, stale {stale}")


def test_deadletters_carry_reasons(streamed):
    rows = _q("SELECT reason, payload FROM stream.deadletter WHERE deadletter_id LIKE 'sensor.raw:%'")
    assert rows and all(reason and payload for reason, payload in rows)
    kinds = {r[0].split(":")[0].split(" ")[0] for r in rows}
    assert len(kinds) >= 4  # several distinct failure reasons, not one catch-all


def test_faust_group_consumed_sensor_raw(streamed, broker):
    """The Faust app's own consumer group committed exactly the uploads sent to sensor.raw."""
    from confluent_kafka import Consumer, TopicPartition

    from pipelines import config
    from pipelines.ingest.kafka_clients import consumer_config

    topic = config.topic(TOPICS.sensor_raw)
    assert sum(group_lag(streamed["app_id"], [topic]).values()) == 0
    c = Consumer(consumer_config(streamed["app_id"]))
    try:
        parts = [TopicPartition(topic, p) for p in c.list_topics(topic, timeout=10).topics[topic].partitions]
        committed = c.committed(parts, timeout=10)
    finally:
        c.close()
    assert sum(max(tp.offset, 0) for tp in committed) == streamed["sent"].total


def test_pushes_beat_state_blind_pushes(streamed):
    """The stream's pushes convert better (ground truth) than ALS top-1 pushed at random moments."""
    from pipelines.reco.lift import osr_lift

    con = connect(read_only=True)
    try:
        lift = osr_lift(con, P.generate(POP))
    finally:
        con.close()
    assert lift["pushes"] > 0
    assert lift["osr_purchase_rate"] > lift["state_blind_purchase_rate"]


def test_osr_tuner_explain_on_the_run(streamed, capsys):
    """`osr tuner explain` on moments this run decided: an approved one names its item and rule, a
    refused one its reason, as stored by the sink from tuner.decisions."""
    from pipelines.ops.cli import main

    approved = _q("SELECT event_id, item_id FROM stream.tuner_decisions WHERE approved ORDER BY event_id LIMIT 1")
    refused = _q("SELECT event_id, reason FROM stream.tuner_decisions WHERE NOT approved ORDER BY event_id LIMIT 1")
    assert approved and refused, "the run should have both approved and refused moments"
    (eid, item), = approved
    assert main(["tuner", "explain", eid]) == 0
    out = capsys.readouterr().out
    assert eid in out and "approved" in out and item in out, out
    (eid, reason), = refused
    assert main(["tuner", "explain", eid]) == 0
    out = capsys.readouterr().out
    assert eid in out and reason in out, out
    assert main(["tuner", "explain", "nobody:never"]) != 0  # an unknown moment says so, with a non-zero exit
