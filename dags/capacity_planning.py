"""
### capacity_planning

Rebuilds the stream's **predictive capacity model** every hour (at :15, clear of the other DAGs' :00 starts): for each hour of day, a high
percentile (default the 95th) of the arrival rates the capacity monitor sampled into
`ops.capacity_samples` over the past days (the per-hour histograms of predictive provisioning).
The capacity loop provisions workers ahead of that rate; its reactive rule corrects for what
the model did not foresee (flash crowds). The model lands in `ops.capacity_model`, one row per
hour, newest `model_id` wins; `osr capacity plan` shows it with the workers M/M/c sizes for it.

One task, **rebuild_model**: one `pipelines.capacity.store.rebuild_model_in_store` call; a store without samples yet is
reported in the task's result, not failed.
"""

from __future__ import annotations

from airflow.sdk import Param, dag, task

from dags.common.defaults import DAG_DEFAULTS, SCHEDULES


@dag(
    dag_id="capacity_planning",
    schedule=SCHEDULES["capacity_planning"],  # hourly, at :15 so it never starts with the :00 DAGs
    tags=["osr", "capacity", "stream"],
    doc_md=__doc__,
    **DAG_DEFAULTS,
    params={
        "days": Param(14, type="integer", minimum=1, description="days of samples the histograms cover"),
        "percentile": Param(95.0, type="number", exclusiveMinimum=0, maximum=100,
                            description="percentile of each hour's arrival rates to provision for"),
        "group": Param(None, type=["null", "string"], description="consumer group (empty: every group sampled)"),
    },
)
def capacity_planning():
    @task
    def rebuild_model(**context) -> dict:
        from pipelines.capacity import store as capacity_store  # in the task: keeps the DAG file's parse fast

        p = context["params"]
        return capacity_store.rebuild_model_in_store(p["group"], days=p["days"], percentile=p["percentile"])

    rebuild_model()


capacity_planning()
