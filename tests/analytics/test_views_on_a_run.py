"""The analyst views on a store filled by a small real run: applied, every declared test passes, the
marts agree with the run's own counts, a broken row makes the runner fail, `osr sql` and `osr report`
work on it."""

from __future__ import annotations

import io
import json
import shutil

import pandas as pd
import pytest

from pipelines.analytics import checks, views
from pipelines.ops.cli import main
from pipelines.store.db import connect, transaction


@pytest.fixture(scope="module")
def applied(filled_store):
    con = connect()
    try:
        return views.apply_views(con)
    finally:
        con.close()


def test_every_view_is_applied_and_a_second_apply_changes_nothing(applied):
    specs = views.load_specs()
    assert sorted(applied.applied) == sorted(s.name for s in specs) and not applied.skipped
    con = connect()
    try:
        again = views.apply_views(con)
        assert views.stale(con) == []
    finally:
        con.close()
    assert again.applied == [] and sorted(again.unchanged) == sorted(applied.applied)


def test_every_declared_test_passes_on_the_run(applied):
    con = connect(read_only=True)
    try:
        results = checks.check_all(con)
        rows = {s.name: con.execute(f"SELECT count(*) FROM {s.qualified}").fetchall()[0][0] for s in views.load_specs()}
    finally:
        con.close()
    assert [r.line() for r in results if not r.ok] == []
    assert len(results) >= 5 * len(rows)
    # a test on an empty view proves nothing: every view holds rows from the run
    assert [name for name, n in rows.items() if n == 0] == []


def _q(sql):
    con = connect(read_only=True)
    try:
        return con.execute(sql).df()
    finally:
        con.close()


def test_the_funnel_adds_up_to_what_the_run_stored(applied, filled_store):
    counts = filled_store["counts"]
    f = _q("SELECT * FROM analytics.notification_funnel").sum(numeric_only=True)
    decided = _q("SELECT approved, count(*) AS n FROM stream.tuner_decisions GROUP BY 1").set_index("approved").n
    assert f.scored == counts["stream.tuner_decisions"] == counts["stream.osr_scores"] / 10
    assert f.approved == decided.get(True, 0) and f.refused == decided.get(False, 0) and f.undecided == 0
    assert f.delivered == counts["stream.notifications"] > 0
    refusals = _q("SELECT sum(moments) AS n FROM analytics.notification_refusals").n[0]
    assert refusals == f.refused
    # quiet hours and opt-outs are people's own settings: the refusals name them
    reasons = set(_q("SELECT reason_class FROM analytics.notification_refusals").reason_class)
    assert {"under_threshold", "quiet_hours", "opted_out"} & reasons


def test_lift_model_history_and_qos_marts_say_what_the_run_measured(applied, filled_store):
    lift = _q("SELECT * FROM analytics.osr_lift")
    assert len(lift) == 1 and lift.lift[0] == pytest.approx(filled_store["lift"]["lift"])
    models = _q("SELECT * FROM analytics.model_history")
    assert models.model_id.tolist() == [filled_store["model_id"]] and models.is_live.tolist() == [True]
    acc = _q("SELECT * FROM analytics.qos_model_accuracy")
    qos = filled_store["qos"]
    assert set(acc.model) == set(qos["choice"]) and acc.chosen.sum() == 1
    assert acc[acc.chosen].model.iloc[0] == qos["model"] and acc[acc.rank_in_run == 1].model.iloc[0] == qos["model"]
    for m, mae in qos["choice"].items():
        assert acc[acc.model == m].holdout_mae.iloc[0] == pytest.approx(mae, abs=1e-4)
    top = _q("SELECT * FROM analytics.qos_top_services")
    assert len(top) == qos["recommendations"]


def test_a_broken_row_makes_the_declared_tests_fail(applied):
    """Inject a duplicate decision and an approved decision without an item into the store table:
    the staging view's unique and expression tests and the mart's grain test fail, naming the row;
    put back, everything passes again."""
    con = connect()
    try:
        eid = con.execute("SELECT min(event_id) FROM stream.tuner_decisions WHERE NOT approved").fetchall()[0][0]
        con.execute("CREATE TEMP TABLE kept AS SELECT * FROM stream.tuner_decisions WHERE event_id = ?", [eid])
        transaction(con, lambda c: c.execute(
            "INSERT INTO stream.tuner_decisions SELECT * FROM stream.tuner_decisions WHERE event_id = $1 "
            "UNION ALL SELECT * REPLACE (true AS approved) FROM stream.tuner_decisions WHERE event_id = $1", [eid]))
        try:
            failed = [r for r in checks.check_all(con) if not r.ok]
        finally:
            def restore(c):
                c.execute("DELETE FROM stream.tuner_decisions WHERE event_id = ?", [eid])
                c.execute("INSERT INTO stream.tuner_decisions SELECT * FROM temp.main.kept")
            transaction(con, restore)
        after = [r.line() for r in checks.check_all(con) if not r.ok]
    finally:
        con.close()
    by = {(r.view, r.test): r for r in failed}
    assert set(by) == {("stg_tuner_decisions", "unique: event_id"),
                       ("stg_tuner_decisions", "expression: approved = (item_id IS NOT NULL)"),
                       ("moment_decisions", "unique: event_id")}, [r.line() for r in failed]
    assert by[("stg_tuner_decisions", "unique: event_id")].sample == [(eid, 3)]
    assert by[("stg_tuner_decisions", "expression: approved = (item_id IS NOT NULL)")].failures == 1
    assert by[("moment_decisions", "unique: event_id")].failures == 1
    assert all(r.error is None for r in failed)
    assert after == []


