"""pipelines.online.tuner_rules and `osr tuner`: rules managed in a real store (a DuckLake in the test's
OSR_HOME), versioned, followed by a worker without a restart; explain reads a stored decision."""

from __future__ import annotations

import logging

import pandas as pd
import pytest

from pipelines import contracts as C
from pipelines.ops.cli import main
from pipelines.online import tuner_rules as TR
from pipelines.online.tuner import TunerStage
from pipelines.store import sink
from pipelines.store.db import connect, migrate, scalar, transaction, upsert_ignore
from pipelines.store.population_loader import load_population


@pytest.fixture
def store(osr_home, tiny_pop):
    con = connect()
    migrate(con)
    load_population(con, tiny_pop)
    yield con
    con.close()


def person(pop, k=0) -> str:
    return pop.users.user_id.iloc[k]


def test_population_load_is_version_1_and_set_delete_bump_it(store, tiny_pop):
    assert TR.rules_version(store) == 1
    assert set(map(tuple, TR.read_rules(store)[["scope", "scope_key"]].to_numpy())) == \
        {("global", "*"), ("class", "electronics")}
    uid = person(tiny_pop)
    v, rule = TR.set_rule(store, "person", uid, threshold=0.4, by="test")
    assert v == 2 and rule == {"scope": "user", "scope_key": uid, "threshold": 0.4, "min_gap_s": 4 * 3600.0}
    v, rule = TR.set_rule(store, "person", uid, min_gap_s=60.0)
    assert v == 3 and (rule["threshold"], rule["min_gap_s"]) == (0.4, 60.0)  # keeps its threshold
    assert TR.delete_rule(store, "person", uid) == 4
    assert TR.set_setting(store, "stale_move_m", 300.0) == 5
    assert TR.read_settings(store) == {"stale_move_m": 300.0}
    assert TR.delete_setting(store, "stale_move_m") == 6 and TR.read_settings(store) == {}
    assert scalar(store, "SELECT count(*) FROM tuner.rules WHERE scope = 'user'") == 0
    log = store.execute("SELECT version, action, scope, changed_by FROM tuner.rule_changes ORDER BY version, "
                        "scope").fetchall()
    assert [r[:3] for r in log] == [(1, "set", "class"), (1, "set", "global"), (2, "set", "user"), (3, "set", "user"),
                                    (4, "delete", "user"), (5, "set", "setting"), (6, "delete", "setting")]
    assert log[2][3] == "test"


def test_rules_at_replays_the_log(store, tiny_pop):
    uid = person(tiny_pop)
    TR.set_rule(store, "person", uid, threshold=0.4)
    TR.set_rule(store, "global", "*", threshold=0.2)
    TR.delete_rule(store, "person", uid)
    at = {v: {(r.scope, r.scope_key): r.threshold for r in TR.rules_at(store, v).itertuples()} for v in (1, 2, 3, 4)}
    assert at[1] == {("global", "*"): 0.15, ("class", "electronics"): 0.25}
    assert at[2] == {**at[1], ("user", uid): 0.4}
    assert at[3] == {**at[2], ("global", "*"): 0.2}
    assert at[4] == {("global", "*"): 0.2, ("class", "electronics"): 0.25}
    assert TR.rules_at(store, 0) is None


REFUSED = [
    (("person", "nobody"), "no person 'nobody'"),
    (("item", "i_missing"), "no item"),
    (("category", "jewellery"), "no category"),
    (("person-class", "platinum"), "no person class"),
    (("person-item", "just-one-part"), "USER_ID|ITEM_ID"),
    (("global", "all"), "global rule's key is"),
    (("galaxy", "x"), "unknown scope"),
]


