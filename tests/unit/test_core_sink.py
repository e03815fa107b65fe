"""pipelines.store.sink: a polled batch lands in its tables, replays add nothing, undecodable values are
dead-lettered with a reason."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pandas as pd
import pytest

from pipelines import config
from pipelines.contracts import TOPICS
from pipelines.ingest.validation import deadletter_record
from pipelines.online.features import FEATURE_COLUMNS, NUMERIC_FEATURES
from pipelines.store.sink import SCORE_COLUMNS, SinkStats, routes, scores_frame, write_batch
from pipelines.store.db import connect, migrate, scalar

TS = 1_795_000_000.0
TS_NAIVE_UTC = datetime.fromtimestamp(TS, timezone.utc).replace(tzinfo=None)  # how the store keeps it


class FakeMessage:
    """The part of confluent_kafka.Message the sink uses."""

    def __init__(self, topic: str, value, partition: int = 0, offset: int = 0):
        self._topic, self._value, self._partition, self._offset = topic, value, partition, offset

    def topic(self):
        return self._topic

    def partition(self):
        return self._partition

    def offset(self):
        return self._offset

    def value(self):
        return self._value


def feature(event_id: str) -> dict:
    row = {"event_id": event_id, "user_id": "u1", "device_id": "u1-watch", "device_type": "watch", "ts": TS,
           "source": "stream", "n_readings": 60, "spikes_rejected": 1}
    row.update({c: 1.5 for c in NUMERIC_FEATURES})
    row.update(hour_of_day=8, day_of_week=2)  # integers in the FeatureRow contract
    row.update(activity_level=1, x_m=10.0, y_m=20.0)  # an integer level; the last position (migration 062)
    row["dist_work_m"] = None
    return row


def scored(event_id: str, items=("i1", "i2", "i3")) -> dict:
    return {"event_id": event_id, "user_id": "u1", "ts": TS, "model_id": "m1",
            "scores": [{"item_id": i, "category": "coffee", "preference": 0.5, "propensity": 0.2,
                        "raw_score": 0.1, "osr_score": 0.3} for i in items]}


def notification(event_id: str, item_id: str = "i1") -> dict:
    return {"notification_id": f"{event_id}:{item_id}", "event_id": event_id, "user_id": "u1", "item_id": item_id,
            "category": "coffee", "ts": TS, "osr_score": 0.3, "threshold": 0.15, "rule_scope": "global",
            "model_id": "m1"}


def msg(topic_attr: str, value, offset: int, partition: int = 0) -> FakeMessage:
    body = value if isinstance(value, (bytes, type(None))) else json.dumps(value).encode()
    return FakeMessage(config.topic(getattr(TOPICS, topic_attr)), body, partition, offset)


@pytest.fixture
def con(tmp_path):
    c = connect(tmp_path / "sink.duckdb")
    migrate(c)
    yield c
    c.close()


def count(con, table: str) -> int:
    return scalar(con, f"SELECT count(*) FROM {table}")


def batch():
    bad_upload = b'{"event_id": "s1-phone", "x": [1, 2]}'
    return [
        msg("state_features", feature("e1"), 0),
        msg("state_features", feature("e2"), 1),
        msg("osr_scores", scored("e1"), 0),
        msg("osr_scores", scored("e2", items=("i4",)), 1),
        msg("notifications", notification("e1"), 0),
        msg("sensor_deadletter", deadletter_record(bad_upload, "field 'y' missing", "sensor.raw:3:17"), 0),
    ]


def test_routes_cover_the_five_result_topics():
    r = routes()
    assert {k: v.table for k, v in r.items()} == {
        "state.features": "features.state_features", "osr.scores": "stream.osr_scores",
        "tuner.decisions": "stream.tuner_decisions",
        "notifications": "stream.notifications", "sensor.deadletter": "stream.deadletter"}


def test_routes_follow_the_topic_prefix(monkeypatch):
    monkeypatch.setenv("OSR_TOPIC_PREFIX", "t1.")
    assert "t1.osr.scores" in routes()


def test_batch_lands_in_its_tables(con):
    stats = SinkStats()
    write_batch(con, batch(), routes(), stats)
    assert count(con, "features.state_features") == 2
    assert count(con, "stream.osr_scores") == 4
    assert count(con, "stream.notifications") == 1
    assert count(con, "stream.deadletter") == 1
    f = con.execute("SELECT event_id, ts, speed_mps, dist_work_m, n_readings FROM features.state_features "
                    "ORDER BY event_id").fetchall()
    assert f[0] == ("e1", TS_NAIVE_UTC, 1.5, None, 60)
    s = con.execute("SELECT score_id, event_id, item_id, osr_score, model_id FROM stream.osr_scores "
                    "ORDER BY score_id").fetchall()
    assert s[0] == ("e1:i1", "e1", "i1", 0.3, "m1") and s[-1] == ("e2:i4", "e2", "i4", 0.3, "m1")
    n = con.execute("SELECT notification_id, rule_scope, threshold FROM stream.notifications").fetchall()
    assert n == [("e1:i1", "global", 0.15)]
    d = con.execute("SELECT deadletter_id, event_id, reason, payload FROM stream.deadletter").fetchall()
    assert d == [("sensor.raw:3:17", "s1-phone", "field 'y' missing", '{"event_id": "s1-phone", "x": [1, 2]}')]
    assert stats.batches == 1 and stats.undecodable == 0
    assert stats.messages == {"state.features": 2, "osr.scores": 2, "notifications": 1, "sensor.deadletter": 1}
    assert stats.new_rows == {"features.state_features": 2, "stream.osr_scores": 4, "stream.notifications": 1,
                              "stream.deadletter": 1}
    assert con.execute("SELECT topic, n_messages, n_new_rows FROM ops.sink_batches ORDER BY topic").fetchall() == [
        ("notifications", 1, 1), ("osr.scores", 2, 4), ("sensor.deadletter", 1, 1), ("state.features", 2, 2)]


def test_replayed_batch_adds_no_rows(con):
    stats = SinkStats()
    write_batch(con, batch(), routes(), stats)
    before = {t: count(con, t) for t in ("features.state_features", "stream.osr_scores", "stream.notifications",
                                         "stream.deadletter")}
    write_batch(con, batch(), routes(), stats)
    assert {t: count(con, t) for t in before} == before
    assert stats.batches == 2
    assert stats.messages["osr.scores"] == 4
    assert stats.new_rows["stream.osr_scores"] == 4  # nothing new the second time


def test_duplicates_inside_one_batch_are_stored_once(con):
    stats = SinkStats()
    write_batch(con, [msg("state_features", feature("e1"), 0), msg("state_features", feature("e1"), 1)],
                routes(), stats)
    assert count(con, "features.state_features") == 1
    assert stats.new_rows == {"features.state_features": 1}


@pytest.mark.parametrize("value, fragment", [
    (b"{not json", "Expecting property name"),
    (b"\xffabc", "can't decode byte 0xff"),
    (None, "must be str, bytes or bytearray"),
])
def test_undecodable_value_is_deadlettered(con, value, fragment):
    stats = SinkStats()
    write_batch(con, [msg("state_features", feature("e1"), 0), msg("osr_scores", value, 7, partition=2)],
                routes(), stats)
    assert count(con, "features.state_features") == 1
    rows = con.execute("SELECT deadletter_id, event_id, reason FROM stream.deadletter").fetchall()
    assert len(rows) == 1
    dl_id, event_id, reason = rows[0]
    assert dl_id == "osr.scores:2:7" and event_id is None
    assert reason.startswith("sink could not decode a osr.scores message") and fragment in reason
    assert stats.undecodable == 1
    # the same bad message replayed is not stored twice
    write_batch(con, [msg("osr_scores", value, 7, partition=2)], routes(), stats)
    assert count(con, "stream.deadletter") == 1


def test_wrong_shaped_message_does_not_block_the_batch(con):
    stats = SinkStats()
    write_batch(con, [msg("state_features", feature("e1"), 0), msg("state_features", {"hello": 1}, 1),
                      msg("osr_scores", {"event_id": "e5"}, 2)], routes(), stats)
    assert count(con, "features.state_features") == 1
    assert count(con, "stream.deadletter") == 2


def test_scores_frame_explodes_the_scores_list():
    df = scores_frame([scored("e1"), scored("e2", items=("i9",)), scored("e3", items=())])
    assert list(df.columns) == SCORE_COLUMNS
    assert df.score_id.tolist() == ["e1:i1", "e1:i2", "e1:i3", "e2:i9"]
    assert df.event_id.tolist() == ["e1", "e1", "e1", "e2"]
    assert (df.user_id == "u1").all() and (df.model_id == "m1").all()
    assert df.preference.tolist() == [0.5] * 4 and df.propensity.tolist() == [0.2] * 4
    assert (df.ts == pd.Timestamp(TS_NAIVE_UTC)).all()


def test_scores_frame_of_nothing_has_the_columns():
    df = scores_frame([])
    assert list(df.columns) == SCORE_COLUMNS and len(df) == 0


def test_feature_columns_match_the_table(con):
    cols = [r[0] for r in con.execute(
        "SELECT column_name FROM duckdb_columns() WHERE schema_name = 'features' "
        "AND table_name = 'state_features' ORDER BY column_index").fetchall()]
    assert cols == FEATURE_COLUMNS


# --- a message the store refuses, a store that is away ---------------------------------------------

@pytest.mark.parametrize("patch", [{"speed_mps": "fast"}, {"ts": "yesterday"}, {"hour_of_day": "8"}])
def test_wrongly_typed_message_is_deadlettered_and_the_rest_stored(con, patch):
    """Before: one such message rolled the batch back and stopped the sink for good."""
    stats = SinkStats()
    write_batch(con, [msg("state_features", feature("e1"), 0), msg("state_features", {**feature("e2"), **patch}, 1),
                      msg("state_features", feature("e3"), 2)], routes(), stats)
    assert sorted(r[0] for r in con.execute("SELECT event_id FROM features.state_features").fetchall()) == ["e1", "e3"]
    (reason,) = con.execute("SELECT reason FROM stream.deadletter WHERE deadletter_id = 'state.features:0:1'").fetchone()
    assert list(patch)[0] in reason


def test_value_the_column_cannot_hold_is_deadlettered_alone(con):
    """Passes the contract (an int) but not the INTEGER column: the store's refusal is the reason."""
    stats = SinkStats()
    write_batch(con, [msg("state_features", feature("e1"), 0), msg("state_features", {**feature("e2"), "n_readings": 2**40}, 1),
                      msg("osr_scores", scored("e1"), 0)], routes(), stats)
    assert count(con, "features.state_features") == 1 and count(con, "stream.osr_scores") == 3
    (reason,) = con.execute("SELECT reason FROM stream.deadletter").fetchone()
    assert reason.startswith("store refused a state.features message")


def test_store_outage_raises_and_deadletters_nothing(tmp_path):
    from pipelines.store.sink import StoreUnavailable

    c = connect(tmp_path / "gone.duckdb")
    migrate(c)
    c.execute("DROP TABLE features.state_features")  # every insert now fails, whatever the message
    with pytest.raises(StoreUnavailable):
        write_batch(c, [msg("state_features", feature("e1"), 0), msg("state_features", feature("e2"), 1)],
                    routes(), SinkStats())
    assert count(c, "stream.deadletter") == 0
    c.close()
