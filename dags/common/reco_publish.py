"""The tail both recommendation DAGs share: snapshot -> output gate -> publish -> announce.

Not a DAG itself; `osr_nightly_retrain` and `osr_propensity_retrain` call `publish_chain`
on the model id their training tasks produced.
"""

from __future__ import annotations

from airflow.sdk import task

# Each task imports pipelines.reco.nightly when it runs: DAG parsing stays fast (see osr_nightly_retrain).


@task
def build_snapshot(model_id: str) -> str:
    from pipelines.reco import nightly

    nightly.build_snapshot(model_id)
    return model_id


@task
def gate_outputs(model_id: str) -> str:
    from pipelines.reco import nightly

    nightly.gate_outputs(model_id)
    return model_id


@task
def publish(model_id: str) -> dict:
    from pipelines.reco import nightly

    return nightly.publish(model_id)


@task
def announce(published: dict) -> str:
    from pipelines.reco import nightly

    return nightly.announce(published)


def publish_chain(model_id):
    """Wire the shared tail after the task that returned `model_id`."""
    return announce(publish(gate_outputs(build_snapshot(model_id))))
