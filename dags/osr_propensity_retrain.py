"""
### osr_propensity_retrain

Refreshes E(item | state), the propensity half of the OSR score, between nightly
runs (new outcomes arrive all day), keeping the live preference model:

1. **gate_inputs** - Great Expectations on the point-in-time training set (and the
   interaction history the live model came from);
2. **reuse_live_preferences** - the live snapshot's top-N and hold-out metrics;
3. **train_propensity** - LightGBM on the as-of join of state features and outcomes;
4. **compare_models** - the same split scored by a distributed mini-batch SGD logistic
   model (on Dask) and a kNN context classifier: AUC and log-loss of each, kept with
   the candidate;
5. **build_snapshot**, **gate_outputs**, **publish** (promoted only if AUC held),
   **announce**, as in `osr_nightly_retrain`.
"""

from __future__ import annotations

from airflow.sdk import dag, task

from dags.common.defaults import DAG_DEFAULTS, SCHEDULES

from dags.common.reco_publish import publish_chain


@dag(
    dag_id="osr_propensity_retrain",
    schedule=SCHEDULES["osr_propensity_retrain"],
    tags=["osr", "propensity", "batch"],
    doc_md=__doc__,
    **DAG_DEFAULTS,
)
def osr_propensity_retrain():
    @task
    def gate_inputs() -> str:
        from pipelines.reco import nightly  # at run time, not parse time (see osr_nightly_retrain)

        nightly.gate_inputs()
        return nightly.new_model_id()

    @task
    def reuse_live_preferences(model_id: str) -> str:
        from pipelines.reco import nightly  # at run time, not parse time (see osr_nightly_retrain)

        nightly.reuse_live_preferences(model_id)
        return model_id

    @task
    def train_propensity(model_id: str) -> str:
        from pipelines.reco import nightly  # at run time, not parse time (see osr_nightly_retrain)

        nightly.train_propensity(model_id)
        return model_id

    @task
    def compare_models(model_id: str) -> str:
        from pipelines.reco import nightly  # at run time, not parse time (see osr_nightly_retrain)

        nightly.compare_propensity(model_id)
        return model_id

    publish_chain(compare_models(train_propensity(reuse_live_preferences(gate_inputs()))))


osr_propensity_retrain()