def test_rules_that_could_never_apply_and_bad_values_are_refused(store):
    """(One store for all the cases: a store costs a migration.)"""
    for args, match in REFUSED:
        with pytest.raises(ValueError, match=match):
            TR.set_rule(store, *args, threshold=0.5)
    with pytest.raises(ValueError, match="out of range"):
        TR.set_rule(store, "global", "*", threshold=1.5)
    with pytest.raises(ValueError, match="cannot be deleted"):
        TR.delete_rule(store, "global", "*")
    with pytest.raises(ValueError, match="no person rule 'nobody'"):
        TR.delete_rule(store, "person", "nobody")
    with pytest.raises(ValueError, match="unknown tuner setting"):
        TR.set_setting(store, "stale_everything", 1.0)
    assert TR.rules_version(store) == 1
    # --force: a rule for someone not loaded yet
    v, _ = TR.set_rule(store, "person", "u_new", threshold=0.3, force=True)
    assert v == 2


# --- the follower --------------------------------------------------------------------------------

def test_follower_sees_a_change_without_restart(store, tiny_pop, snapshot_tables, snapshot_meta,
                                                propensity_model_str, tmp_path):
    from pipelines.online.snapshot import load_snapshot, write_snapshot

    uid = person(tiny_pop)
    users = tiny_pop.users[["user_id", "peak_hr", "home_x", "home_y", "work_x", "work_y", "tz", "person_class"]]
    write_snapshot("m1", {**snapshot_tables, "users": users,
                          "preferences": snapshot_tables["preferences"].iloc[:0]},
                   propensity_model_str, snapshot_meta, root=tmp_path)
    snap = load_snapshot("m1", root=tmp_path)
    follower = TR.RulesFollower(poll_s=0.0)
    stage = TunerStage(rules=follower)
    ts = pd.Timestamp("2026-11-16 12:00", tz="UTC").timestamp()
    ev = {"event_id": "e1", "user_id": uid, "ts": ts, "model_id": "m1",
          "scores": [{"item_id": "i1", "category": "coffee", "osr_score": 0.3, "preference": 0.5,
                      "propensity": 0.1, "raw_score": 0.1}]}

    assert follower.current() is None
    _, dec, _ = stage.decision(ev, snap, None)
    assert dec["rules_version"] is None and dec["approved"]  # the snapshot's rules, before any refresh
    assert follower.refresh().version == 1
    _, dec, _ = stage.decision({**ev, "event_id": "e2"}, snap, None)
    assert (dec["rules_version"], dec["approved"], dec["rule_scope"]) == (1, True, "global")

    writer = connect()  # another connection (as `osr tuner set` in another process)
    try:
        TR.set_rule(writer, "person", uid, threshold=0.5)
    finally:
        writer.close()
    assert follower.current().version == 1  # current() never reads the store
    _, dec, _ = stage.decision({**ev, "event_id": "e3"}, snap, None)
    assert dec["approved"]
    view = follower.refresh()
    assert view.version == 2 and view is follower.current()
    _, dec, _ = stage.decision({**ev, "event_id": "e4"}, snap, None)
    assert (dec["rules_version"], dec["approved"], dec["rule_scope"], dec["threshold"]) == (2, False, "user", 0.5)
    assert follower.refresh() is view  # unchanged version: nothing re-read

    # a staleness setting reaches the stage the same way
    w = connect()
    try:
        TR.set_setting(w, "stale_move_m", 1000.0)
    finally:
        w.close()
    follower.refresh()
    assert stage.staleness_limits().move_m == 1000.0
    follower.close()


def test_follower_reads_never_hold_up_a_writer(store):
    """A read-only follower in the middle of its read transaction: a writer still commits (and the
    follower sees the new version on its next read)."""
    follower = TR.RulesFollower()
    follower.refresh()
    con = follower._con
    con.execute("BEGIN")
    assert TR.rules_version(con) == 1
    assert TR.set_setting(store, "stale_hr_margin", 0.1) == 2  # commits while the reader's transaction is open
    con.execute("COMMIT")
    assert follower.refresh().version == 2


