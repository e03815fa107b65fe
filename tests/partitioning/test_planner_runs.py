"""Node summaries -> the master's plan -> the recorded run, without a broker: pipelines.partitioning
.summaries, .planner, .runs (decide / record / history / plot) and the coordinator's view of
control.routing."""

from __future__ import annotations

import functools
import json

import numpy as np
import pytest

from pipelines.partitioning import coordinator, planner, runs
from pipelines.partitioning import profiles as P
from pipelines.partitioning.hashing import place
from pipelines.partitioning.migration import Versions
from pipelines.partitioning.summaries import gather, node_summary
from pipelines.partitioning.workload import Workload, WorkloadParams

WINDOW = P.Window(bucket_s=6 * 3600.0, buckets=28)


@functools.lru_cache(maxsize=2)
def _states(n_nodes=3, per_node=300, seed=3, cdrs_per_node=15000):
    wl = Workload.make(WorkloadParams(n_nodes=n_nodes, customers_per_node=per_node, cdrs_per_node=cdrs_per_node,
                                      n_types=3, seed=seed))
    c = wl.cdrs(wl.params.n_cdrs, 0.0, 3 * 86400.0)
    keys = wl.keys()
    states: dict[str, dict] = {}
    for i, ts, v in zip(c.customer, c.ts, c.values):
        k = keys[int(i)]
        states[k] = P.update(states.get(k) or P.empty_state(), v, float(ts), WINDOW, P.TELCO)
    return wl, states  # shared by the tests: none of them changes it


def _summaries(states, n_nodes, version=0, baselines=None):
    nodes = dict(zip(states, place(list(states), n_nodes)))
    out, bases = [], {}
    for j in range(n_nodes):
        active = {k: {"state": s} for k, s in states.items() if nodes[k] == j}
        s, bases[j] = node_summary(j, version, active, (baselines or {}).get(j), now=100.0)
        out.append(s)
    return out, bases, nodes


def test_summaries_cover_every_profile_once_and_gather_keeps_their_costs():
    wl, states = _states()
    summaries, _, nodes = _summaries(states, 3)
    assert all(s["nmi"] is None for s in summaries)  # first summary of a version: baseline only
    mc, keys = gather(summaries, 3)
    assert sorted(keys) == sorted(states)
    assert len(mc) == sum(len(s["clusters"]) for s in summaries)
    assert mc.processing.sum() == pytest.approx(sum(P.costs(s, P.TELCO)[0] for s in states.values()))
    assert (mc.node[mc.labels] == np.asarray([nodes[k] for k in keys])).all()
    # every summary is JSON (what travels on control.routing)
    json.dumps(summaries)


def test_the_second_summary_reports_the_trigger_nmi_and_an_unchanged_node_scores_one():
    wl, states = _states()
    first, bases, _ = _summaries(states, 3)
    again, _, _ = _summaries(states, 3, baselines=bases)
    assert [s["nmi"] for s in again] == [pytest.approx(1.0)] * 3
    assert planner.decide(again) == (False, "min node NMI 1.000 >= 0.9")
    assert planner.decide(first)[0] is False and planner.decide(first, force=True) == (True, "forced")


def test_a_plan_moves_profiles_within_the_budget_and_scores_before_and_after():
    wl, states = _states()
    summaries, _, nodes = _summaries(states, 3)
    p = planner.plan(summaries, 3, force=True)
    assert p["decided"] and p["moves"]
    assert all(nodes[k] != n for k, n in p["moves"].items())  # a move always changes the node
    assert p["moved_state"] <= p["budget"] + 1e-9
    for side in ("before", "after"):
        q = p[side]
        assert 0.0 <= q["cluster_quality"] <= 1.0 and q["balance_quality"] <= 1.0
        assert q["overall_quality"] == pytest.approx(
            (0.5 * q["cluster_quality"] + 0.5 * q["balance_quality"]) * q["migration_quality"])
    assert p["before"]["migration_quality"] == 1.0 and p["after"]["migration_quality"] < 1.0
    # the hash placement of 3 types over 3 nodes clusters worse than the plan
    assert p["after"]["cluster_quality"] > p["before"]["cluster_quality"]


