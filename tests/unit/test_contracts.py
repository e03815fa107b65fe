"""One definition per message (pipelines.contracts): the DDL, the sink, the training query and the
functions that build each message all agree with it, so a field added in one place shows up
everywhere or fails here."""

from __future__ import annotations

import math

import pytest

from pipelines import contracts as C
from pipelines.store import sink
from pipelines.store.db import connect, migrate, run_sql_file


@pytest.fixture
def store(tmp_path):
    con = connect(tmp_path / "contracts.duckdb")
    migrate(con)
    yield con
    con.close()


def table_columns(con, table: str) -> dict[str, bool]:
    """column -> nullable, in table order."""
    schema, name = table.split(".")
    rows = con.execute("SELECT column_name, is_nullable FROM information_schema.columns "
                       "WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position", [schema, name]).fetchall()
    return {c: n == "YES" for c, n in rows}


@pytest.mark.parametrize("table,contract,columns", [
    ("features.state_features", C.FeatureRow, sink.FEATURE_COLUMNS),
    ("stream.notifications", C.Notification, sink.NOTIFICATION_COLUMNS),
])
def test_table_is_the_message(store, table, contract, columns):
    cols = table_columns(store, table)
    assert list(cols) == C.fields(contract) == columns
    # NOT NULL exactly where the contract does not admit None
    assert [c for c, nullable in cols.items() if not nullable] == C.not_null_fields(contract)


def test_scores_table_is_event_plus_item_fields(store):
    cols = table_columns(store, "stream.osr_scores")
    assert set(cols) == set(sink.SCORE_COLUMNS)
    assert set(sink.SCORE_COLUMNS) == {"score_id"} | set(C.fields(C.ScoredEvent)) - {"scores"} | set(C.fields(C.ScoredItem))
    assert not any(cols.values())  # every score column is required in both contracts


def test_deadletter_table_is_the_letter_keyed_by_source(store):
    assert set(table_columns(store, "stream.deadletter")) == set(sink.DEADLETTER_COLUMNS)
    assert set(sink.DEADLETTER_COLUMNS) == set(C.fields(C.DeadLetter)) - {"source"} | {"deadletter_id", "received_at"}


def test_every_topic_has_a_message_and_every_message_a_topic():
    assert set(C.MESSAGES) <= set(C.TOPICS.__dict__)
    assert all(isinstance(getattr(C.TOPICS, name), str) for name in C.MESSAGES)


def test_state_vector_is_declared_in_the_feature_row():
    assert C.STATE_VECTOR == ["speed_mps", "heading_deg", "dist_home_m", "dist_work_m", "dist_store_m",
                              "hr_pct_peak", "hr_rate_bpm_per_min", "activity", "hour_of_day", "day_of_week",
                              "min_since_workout", "activity_level", "approach_store_mps", "approach_home_mps",
                              "approach_work_mps"]
    assert set(C.STATE_VECTOR) < set(C.fields(C.FeatureRow))


def test_training_set_carries_every_model_feature(store):
    """The point-in-time query selects its columns by name: it must give the model everything it serves on."""
    from pipelines.online.osr_score import MODEL_FEATURES

    train = run_sql_file(store, "propensity_training_set", max_age_s=1800)
    missing = set(MODEL_FEATURES) - set(train.columns)
    assert not missing, f"sql/pipeline/propensity_training_set.sql lacks {sorted(missing)}"


def test_builders_emit_their_contracts(tiny_pop):
    """The filter, the features, the score and the tuner produce exactly the declared messages."""
    from pipelines.filtering.kalman import filter_event
    from pipelines.online.features import state_features
    from pipelines.synthetic.population import sensor_events

    event, _truth = next(iter(sensor_events(tiny_pop, "stream")))
    assert C.problem(C.Upload, event) is None
    filtered, _ = filter_event(event, None)
    assert C.problem(C.FilteredUpload, filtered) is None
    users = tiny_pop.users.set_index("user_id").to_dict("index")
    row = state_features(filtered, users[event["user_id"]], tiny_pop.stores[["x", "y"]].to_numpy(float))
    assert list(row) == C.fields(C.FeatureRow)
    assert C.problem(C.FeatureRow, row) is None


def test_score_and_tuner_emit_their_contracts(tmp_path, snapshot_tables, snapshot_meta, propensity_model_str):
    from pipelines.online.osr_score import score_batch
    from pipelines.online.snapshot import load_snapshot, write_snapshot
    from pipelines.online.tuner import RuleBook, decide

    write_snapshot("m1", snapshot_tables, propensity_model_str, snapshot_meta, root=tmp_path)
    snap = load_snapshot("m1", root=tmp_path)
    row = {f: None for f in C.fields(C.FeatureRow)}
    row.update(event_id="e1", user_id="u1", device_id="d1", device_type="watch", ts=1.79e9, source="stream",
               speed_mps=1.0, heading_deg=0.0, activity=0.5, hour_of_day=9, day_of_week=1, n_readings=60,
               spikes_rejected=0)
    (scored,) = score_batch([row], snap)
    assert C.problem(C.ScoredEvent, scored) is None
    best = max(scored["scores"], key=lambda s: s["osr_score"])
    best["osr_score"] = 0.99  # above every threshold
    note, reason, _ = decide(scored, RuleBook(snap.rules), {}, None)
    assert reason == "approved"
    assert list(note) == C.fields(C.Notification) and C.problem(C.Notification, note) is None


@pytest.mark.parametrize("patch,expect", [
    ({"speed_mps": "fast"}, "speed_mps is str"),
    ({"ts": "yesterday"}, "ts is str"),
    ({"hour_of_day": 8.5}, "hour_of_day is float"),
    ({"activity": math.nan}, "activity is not finite"),
    ({"speed_mps": True}, "speed_mps is bool"),
    ({"event_id": None}, "event_id is null"),
])
def test_problem_names_the_wrong_field(patch, expect):
    row = {f: 1.0 for f in C.STATE_VECTOR}
    row.update(event_id="e", user_id="u", device_id="d", device_type="phone", ts=1.0, source="stream",
               hour_of_day=1, day_of_week=1, n_readings=2, spikes_rejected=0)
    row.update(activity_level=1, x_m=1.0, y_m=1.0)
    assert C.problem(C.FeatureRow, row) is None
    assert expect in C.problem(C.FeatureRow, {**row, **patch})


def test_problem_checks_nested_items_and_missing_fields():
    ev = {"event_id": "e", "user_id": "u", "ts": 1.0, "model_id": "m", "scores": [
        {"item_id": "i", "category": "c", "preference": 1.0, "propensity": 1.0, "raw_score": 1.0}]}
    assert "missing ['osr_score']" in C.problem(C.ScoredEvent, ev)
    assert "missing" in C.problem(C.Notification, {"notification_id": "x"})
    assert "expected a JSON object" in C.problem(C.DeadLetter, [1, 2])
