"""One repartitioning check of the live profile stream, as the DAG's tasks and the CLI run it:
collect the nodes' summaries -> decide (and plan) -> apply the migration -> record the run.

Why files between the steps: the summaries carry every profile id, too big for XCom; each step
reads the previous one's JSON under OSR_HOME/repartition/<run_id>/ and returns its small digest.
Only `record` writes to the store (ops.repartition_runs), once per run, keyed by run id.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from pipelines import config
from pipelines.partitioning import coordinator, planner, trigger
from pipelines.partitioning.repartition import RepartitionParams
from pipelines.store.db import connect, migrate, transaction, upsert_ignore

COLUMNS = ("run_id", "started_at", "finished_at", "action", "status", "reason", "n_nodes", "version_from",
           "version_to", "summaries", "profiles", "microclusters", "min_nmi", "moved_profiles", "moved_state",
           "total_state", "budget", "state_bytes", "cluster_quality_before", "balance_quality_before",
           "overall_quality_before", "cluster_quality", "balance_quality", "migration_quality", "overall_quality",
           "microcluster_seconds", "partition_seconds", "migration_seconds", "paused_profiles", "pause_p50_s",
           "pause_p99_s", "pause_max_s")


def _folder(run_id: str) -> Path:
    d = config.path("OSR_HOME", create=True) / "repartition" / run_id
    d.mkdir(parents=True, exist_ok=True)
    return d


def new_run_id() -> str:
    return f"repart-{datetime.now(timezone.utc).strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:4]}"


def collect(run_id: str | None = None, wait_s: float = 60.0) -> dict:
    """Step 1: the newest summary of every node on the installed routing version (waits up to
    wait_s for nodes that have not reported since the last install)."""
    run_id = run_id or new_run_id()
    started = time.time()
    reader = coordinator.ControlReader()
    try:
        view = reader.catch_up()
        n = view.versions.n_nodes
        deadline = time.monotonic() + wait_s
        while len(view.current_summaries()) < n and time.monotonic() < deadline:
            reader.poll(1.0)
        summaries = view.current_summaries()
        v, complete = view.versions.latest, view.complete(view.versions.latest)
    finally:
        reader.close()
    path = _folder(run_id) / "summaries.json"
    path.write_text(json.dumps(summaries))
    return {"run_id": run_id, "started_at": started, "n_nodes": n, "version": v, "version_complete": complete,
            "nodes_reported": sorted(s["node"] for s in summaries), "summaries_path": str(path)}


def decide(collected: dict, force: bool = False, threshold: float = trigger.THRESHOLD,
           params: RepartitionParams = RepartitionParams()) -> dict:
    """Step 2: the trigger over the nodes' NMIs and, when it fires (or forced), the plan."""
    summaries = json.loads(Path(collected["summaries_path"]).read_text())
    missing = sorted(set(range(collected["n_nodes"])) - set(collected["nodes_reported"]))
    if missing and summaries and not force:
        p = {"decided": False, "reason": f"nodes {missing} have not reported on version {collected['version']}",
             "moves": {}, "summaries": len(summaries), "version": collected["version"], "min_nmi": None}
    elif not summaries:
        p = {"decided": False, "reason": "no node summary on the installed routing version yet", "moves": {},
             "summaries": 0, "version": collected["version"], "min_nmi": None}
    else:
        p = planner.plan(summaries, collected["n_nodes"], params, threshold, force)
    path = Path(collected["summaries_path"]).with_name("plan.json")
    path.write_text(json.dumps(p))
    return {**collected, **{k: v for k, v in p.items() if k != "moves"}, "plan_path": str(path),
            "action": "force" if force else "plan"}


def action_of(run: bool, force: bool) -> str:
    return "force" if force and run else "apply" if run else "plan"


def apply(decision: dict, run: bool = True, timeout: float = 180.0) -> dict:
    """Step 3: when decided and `run`, migrate to the planned version (coordinator.apply)."""
    if not (decision["decided"] and run):
        return {**decision, "applied": False}
    if decision.get("moved_profiles", 0) == 0:
        return {**decision, "applied": False, "reason": decision["reason"] + "; the plan moves nothing"}
    moves = json.loads(Path(decision["plan_path"]).read_text())["moves"]
    mig = coordinator.apply(moves, timeout=timeout, version=decision["version"] + 1)
    return {**decision, "applied": True, "version_to": mig["version"], "migration": mig}