def test_summaries_of_two_versions_are_refused():
    _, states = _states()
    summaries, _, _ = _summaries(states, 3)
    summaries[0] = {**summaries[0], "version": 1}
    with pytest.raises(ValueError, match="versions"):
        planner.plan(summaries, 3, force=True)


def test_the_control_view_follows_announcements_acks_and_summaries():
    view = coordinator.ControlView(Versions(2))
    key = next(k for k in (f"c{i}" for i in range(100)) if place([k], 2)[0] == 0)
    view.take({"kind": "table", "version": 1, "n_nodes": 2, "moves": {key: 1}}, 10.0)
    assert view.missing(1) == {key} and not view.complete(1)
    view.take({"kind": "summary", "node": 0, "version": 1, "at": 11.0, "profiles": 1, "nmi": None, "clusters": []}, 11.0)
    assert view.current_summaries() == []  # taken during the migration: not usable
    view.take({"kind": "installed", "version": 1, "node": 1, "keys": [key], "pauses_s": [0.25], "state_bytes": 9}, 12.0)
    assert view.complete(1) and view.installed[1] == {key: 0.25}
    view.take({"kind": "summary", "node": 1, "version": 1, "at": 13.0, "profiles": 1, "nmi": None, "clusters": []}, 13.0)
    assert [s["node"] for s in view.current_summaries()] == [1]


def test_a_run_is_recorded_once_with_its_qualities_and_plotted(osr_store, tmp_path):
    _, states = _states()
    summaries, _, _ = _summaries(states, 3)
    path = tmp_path / "summaries.json"
    path.write_text(json.dumps(summaries))
    collected = {"run_id": "repart-test-1", "started_at": 1.0e9, "n_nodes": 3, "version": 0,
                 "version_complete": True, "nodes_reported": [0, 1, 2], "summaries_path": str(path)}
    d = runs.decide(collected, force=True)
    assert d["decided"] and "moves" not in d and json.loads((tmp_path / "plan.json").read_text())["moves"]
    result = {**d, "applied": True, "version_to": 1,
              "migration": {"moved_profiles": d["moved_profiles"], "state_bytes": 1234, "migration_seconds": 0.8,
                            "paused_profiles": 3, "pause_p50_s": 0.2, "pause_p99_s": 0.5, "pause_max_s": 0.5}}
    row = runs.record(result)
    runs.record(result)  # a retried task: still one row
    assert row["status"] == "applied" and row["migration_quality"] == d["after"]["migration_quality"]
    no_op = runs.decide({**collected, "run_id": "repart-test-2", "nodes_reported": [0, 1]})
    assert not no_op["decided"] and "have not reported" in no_op["reason"]
    runs.record({**no_op, "started_at": 1.0e9 + 300})
    h = runs.history()
    assert list(h["run_id"]) == ["repart-test-2", "repart-test-1"]
    assert list(h["status"]) == ["no-op", "applied"]
    png = runs.plot_history(tmp_path / "history.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def osr_store(tmp_path, monkeypatch):
    monkeypatch.setenv("OSR_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("OSR_STORE_CATALOG", f"sqlite:{tmp_path}/store/catalog.sqlite")
    monkeypatch.setenv("OSR_STORE_DATA", f"{tmp_path}/store/data")
    yield


def test_a_node_left_with_one_micro_cluster_is_one_cluster():
    """Seen in bench/repartition.py --live: a plan put a single micro-cluster on a node, and the per-node GMM
    (which needs two samples) raised, ending the whole check."""
    import numpy as np

    from pipelines.partitioning.planner import centroid_clustering

    assert centroid_clustering(np.ones((1, 11))).tolist() == [0]
    assert centroid_clustering(np.ones((0, 11))).tolist() == []