def test_follower_without_a_store_falls_back_and_logs_once(osr_home, caplog, snapshot_tables, snapshot_meta,
                                                           propensity_model_str, tmp_path):
    from pipelines.online.snapshot import load_snapshot, write_snapshot

    write_snapshot("m1", snapshot_tables, propensity_model_str, snapshot_meta, root=tmp_path)
    snap = load_snapshot("m1", root=tmp_path)
    follower = TR.RulesFollower()
    stage = TunerStage(rules=follower)
    with caplog.at_level(logging.WARNING, logger=TR.__name__):
        for _ in range(3):
            assert follower.refresh() is None
    warnings = [r for r in caplog.records if r.name == TR.__name__]
    assert len(warnings) == 1 and "serving the snapshot's rules" in warnings[0].getMessage()
    ev = {"event_id": "e1", "user_id": "u1", "ts": pd.Timestamp("2026-11-16 12:00", tz="UTC").timestamp(),
          "model_id": "m1", "scores": [{"item_id": "i1", "category": "electronics", "osr_score": 0.2,
                                        "preference": 0.5, "propensity": 0.1, "raw_score": 0.1}]}
    _, dec, _ = stage.decision(ev, snap, None)
    assert (dec["rule_scope"], dec["threshold"], dec["rules_version"]) == ("class", 0.25, None)

    con = connect()  # the store comes up
    migrate(con)
    transaction(con, lambda c: upsert_ignore(c, "tuner.rules", pd.DataFrame(
        [("global", "*", 0.1, 60.0)], columns=["scope", "scope_key", "threshold", "min_gap_s"])))
    con.close()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger=TR.__name__):
        assert follower.refresh().version == 0
    assert any("answers again" in r.getMessage() for r in caplog.records)
    _, dec, _ = stage.decision({**ev, "event_id": "e2"}, snap, None)
    assert (dec["rule_scope"], dec["threshold"], dec["rules_version"]) == ("global", 0.1, 0)
    follower.close()


def test_follower_keeps_its_rules_when_the_store_has_no_global_rule(osr_home):
    con = connect()
    migrate(con)  # a store without a population: no rules at all
    con.close()
    follower = TR.RulesFollower()
    assert follower.refresh() is None and follower.current() is None


# --- osr tuner -----------------------------------------------------------------------------------