def test_a_view_over_a_table_not_there_yet_waits_and_says_why(applied, tmp_path):
    root = tmp_path / "analytics"
    shutil.copytree(views.ANALYTICS_SQL, root)
    header = "-- question: q?\n-- grain: one row per run\n-- columns:\n--   run_id  the run\n-- tests:\n--   unique: run_id\n"
    (root / "staging" / "stg_future.sql").write_text(header + "SELECT run_id FROM ops.future_runs\n")
    (root / "marts" / "future_quality.sql").write_text(
        header + "WITH r AS (SELECT * FROM analytics.stg_future), -- import\n"
                 "l AS (SELECT * FROM r), -- logic\nf AS (SELECT * FROM l) -- final\nSELECT * FROM f\n")
    specs = views.load_specs(root)
    con = connect()
    try:
        res = views.apply_views(con, specs)
    finally:
        con.close()
    assert res.skipped == {"stg_future": "needs ops.future_runs, not in the store yet",
                           "future_quality": "reads analytics.stg_future, which is waiting"}
    assert "future_quality" not in res.applied and len(res.unchanged) == len(specs) - 2


def test_osr_sql_lists_runs_and_writes_csv(applied, capsys):
    assert main(["sql", "--list"]) == 0
    out = capsys.readouterr().out
    assert "notification_funnel" in out and "waiting" not in out
    assert main(["sql", "notification_funnel", "--limit", "3"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("-- How do scored moments") and "more row(s)" in out
    assert main(["sql", "analytics.notification_funnel", "--csv"]) == 0
    df = pd.read_csv(io.StringIO(capsys.readouterr().out))
    assert len(df) == len(_q("SELECT * FROM analytics.notification_funnel")) and "refused_quiet_hours" in df.columns
    assert main(["sql", "--test"]) == 0
    assert "declared tests passed" in capsys.readouterr().out


def test_osr_report_writes_the_folder(applied, filled_store, tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["report", "--out", str(out)]) == 0
    printed = capsys.readouterr()
    assert "[1/6] plotting model metrics" in printed.err  # progress
    page = (out / "index.html").read_text()
    for png in ("report_model_metrics.png", "report_funnel.png", "report_refusals.png", "report_funnel_by_hour.png",
                "report_lift.png", "report_push_mix.png", "report_qos_accuracy.png", "report_partition_quality.png",
                "report_capacity_load.png", "report_capacity_workers.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png
        assert f'src="{png}"' in page
    # the in-process run records no broker latency: said, not drawn
    assert not (out / "report_latency.png").exists() and "push latency and throughput: no run with stream figures" in page
    assert 'href="data_docs/index.html"' in page
    docs = (out / "data_docs" / "index.html").read_text()
    for suite in ("interactions_input", "propensity_training_input", "topn_output", "topn_per_person",
                  "osr_scores_output", "qos_observations_rt"):
        assert suite in docs, suite
    assert "qos_observations_tp" in page and "skipped" in page  # no throughput observations in this run
    assert "FAILED" not in page


def test_data_docs_refresh_lists_every_suite_and_reports_a_failed_one(applied, filled_store):
    """The DAG's task: one site for every suite; a suite broken by a bad row is reported, not raised,
    and shows as failed in the docs."""
    from pipelines import config
    from pipelines.analytics import data_docs

    con = connect()
    try:
        transaction(con, lambda c: c.execute(
            "INSERT INTO events.interactions SELECT 'bad-1', 'nobody', item_id, weight, ts FROM events.interactions "
            "LIMIT 1"))
        try:
            summary = data_docs.refresh()
        finally:
            transaction(con, lambda c: c.execute("DELETE FROM events.interactions WHERE interaction_id = 'bad-1'"))
    finally:
        con.close()
    assert summary["failed"] == ["interactions_input"]
    assert summary["suites"]["qos_observations_tp"].startswith("skipped: no tp observations")
    assert all(v == "passed" for k, v in summary["suites"].items() if k not in ("interactions_input",
                                                                               "qos_observations_tp"))
    index = config.path("OSR_REPORTS_DIR") / "data_docs_all" / "index.html"
    assert summary["index"] == str(index)
    page = index.read_text()
    for suite in summary["suites"]:
        if suite != "qos_observations_tp":
            assert suite in page, suite
