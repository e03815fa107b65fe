"""DuckDB qos schema, the Great Expectations gate, the refresh steps, and the DAG file."""

import json

import numpy as np
import pandas as pd
import pytest

from pipelines.ops.commands import qos as cli
from pipelines.qos import data, generate, quality, refresh, store
from pipelines.qos.data import Locations
from pipelines.store.db import connect, migrate


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("OSR_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("OSR_STORE_CATALOG", f"sqlite:{tmp_path / 'store' / 'catalog.sqlite'}")
    monkeypatch.setenv("OSR_STORE_DATA", str(tmp_path / "store" / "data"))
    return tmp_path


def _dataset(tmp_path):
    rng = np.random.default_rng(11)
    loc = lambda n: Locations(asn=rng.integers(0, 3, n), country=rng.integers(0, 2, n),  # noqa: E731
                              lat=rng.uniform(0, 50, n), lon=rng.uniform(0, 50, n), as_names=["AS1", "AS2", "AS3"],
                              country_names=["A", "B"], ids=[str(i) for i in range(n)])
    d = generate.generate("rt", seed=2, users=loc(25), services=loc(40), missing=0.5)
    path = data.write_matrix(d.values, tmp_path / "obs.txt")
    return d, path, data.write_locations(d.users, tmp_path / "users.txt"), data.write_locations(
        d.services, tmp_path / "services.txt")


def test_ingest_refresh_publish(env):
    d, path, users, services = _dataset(env)
    counts = refresh.ingest(path, "rt", users, services)
    assert counts["observations"] == int((~np.isnan(d.values)).sum())
    assert refresh.ingest(path, "rt", users, services)["observations"] == counts["observations"]  # idempotent
    out = refresh.refresh("rt", "HL-RW", top=5)
    con = connect()
    try:
        n_obs = con.execute("SELECT count(*) FROM qos.observations").fetchall()[0][0]
        n_pred = con.execute("SELECT count(*) FROM qos.predictions WHERE metric = 'rt'").fetchall()[0][0]
        recs = con.execute("SELECT user_id, rank, service_id, predicted FROM qos.recommendations ORDER BY user_id, "
                           "rank").df()
        run = con.execute("SELECT model, holdout_mae, n_observations FROM qos.runs").df()
        located = con.execute("SELECT count(*) FROM qos.recommendations_located WHERE user_country IS NOT NULL"
                              ).fetchall()[0][0]
        loaded = store.load(con, "rt")
    finally:
        con.close()
    assert n_obs == counts["observations"]
    assert n_pred == d.values.size - n_obs == out["predictions"]
    assert len(recs) == 25 * 5 and located == len(recs)
    observed = ~np.isnan(d.values)
    for user, g in recs.groupby("user_id"):
        assert not observed[user, g["service_id"].to_numpy()].any()  # only services not invoked yet
        assert (np.diff(g["predicted"].to_numpy()) >= 0).all()  # response time: lowest first
    assert run["model"][0] == "HL-RW" and run["holdout_mae"][0] > 0 and run["n_observations"][0] == n_obs
    assert np.array_equal(np.isnan(loaded.values), np.isnan(d.values))
    assert loaded.location_aware == {"users": True, "services": True}
    # a second refresh replaces, never duplicates
    refresh.refresh("rt", "SL-RW", top=5)
    con = connect()
    try:
        assert con.execute("SELECT count(*) FROM qos.predictions").fetchall()[0][0] == n_pred
        assert con.execute("SELECT count(DISTINCT run_id) FROM qos.recommendations").fetchall()[0][0] == 1
    finally:
        con.close()


def test_top_k_for_throughput_is_highest_first():
    pred = np.array([[5.0, 1.0, 9.0, 7.0]])
    observed = np.array([[False, False, True, False]])
    idx, val = store.top_k(pred, observed, 2, higher_is_better=True)
    assert idx.tolist() == [[3, 0]] and val.tolist() == [[7.0, 5.0]]
    idx, _ = store.top_k(pred, observed, 2, higher_is_better=False)
    assert idx.tolist() == [[1, 0]]


def test_gate_passes_good_and_fails_bad_observations(env):
    good = pd.DataFrame({"user_id": np.repeat(np.arange(4), 5), "service_id": np.tile(np.arange(5), 4),
                         "metric": "rt", "value": np.linspace(0.1, 3, 20)})
    assert quality.gate_observations(good, 4, 5, "rt").success
    bad = good.copy()
    bad.loc[0, "value"] = -1.0  # negative response time
    bad.loc[1, "user_id"] = 99  # unknown user
    bad.loc[2, ["user_id", "service_id"]] = bad.loc[3, ["user_id", "service_id"]].to_numpy()  # duplicate pair
    res = quality.gate_observations(bad, 4, 5, "rt")
    assert not res.success
    text = " ".join(res.failures)
    assert "{'column': 'value'" in text and "{'column': 'user_id'" in text and "compound_columns_to_be_unique" in text


def test_refresh_stops_when_the_gate_fails(env):
    con = connect()
    try:
        migrate(con)
        store.save_observations(con, pd.DataFrame({"user_id": [0, 1, 2] * 4, "service_id": list(range(12)),
                                                   "metric": "rt", "value": [0.5] * 11 + [500.0]}))
    finally:
        con.close()
    from pipelines.quality.gate import GateFailed

    with pytest.raises(GateFailed):
        refresh.refresh("rt")


def test_cli_ingest_and_refresh(env, capsys):
    _, path, users, services = _dataset(env)
    assert cli.main(["qos", "ingest", "--matrix", str(path), "--users", str(users), "--services", str(services)]) == 0
    assert json.loads(capsys.readouterr().out)["observations"] > 0
    assert cli.main(["qos", "refresh", "--model", "UIPCC", "--top", "3"]) == 0
    assert json.loads(capsys.readouterr().out)["recommendations"] == 25 * 3


def test_dag_file_is_thin_and_loads(tmp_path, monkeypatch):
    pytest.importorskip("airflow")
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path / "airflow"))
    from airflow.dag_processing.dagbag import DagBag

    from pipelines import config

    bag = DagBag(dag_folder=str(config.PROJECT_ROOT / "dags" / "qos_random_walk_refresh.py"))
    assert not bag.import_errors
    dag = bag.dags["qos_random_walk_refresh"]
    assert dag.task_ids == ["snapshot", "gate", "choose_model", "fit_predict", "publish"]
    assert all(t.retries >= 1 for t in dag.tasks)
    assert {"candidates", "k", "lam", "alpha", "holdout"} <= set(dag.params.keys())
    assert dag.params["candidates"] == ",".join(refresh.DEFAULT_CANDIDATES)
    assert "qos" in dag.tags and dag.doc_md
