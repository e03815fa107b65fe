"""Every DAG file imports, and every DAG has tags, retries and documentation."""

from pathlib import Path

import pytest

DAGS = Path(__file__).resolve().parents[2] / "dags"


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS))


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}


def test_expected_dags_present(dagbag):
    assert {"osr_nightly_retrain", "osr_propensity_retrain", "qos_random_walk_refresh"} <= set(dagbag.dag_ids)


def test_every_dag_has_tags_retries_and_docs(dagbag):
    for dag_id, dag in dagbag.dags.items():
        assert dag.tags, f"{dag_id} has no tags"
        assert dag.doc_md, f"{dag_id} has no doc_md"
        for t in dag.tasks:
            assert t.retries >= 1, f"{dag_id}.{t.task_id} has retries={t.retries}"


def test_dag_files_stay_thin():
    """DAG files call pipelines; they hold no SQL and no model code."""
    for f in DAGS.glob("*.py"):
        text = f.read_text()
        assert "import duckdb" not in text and "SELECT " not in text, f.name
