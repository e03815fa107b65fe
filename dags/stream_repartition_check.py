"""
### stream_repartition_check

Keeps the live profile stream's placement good (the aggregate-profile clustering paper, secs. 4-5):
similar profiles on the same node, processing and memory balanced, few profiles moved.

Every five minutes, each step one `pipelines.partitioning.runs` function:

1. **collect** - the newest micro-cluster summary of every node (partition of `profiles.updates`),
   taken after the installed routing version, from `control.routing` (workers report every
   `OSR_PROFILE_SUMMARY_S` seconds; summaries travel as a file under OSR_HOME/repartition/<run_id>/);
2. **decide** - the adaptive trigger: repartition when a node's NMI against its micro-clustering at
   the last install fell under `threshold` (or always with `force`); the greedy plan over the
   summaries, with its qualities before and after;
3. **migrate** - when decided and `apply` is on: announce the next routing version, write its
   barriers and wait until every moved profile is installed (only moving profiles pause); a
   retry finishes the same version instead of announcing another;
4. **record** - one row in `ops.repartition_runs` (qualities, moved profiles and state, timings,
   pause p50/p99 of the moving profiles).

`osr repartition status|plan|apply|history` runs the same steps by hand.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import Param, dag, task

from dags.common.defaults import DAG_DEFAULTS

from pipelines.partitioning import runs


@dag(
    dag_id="stream_repartition_check",
    schedule=timedelta(minutes=5),
    tags=["osr", "stream", "partitioning"],
    doc_md=__doc__,
    **{**DAG_DEFAULTS, "dagrun_timeout": timedelta(minutes=15)},  # a run must end before the next few
    params={
        "apply": Param(True, type="boolean", description="migrate when the trigger fires (off: decide and record only)"),
        "force": Param(False, type="boolean", description="repartition whatever the nodes' NMIs say"),
        "threshold": Param(0.9, type="number", minimum=0, maximum=1,
                           description="repartition when a node's NMI falls below this (the paper's 0.9)"),
        "wait_s": Param(60, type="integer", minimum=0, description="seconds to wait for every node's summary"),
        "timeout_s": Param(300, type="integer", minimum=10, description="seconds a migration may take"),
    },
)
def stream_repartition_check():
    @task
    def collect(**context) -> dict:
        return runs.collect(f"{runs.new_run_id()}", wait_s=context["params"]["wait_s"])

    @task
    def decide(collected: dict, **context) -> dict:
        p = context["params"]
        return {**runs.decide(collected, force=p["force"], threshold=p["threshold"]),
                "action": runs.action_of(p["apply"], p["force"])}

    @task
    def migrate(decision: dict, **context) -> dict:
        p = context["params"]
        return runs.apply(decision, run=p["apply"], timeout=p["timeout_s"])

    @task
    def record(result: dict) -> dict:
        return runs.record(result)

    record(migrate(decide(collect())))


stream_repartition_check()