def row_of(result: dict, error: str | None = None) -> dict:
    before, after = result.get("before") or {}, result.get("after") or {}
    mig = result.get("migration") or {}
    applied = result.get("applied", False)
    q = after if applied else before
    status = "failed" if error else "applied" if applied else "planned" if result.get("decided") else "no-op"
    row = {
        "run_id": result["run_id"], "started_at": datetime.fromtimestamp(result["started_at"], timezone.utc),
        "finished_at": datetime.now(timezone.utc), "action": result.get("action", "plan"), "status": status,
        "reason": error or result.get("reason", ""), "n_nodes": result.get("n_nodes"),
        "version_from": result.get("version"), "version_to": result.get("version_to"),
        "summaries": result.get("summaries"), "profiles": result.get("profiles"),
        "microclusters": result.get("microclusters"), "min_nmi": result.get("min_nmi"),
        "moved_profiles": mig.get("moved_profiles", 0 if not applied else None),
        "moved_state": result.get("moved_state") if applied else 0.0, "total_state": result.get("total_state"),
        "budget": result.get("budget"), "state_bytes": mig.get("state_bytes"),
        "cluster_quality_before": before.get("cluster_quality"), "balance_quality_before": before.get("balance_quality"),
        "overall_quality_before": before.get("overall_quality"), "cluster_quality": q.get("cluster_quality"),
        "balance_quality": q.get("balance_quality"), "migration_quality": q.get("migration_quality"),
        "overall_quality": q.get("overall_quality"), "microcluster_seconds": result.get("microcluster_seconds"),
        "partition_seconds": result.get("partition_seconds"), "migration_seconds": mig.get("migration_seconds"),
        "paused_profiles": mig.get("paused_profiles"), "pause_p50_s": mig.get("pause_p50_s"),
        "pause_p99_s": mig.get("pause_p99_s"), "pause_max_s": mig.get("pause_max_s"),
    }
    return row


def record(result: dict, error: str | None = None, db_path: str | None = None) -> dict:
    """Step 4: the run's row in ops.repartition_runs (idempotent: a retried task inserts it once)."""
    row = row_of(result, error)
    df = pd.DataFrame([row], columns=list(COLUMNS))
    con = connect(db_path)
    try:
        migrate(con)
        transaction(con, lambda c: upsert_ignore(c, "ops.repartition_runs", df))
    finally:
        con.close()
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in row.items()}


def check(run: bool = True, force: bool = False, threshold: float = trigger.THRESHOLD, wait_s: float = 60.0,
          timeout: float = 180.0, params: RepartitionParams = RepartitionParams(), db_path: str | None = None) -> dict:
    """Every step in one process (what the DAG runs, for the CLI and tests); a failure is recorded too."""
    c = collect(wait_s=wait_s)
    result = {**c, "action": action_of(run, force)}
    try:
        result = {**decide(c, force, threshold, params), "action": result["action"]}
        result = apply(result, run, timeout)
    except Exception as exc:
        record(result, error=f"{exc.__class__.__name__}: {exc}", db_path=db_path)
        raise
    row = record(result, db_path=db_path)
    return {**row, "pauses_s": (result.get("migration") or {}).get("pauses_s", [])}


def history(limit: int = 50, db_path: str | None = None) -> pd.DataFrame:
    con = connect(db_path, read_only=True)
    try:
        if "ops.repartition_runs" not in {r[0] for r in con.execute(
                "SELECT table_schema || '.' || table_name FROM information_schema.tables").fetchall()}:
            return pd.DataFrame(columns=list(COLUMNS))
        return con.execute("SELECT * FROM ops.repartition_runs ORDER BY started_at DESC LIMIT ?", [limit]).df()
    finally:
        con.close()


def status() -> dict:
    """The routing version, whether its migration is complete, and each node's newest report."""
    reader = coordinator.ControlReader()
    try:
        view = reader.catch_up()
    finally:
        reader.close()
    v = view.versions.latest
    return {"version": v, "n_nodes": view.versions.n_nodes, "complete": view.complete(v),
            "moved_in_version": len(view.versions.moves(v)), "not_installed": len(view.missing(v)) if v else 0,
            "nodes": [{"node": s["node"], "version": s["version"], "profiles": s["profiles"], "nmi": s["nmi"],
                       "microclusters": len(s["clusters"]),
                       "at": datetime.fromtimestamp(s["at"], timezone.utc).isoformat(timespec="seconds")}
                      for s in sorted(view.summaries.values(), key=lambda s: s["node"])]}


def plot_history(path: str | Path, rows: pd.DataFrame | None = None, db_path: str | None = None) -> Path:
    """Qualities of each recorded run over time (minutes since the first run) -> PNG."""
    from pipelines.qos.plot import line_chart

    df = history(10_000, db_path) if rows is None else rows
    df = df[df["status"] != "failed"].sort_values("started_at")
    if df.empty:
        raise ValueError("no repartition run recorded yet: run `osr repartition apply` or the DAG first")
    t = pd.to_datetime(df["started_at"])
    minutes = ((t - t.iloc[0]).dt.total_seconds() / 60.0).to_numpy()
    series = []
    for col, label in (("overall_quality", "overall Q"), ("cluster_quality", "cluster Qc"),
                       ("balance_quality", "balance Qb"), ("migration_quality", "migration Qm"),
                       ("min_nmi", "min node NMI")):
        y = pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=float)
        ok = ~np.isnan(y)
        if ok.any():
            series.append((label, minutes[ok], y[ok], col == "min_nmi"))
    applied = df["status"].to_numpy() == "applied"
    return line_chart(path, series, title=f"repartition runs: qualities after each run ({int(applied.sum())} applied "
                                          f"of {len(df)})", xlabel="minutes since the first run", ylabel="quality")
