"""The tail both recommendation DAGs share: snapshot -> output gate -> publish -> announce.

Not a DAG itself; `osr_nightly_retrain` and `osr_propensity_retrain` call `publish_chain`
on the model id their training tasks produced.
"""

from __future__ import annotations

from airflow.sdk import task

from pipelines.reco import nightly


@task
def build_snapshot(model_id: str) -> str:
    nightly.build_snapshot(model_id)
    return model_id


@task
def gate_outputs(model_id: str) -> str:
    nightly.gate_outputs(model_id)
    return model_id


@task
def publish(model_id: str) -> dict:
    return nightly.publish(model_id)


@task
def announce(published: dict) -> str:
    return nightly.announce(published)


def publish_chain(model_id):
    """Wire the shared tail after the task that returned `model_id`."""
    return announce(publish(gate_outputs(build_snapshot(model_id))))
