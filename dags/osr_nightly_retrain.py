"""
### osr_nightly_retrain

Retrains, every night, the two models the OSR score multiplies and publishes them
as one snapshot the stream serves:

1. **gate_inputs** - Great Expectations on the purchase history (known people and
   items, positive weights) and on the point-in-time propensity training set; the
   run stops here when they fail, and yesterday's model stays live;
2. **train_preferences** - implicit-feedback ALS (rank, lambda, iterations from the
   params) -> top-N items per person;
3. **train_propensity** - LightGBM E(item | state) on the as-of join of state
   features with outcomes; hold-out AUC and log-loss;
4. **build_snapshot** - Parquet + model files, and the raw-score range the OSR score
   is scaled by;
5. **gate_outputs** - every listed person has N distinct known items, scores finite
   and in range;
6. **publish** - registry row; promoted (top-N table, LIVE pointer) only if hold-out
   precision@10 and AUC did not drop against the live model, else registered `rejected`;
7. **announce** - a message on `control.models` so workers reload at once (they also
   notice the LIVE pointer within seconds if no broker is reachable).

Each task calls one `pipelines.reco.nightly` function; tasks pass only the model id.
"""

# pipelines modules are imported inside the tasks: they pull in Great Expectations, LightGBM and pandas
# (25 s on a loaded 2-core machine), which the DAG processor would otherwise pay on every parse and
# which once exceeded its 30 s import timeout, so the DAG vanished from the UI.

from __future__ import annotations

from airflow.sdk import Param, dag, task

from dags.common.defaults import DAG_DEFAULTS, SCHEDULES

from dags.common.reco_publish import publish_chain

#: The form's defaults, equal to pipelines.reco.nightly.DEFAULTS and PREFERENCE_ALGORITHMS (checked in tests/dags).
D = {"rank": 32, "reg": 0.05, "iterations": 15, "alpha": 20.0, "top_n": 10}
ALGORITHMS = ["implicit_als", "dask_als"]


@dag(
    dag_id="osr_nightly_retrain",
    schedule=SCHEDULES["osr_nightly_retrain"],
    tags=["osr", "reco", "batch"],
    doc_md=__doc__,
    **DAG_DEFAULTS,
    params={
        "rank": Param(D["rank"], type="integer", minimum=1, maximum=512, description="ALS latent factors"),
        "reg": Param(D["reg"], type="number", minimum=0, description="ALS regularization (lambda)"),
        "iterations": Param(D["iterations"], type="integer", minimum=1, maximum=200, description="ALS sweeps"),
        "alpha": Param(D["alpha"], type="number", exclusiveMinimum=0, description="implicit confidence scale"),
        "top_n": Param(D["top_n"], type="integer", minimum=1, maximum=200, description="candidates per person"),
        "algorithm": Param("implicit_als", enum=ALGORITHMS,
                           description="implicit_als (single machine) or dask_als (OSR_DASK_SCHEDULER / LocalCluster)"),
    },
)
def osr_nightly_retrain():
    @task
    def gate_inputs() -> str:
        from pipelines.reco import nightly

        nightly.gate_inputs()
        return nightly.new_model_id()

    @task
    def train_preferences(model_id: str, **context) -> str:
        from pipelines.reco import nightly

        p = context["params"]
        nightly.train_preferences(model_id, rank=p["rank"], reg=p["reg"], iterations=p["iterations"],
                                  alpha=p["alpha"], top_n=p["top_n"], algorithm=p["algorithm"])
        return model_id

    @task
    def train_propensity(model_id: str) -> str:
        from pipelines.reco import nightly

        nightly.train_propensity(model_id)
        return model_id

    publish_chain(train_propensity(train_preferences(gate_inputs())))


osr_nightly_retrain()