def run(capsys, *argv) -> tuple[int, str, str]:
    code = main(["tuner", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_set_list_delete(store, tiny_pop, capsys):
    uid = person(tiny_pop)
    code, out, _ = run(capsys, "set", "person", uid, "--threshold", "0.4", "--min-gap", "30m")
    assert code == 0 and f"person rule {uid}: threshold 0.400, min gap 30m; tuner rules version 2" in out
    code, out, _ = run(capsys, "set", "category", "coffee", "--threshold", "0.3", "--min-gap", "2h")
    assert code == 0 and "version 3" in out
    code, out, _ = run(capsys, "set", "setting", "stale_move_m", "--value", "250")
    assert code == 0 and "version 4" in out
    code, out, _ = run(capsys, "list")
    assert code == 0 and "tuner rules, version 4" in out
    lines = [line.split() for line in out.splitlines()]
    assert ["person", uid, "0.400", "30m"] in lines and ["category", "coffee", "0.300", "2h"] in lines
    assert ["global", "*", "0.150", "4h"] in lines
    assert ["stale_move_m", "250", "(default", "200)"] in lines
    # most specific first
    order = [line[0] for line in lines if line and line[0] in ("person", "category", "global")]
    assert order == ["person", "category", "category", "global"]
    code, out, _ = run(capsys, "delete", "person", uid)
    assert code == 0 and "version 5" in out
    code, out, _ = run(capsys, "list", "--json")
    import json

    listed = json.loads(out)
    assert listed["version"] == 5 and uid not in [r["scope_key"] for r in listed["rules"]]


def test_cli_refuses_bad_input_with_a_clear_error(store, capsys):
    code, _, err = run(capsys, "set", "person", "nobody", "--threshold", "0.4")
    assert code == 2 and "no person 'nobody'" in err
    code, _, err = run(capsys, "delete", "global", "*")
    assert code == 2 and "cannot be deleted" in err
    code, _, err = run(capsys, "set", "category", "coffee")
    assert code == 2 and "--threshold" in err
    with pytest.raises(SystemExit):
        main(["tuner", "set", "category", "coffee", "--min-gap", "soon"])
    assert TR.rules_version(store) == 1


def _store_moment(con, uid: str, decision: dict) -> None:
    scored = {"event_id": "ev-42", "user_id": uid, "ts": decision["ts"], "model_id": "m1", "scores": [
        {"item_id": "i1", "category": "coffee", "preference": 0.9, "propensity": 0.2, "raw_score": 0.2,
         "osr_score": 0.12},
        {"item_id": "i2", "category": "electronics", "preference": 0.8, "propensity": 0.3, "raw_score": 0.3,
         "osr_score": 0.20},
        {"item_id": "i3", "category": "lunch", "preference": 0.1, "propensity": 0.1, "raw_score": 0.0,
         "osr_score": 0.01}]}
    assert C.problem(C.ScoredEvent, scored) is None and C.problem(C.TunerDecision, decision) is None
    transaction(con, lambda c: (upsert_ignore(c, "stream.osr_scores", sink.scores_frame([scored])),
                                upsert_ignore(c, "stream.tuner_decisions", sink.decisions_frame([decision]))))


def test_cli_explain_a_refused_moment(store, tiny_pop, capsys):
    uid = person(tiny_pop)
    tz = tiny_pop.users.tz.iloc[0]
    ts = pd.Timestamp("2026-11-16 12:00", tz="UTC").timestamp()
    _store_moment(store, uid, {"event_id": "ev-42", "user_id": uid, "ts": ts, "approved": False, "item_id": None,
                               "reason": "best score 0.200 under threshold", "rule_scope": "class",
                               "threshold": 0.25, "rules_version": 1, "model_id": "m1"})
    TR.set_rule(store, "category", "electronics", threshold=0.1)  # after the decision: version 2
    code, out, _ = run(capsys, "explain", "ev-42")
    assert code == 0
    local = pd.Timestamp(ts, unit="s", tz="UTC").tz_convert(tz).isoformat()
    assert f"moment ev-42 of {uid} at 2026-11-16T12:00:00+00:00 (local {local}, {tz}" in out
    assert "decision: NOT PUSHED - best score 0.200 under threshold" in out
    assert "rule that applied: category, threshold 0.250" in out
    assert "rules version: 1, model m1" in out
    assert "top candidates of 3 vs their thresholds (the rules at version 1, as the decision saw them)" in out
    rows = [line.split() for line in out.splitlines() if line.startswith("    i")]
    assert [r[:6] for r in rows] == [["i2", "electronics", "score", "0.200", "<", "0.250"],
                                     ["i1", "coffee", "score", "0.120", "<", "0.150"],
                                     ["i3", "lunch", "score", "0.010", "<", "0.150"]]
    code, out, _ = run(capsys, "explain", "ev-42", "--json")
    import json

    ex = json.loads(out)
    assert ex["decision"]["reason"] == "best score 0.200 under threshold" and ex["n_candidates"] == 3


def test_cli_explain_an_approved_moment_and_an_unknown_one(store, tiny_pop, capsys):
    uid = person(tiny_pop)
    ts = pd.Timestamp("2026-11-16 12:00", tz="UTC").timestamp()
    TR.set_rule(store, "person", uid, threshold=0.1)  # version 2
    _store_moment(store, uid, {"event_id": "ev-42", "user_id": uid, "ts": ts, "approved": True, "item_id": "i2",
                               "reason": "approved", "rule_scope": "user", "threshold": 0.1, "rules_version": 2,
                               "model_id": "m1"})
    code, out, _ = run(capsys, "explain", "ev-42", "--top", "2")
    assert code == 0 and "decision: PUSHED i2 - approved" in out and "rule that applied: person, threshold 0.100" in out
    rows = [line.split() for line in out.splitlines() if line.startswith("    i")]
    assert [r[:6] for r in rows] == [["i2", "electronics", "score", "0.200", ">=", "0.100"],
                                     ["i1", "coffee", "score", "0.120", ">=", "0.100"]]
    code, out, _ = run(capsys, "explain", "ev-none")
    assert code == 1 and "no tuner decision and no scores for moment 'ev-none'" in out
