"""
### qos_random_walk_refresh

Refreshes the QoS predictions behind service recommendation: the location-aware
random-walk model (HL-RW by default; UL-RW, SL-RW or a baseline by parameter) is fitted
on every stored observation, and the predicted response time / throughput of each
(user, service) pair not invoked yet lands in `qos.predictions`, with each user's best
`top` services in `qos.recommendations`.

Steps (each one `pipelines.qos.refresh` function; matrices travel as files under
OSR_HOME/qos/<run_id>/, only `publish` writes to the store):

1. **snapshot** - copy `qos.observations` (one metric) and the node tables out of the store;
2. **gate** - Great Expectations on the observations (ids in range, metric and value
   ranges, one row per pair); the run stops here when they fail;
3. **fit_predict** - score a fit without `holdout` of the observations, then fit on all and
   predict every pair;
4. **publish** - replace the metric's predictions and recommendations; record the run in
   `qos.runs`.

Load observations first with `osr qos ingest --matrix ...`.
"""

from __future__ import annotations

from airflow.sdk import Param, dag, task

from dags.common.defaults import DAG_DEFAULTS

from pipelines.qos import refresh


@dag(
    dag_id="qos_random_walk_refresh",
    schedule="@daily",
    tags=["osr", "qos", "batch"],
    doc_md=__doc__,
    **DAG_DEFAULTS,
    params={
        "metric": Param("rt", enum=["rt", "tp"], description="response time or throughput"),
        "model": Param("HL-RW", type="string", description="HL-RW, UL-RW, SL-RW, a baseline, or <RW model>-noloc"),
        "k": Param(10, type="integer", minimum=1, maximum=127, description="neighbours per predicted cell (K)"),
        "lam": Param(0.2, type="number", minimum=0, maximum=1, description="HL-RW weight of the user side (lambda)"),
        "alpha": Param(0.85, type="number", exclusiveMinimum=0, exclusiveMaximum=1,
                       description="walk continuation probability (alpha)"),
        "holdout": Param(0.1, type="number", minimum=0, maximum=0.5,
                         description="share of observations held out to score the run (1 - training density)"),
        "top": Param(10, type="integer", minimum=1, description="recommendations per user"),
    },
)
def qos_random_walk_refresh():
    @task
    def snapshot(**context) -> dict:
        return refresh.snapshot_observations(context["params"]["metric"])

    @task
    def gate(snap: dict) -> dict:
        return refresh.gate(snap)

    @task
    def fit_predict(snap: dict, **context) -> dict:
        p = context["params"]
        return refresh.fit_predict(snap, model=p["model"], k=p["k"], lam=p["lam"], alpha=p["alpha"],
                                   holdout=p["holdout"])

    @task
    def publish(fit: dict, **context) -> dict:
        return refresh.publish(fit, top=context["params"]["top"])

    publish(fit_predict(gate(snapshot())))


qos_random_walk_refresh()
