"""`dag.test()` of osr_nightly_retrain on a small population: it publishes a live model,
and a corrupt interactions batch fails the input gate and leaves that model live."""

from pathlib import Path

import pytest

from pipelines.synthetic import population as P
from pipelines.online import snapshot as snap
from pipelines.store.population_loader import load_population
from pipelines.store.db import connect, migrate

SMALL = P.PopulationParams(n_users=40, n_items=48, history_contexts_per_user=10, stream_contexts_per_user=1,
                           interactions_per_user=12, seed=3)


@pytest.fixture(scope="module")
def osr_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("osr-home")
    mp = pytest.MonkeyPatch()
    mp.setenv("OSR_HOME", str(home))
    mp.setenv("OSR_KAFKA_BOOTSTRAP", "127.0.0.1:1")  # no broker: announce must say so, not fail
    con = connect()
    migrate(con)
    load_population(con, P.generate(SMALL))
    con.close()
    yield home
    mp.undo()


@pytest.fixture(scope="module")
def nightly_dag():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(Path(__file__).resolve().parents[2] / "dags" / "osr_nightly_retrain.py"))
    assert bag.import_errors == {}
    return bag.get_dag("osr_nightly_retrain")


def _live_in_registry():
    con = connect(read_only=True)
    try:
        return con.execute("SELECT model_id FROM reco.model_registry WHERE status = 'live'").fetchall()
    finally:
        con.close()


def test_dag_publishes_a_live_model(airflow_db, osr_home, nightly_dag):
    run = nightly_dag.test(run_conf={"rank": 8, "iterations": 5})
    assert str(run.state) == "success"
    live = snap.live_model_id()
    assert live is not None and live.startswith("reco-")
    assert _live_in_registry() == [(live,)]
    pub = [ti for ti in run.get_task_instances() if ti.task_id == "publish"][0]
    assert str(pub.state) == "success"
    s = snap.load_snapshot()
    assert 0.0 <= s.meta["preferences_model"]["holdout"]["precision_at_10"] <= 1.0
    assert len(s.topn) == SMALL.n_users  # every person has a top-N list
    # quality is measured in bench/; on 40 people the hold-out AUC is only a sanity check
    assert 0.0 <= s.meta["propensity_metrics"]["auc"] <= 1.0


def test_corrupt_batch_fails_gate_and_keeps_previous_model(airflow_db, osr_home, nightly_dag):
    before = snap.live_model_id()
    assert before is not None, "needs the model of the previous test"
    con = connect()
    con.execute("INSERT INTO events.interactions VALUES "
                "('bad-1', 'u-nobody', 'i00001', 1.0, now()), ('bad-2', 'u00001', 'i00001', -3.0, now())")
    con.close()
    for t in nightly_dag.tasks:  # the real DAG retries after 5 minutes; here a failure must end the run
        t.retries = 0
    try:
        run = nightly_dag.test()
        assert str(run.state) == "failed"
        states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
        assert states["gate_inputs"] == "failed"
        assert states["publish"] != "success"
        assert snap.live_model_id() == before
        assert _live_in_registry() == [(before,)]
    finally:
        con = connect()
        con.execute("DELETE FROM events.interactions WHERE interaction_id LIKE 'bad-%'")
        con.close()


def test_worse_candidate_is_registered_rejected_and_live_stays(airflow_db, osr_home, nightly_dag):
    """The promotion's `rejected` branch, run for real: the live model's recorded hold-out precision is
    raised out of reach, so the next candidate scores worse than it; the DAG succeeds, the candidate
    is registered `rejected` with the reason, and the LIVE pointer and registry keep the live model."""
    import json

    from pipelines.store.db import transaction

    before = snap.live_model_id()
    assert before is not None, "needs the model of the first test"
    con = connect()
    try:
        (metrics,), = con.execute("SELECT metrics FROM reco.model_registry WHERE model_id = ?", [before]).fetchall()
        boosted = {**json.loads(metrics), "precision_at_10": 0.99}
        transaction(con, lambda c: c.execute("UPDATE reco.model_registry SET metrics = ? WHERE model_id = ?",
                                             [json.dumps(boosted), before]))
    finally:
        con.close()
    run = nightly_dag.test(run_conf={"rank": 8, "iterations": 5})
    assert str(run.state) == "success"
    con = connect(read_only=True)
    try:
        rows = con.execute("SELECT model_id, status, note FROM reco.model_registry WHERE model_id != ? "
                           "ORDER BY trained_at DESC LIMIT 1", [before]).fetchall()
    finally:
        con.close()
    (candidate, status, note), = rows
    assert status == "rejected" and "precision_at_10" in note and "quality dropped" in note
    assert snap.live_model_id() == before
    assert _live_in_registry() == [(before,)]
