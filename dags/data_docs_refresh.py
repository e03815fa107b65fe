"""
### data_docs_refresh

Rebuilds the **Great Expectations Data Docs of every suite** in one site, validated on what the
store and the live model snapshot hold now: the nightly's input gates (`interactions_input`,
`propensity_training_input`), its output gates (`topn_output`, `topn_per_person`,
`osr_scores_output`, on the live snapshot) and the QoS observation gates (`qos_observations_rt`,
`qos_observations_tp`). A suite without data yet (no live model, no QoS observations) is listed as
skipped with the reason.

Task:

1. **rebuild_data_docs** - `pipelines.analytics.data_docs.refresh()`: validates each suite in one
   GX context and swaps the new site into `OSR_REPORTS_DIR/data_docs_all/` (open `index.html`).
   A failed suite does not fail the task: the docs exist to show it (the task's return value
   names the failed suites).

Why a DAG of its own: each gate run writes a site listing only its own suite, so after a night
the gates' folder shows one suite; this one shows them all, once the nightly retrain (02:00) and
the QoS refresh (03:30) are done. `osr report` builds the same site into its report folder.
"""

from __future__ import annotations

from airflow.sdk import dag, task

from dags.common.defaults import DAG_DEFAULTS, SCHEDULES


@dag(
    dag_id="data_docs_refresh",
    schedule=SCHEDULES["data_docs_refresh"],  # after osr_nightly_retrain (02:00) and qos_random_walk_refresh (03:30)
    tags=["osr", "quality", "reports"],
    doc_md=__doc__,
    **DAG_DEFAULTS,
)
def data_docs_refresh():
    @task
    def rebuild_data_docs() -> dict:
        from pipelines.analytics import data_docs  # in the task: Great Expectations is slow to import

        return data_docs.refresh()

    rebuild_data_docs()


data_docs_refresh()
