"""
### qos_random_walk_refresh

Refreshes the QoS predictions behind service recommendation. Each run **chooses its model**:
the candidates (by default the paper's HL-RW, the tuned HL-RW, UIPCC and LACF) are fitted on
the stored observations less a held-out share and scored on it; the lowest MAE wins, is refitted
on everything, and the predicted response time / throughput of each (user, service) pair not
invoked yet lands in `qos.predictions`, with each user's best `top` services in
`qos.recommendations` and every candidate's score in `qos.model_choice`.

Steps (each one `pipelines.qos.refresh` function; matrices travel as files under
OSR_HOME/qos/<run_id>/, only `publish` writes to the store):

1. **snapshot** - copy `qos.observations` (one metric) and the node tables out of the store;
2. **gate** - Great Expectations on the observations (ids in range, metric and value
   ranges, one row per pair); the run stops here when they fail;
3. **choose_model** - validate each candidate on the same held-out observations;
4. **fit_predict** - refit the chosen model on all observations and predict every pair;
5. **publish** - replace the metric's predictions and recommendations; record the run in
   `qos.runs` and the comparison in `qos.model_choice`.

Load observations first with `osr qos ingest --matrix ...`.
"""

from __future__ import annotations

from airflow.sdk import Param, dag, task

from dags.common.defaults import DAG_DEFAULTS, SCHEDULES

# pipelines.qos.refresh is imported inside each task, so parsing this file stays fast.
#: The candidates validated by default, equal to pipelines.qos.refresh.DEFAULT_CANDIDATES (checked in tests/dags).
CANDIDATES = ("HL-RW-paper", "HL-RW-tuned", "UIPCC", "LACF")


@dag(
    dag_id="qos_random_walk_refresh",
    schedule=SCHEDULES["qos_random_walk_refresh"],
    tags=["osr", "qos", "batch"],
    doc_md=__doc__,
    **DAG_DEFAULTS,
    params={
        "metric": Param("rt", enum=["rt", "tp"], description="response time or throughput"),
        "candidates": Param(",".join(CANDIDATES), type="string",
                            description="comma-separated models to validate (HL-RW-paper, HL-RW-tuned, UIPCC, LACF, "
                                        "UPCC, IPCC, MF, UL-RW-paper, ...); the best on held-out cells is published"),
        "k": Param(None, type=["null", "integer"], minimum=1, maximum=127,
                   description="neighbours per predicted cell (K); empty: each model's own (paper 5, tuned 10)"),
        "lam": Param(None, type=["null", "number"], minimum=0, maximum=1,
                     description="HL-RW weight of the user side; empty: each model's own"),
        "alpha": Param(None, type=["null", "number"], exclusiveMinimum=0, exclusiveMaximum=1,
                       description="walk continuation probability; empty: 0.85"),
        "holdout": Param(0.1, type="number", exclusiveMinimum=0, maximum=0.5,
                         description="share of observations held out to compare the candidates"),
        "top": Param(10, type="integer", minimum=1, description="recommendations per user"),
    },
)
def qos_random_walk_refresh():
    @task
    def snapshot(**context) -> dict:
        from pipelines.qos import refresh

        return refresh.snapshot_observations(context["params"]["metric"])

    @task
    def gate(snap: dict) -> dict:
        from pipelines.qos import refresh

        return refresh.gate(snap)

    @task
    def choose_model(snap: dict, **context) -> dict:
        from pipelines.qos import refresh

        p = context["params"]
        return refresh.choose_model(snap, p["candidates"].split(","), holdout=p["holdout"], k=p["k"],
                                    lam=p["lam"], alpha=p["alpha"])

    @task
    def fit_predict(snap: dict, **context) -> dict:
        from pipelines.qos import refresh

        p = context["params"]
        return refresh.fit_predict(snap, k=p["k"], lam=p["lam"], alpha=p["alpha"], holdout=p["holdout"])

    @task
    def publish(fit: dict, **context) -> dict:
        from pipelines.qos import refresh

        return refresh.publish(fit, top=context["params"]["top"])

    publish(fit_predict(choose_model(gate(snapshot()))))


qos_random_walk_refresh()
