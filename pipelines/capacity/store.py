"""Knowledge: samples, decisions and the hourly model in the store's `ops` schema (migration 090),
and the admission plan the stream's workers follow (migration 091).

Writes are idempotent by key (upsert_ignore), so a replayed batch of samples or decisions is
harmless; the hourly model is read back by the planner and rebuilt by the capacity_planning DAG."""

from __future__ import annotations

import json
import uuid
from datetime import datetime

import pandas as pd

from pipelines.capacity.decision import Decision
from pipelines.capacity.monitor import Sample
from pipelines.capacity.predict import HourlyModel
from pipelines.store.db import transaction, upsert_ignore


def _ts(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch)


def sample_rows(run_id: str, samples: list[tuple[Sample, float | None, int]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(Sample, hour of day on the load's clock, workers run) -> the two sample tables' rows."""
    rows, wrows = [], []
    for s, hour, workers in samples:
        sid = f"{run_id}:{s.t:.3f}"
        rows.append({"sample_id": sid, "run_id": run_id, "ts": _ts(s.t), "hour": hour, "group_id": s.group,
                     "topic": s.topic, "partitions": s.partitions, "arrival_rate": s.arrival_rate,
                     "processing_rate": s.processing_rate, "lag": int(s.lag), "workers": workers,
                     "members": s.members, "group_state": s.group_state, "busy_fraction": s.busy_fraction,
                     "true_rate": s.true_rate, "latency_p50_s": s.latency_p50_s, "latency_p99_s": s.latency_p99_s,
                     "head_age_s": s.head_age_s})
        for w in s.workers.values():
            wrows.append({"sample_id": sid, "worker": w.worker, "records": w.records, "busy_s": w.busy_s,
                          "interval_s": w.interval_s, "busy_fraction": w.busy_fraction, "true_rate": w.true_rate})
    return pd.DataFrame(rows), pd.DataFrame(wrows)


def write_samples(con, run_id: str, samples: list[tuple[Sample, float | None, int]]) -> int:
    df, wdf = sample_rows(run_id, samples)

    def work(c):
        n = upsert_ignore(c, "ops.capacity_samples", df)
        if len(wdf):
            upsert_ignore(c, "ops.capacity_worker_samples", wdf)
        return n

    return transaction(con, work) if len(df) else 0


def write_decisions(con, run_id: str, decisions: list[tuple[Decision, str | None]], t0: float = 0.0) -> int:
    """(Decision, outcome) pairs; a decision's t is seconds since t0 (epoch)."""
    if not decisions:
        return 0
    df = pd.DataFrame([{"decision_id": f"{run_id}:{d.policy}:{d.t:.3f}", "run_id": run_id, "ts": _ts(t0 + d.t),
                        "policy": d.policy, "action": d.action, "workers_from": d.workers_from,
                        "workers_to": d.workers_to, "state": d.state, "reason": d.reason,
                        "inputs": json.dumps(d.inputs, default=str), "outcome": outcome}
                       for d, outcome in decisions])
    return transaction(con, lambda c: upsert_ignore(c, "ops.capacity_decisions", df))


def write_model(con, model: HourlyModel, model_id: str | None = None) -> str:
    model_id = model_id or f"cap-{datetime.now():%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:4]}"
    now = datetime.now()
    df = pd.DataFrame([{"model_id": model_id, "built_at": now, "hour": h, "percentile": model.percentile,
                        "rate": r, "samples": model.samples.get(h, 0), "days": model.days}
                       for h, r in sorted(model.rates.items())])
    transaction(con, lambda c: upsert_ignore(c, "ops.capacity_model", df))
    return model_id


def read_model(con) -> tuple[str, HourlyModel] | None:
    """The newest model, or None when none was built yet."""
    row = con.execute("SELECT model_id FROM ops.capacity_model ORDER BY built_at DESC, model_id DESC LIMIT 1").fetchone()
    if not row:
        return None
    df = con.execute("SELECT hour, percentile, rate, samples, days FROM ops.capacity_model WHERE model_id = ? "
                     "ORDER BY hour", [row[0]]).df()
    return row[0], HourlyModel(float(df.percentile.iloc[0]), {int(h): float(r) for h, r in zip(df.hour, df.rate)},
                               {int(h): int(n) for h, n in zip(df.hour, df.samples)}, int(df.days.iloc[0]))


def rate_observations(con, group: str | None = None, days: int = 14) -> list[tuple[int, float, float]]:
    """(day number, hour of day, arrival rate) of the samples of the last `days` days, for HourlyModel.fit.
    The hour is the sample's own load clock where recorded, else its wall-clock hour."""
    where = "arrival_rate IS NOT NULL AND ts >= now() - to_days(?)"
    params: list = [days]
    if group:
        where += " AND group_id = ?"
        params.append(group)
    df = con.execute(f"SELECT date_diff('day', DATE '2000-01-01', CAST(ts AS DATE)) AS day, "
                     f"coalesce(hour, extract('hour' FROM ts) + extract('minute' FROM ts) / 60.0) AS hour, arrival_rate "
                     f"FROM ops.capacity_samples WHERE {where}", params).df()
    return [(int(d), float(h), float(r)) for d, h, r in zip(df.day, df.hour, df.arrival_rate)]


def rebuild_model(con, group: str | None = None, days: int = 14, percentile: float = 95.0) -> dict:
    """Fit the hourly model on the stored samples of the last `days` days and store it (the
    capacity_planning DAG's one task); a store with no samples yet is reported, not an error."""
    obs = rate_observations(con, group, days)
    if not obs:
        return {"model_id": None, "reason": f"no capacity samples in the last {days} days", "samples": 0}
    model = HourlyModel.fit(obs, percentile)
    model_id = write_model(con, model)
    return {"model_id": model_id, "samples": len(obs), "days": model.days, "hours": len(model.rates),
            "peak_rate": max(model.rates.values()), "percentile": percentile}


def rebuild_model_in_store(group: str | None = None, days: int = 14, percentile: float = 95.0) -> dict:
    """rebuild_model on the configured store (its own connection; the DAG's task calls this)."""
    from pipelines.store.db import connect, migrate

    con = connect()
    try:
        migrate(con)
        return rebuild_model(con, group, days=days, percentile=percentile)
    finally:
        con.close()


# --- the admission plan the workers follow (migration 091) ---------------------------------------------

def read_plan(con):
    """(version, AdmissionPlan, decided_at) of the current plan, or None when none was recorded (normal)."""
    from pipelines.capacity.admission import AdmissionPlan

    row = con.execute("SELECT version, mode, top_k, admit_share, reason, decided_at FROM ops.admission_plans "
                      "ORDER BY version DESC LIMIT 1").fetchall()
    if not row:
        return None
    version, mode, top_k, share, reason, at = row[0]
    return int(version), AdmissionPlan(mode, None if top_k is None else int(top_k), float(share), reason), at


def write_plan(con, plan, by: str | None = None, decision_id: str | None = None) -> int:
    """Record `plan` as the current one; returns its version. The same plan as the current one (mode,
    top_k and share) adds no version, so a replayed decision or a repeated command is harmless."""
    from pipelines.capacity.admission import AdmissionPlan

    if plan.mode not in ("normal", "degraded", "admission"):
        raise ValueError(f"admission mode is normal, degraded or admission, not {plan.mode!r}")
    if not 0.0 < plan.admit_share <= 1.0 or (plan.top_k is not None and plan.top_k < 1):
        raise ValueError(f"need 0 < admit_share <= 1 and top_k >= 1 or none ({plan.admit_share}, {plan.top_k})")
    if plan.mode == "normal" and (plan.top_k is not None or plan.admit_share < 1.0):
        plan = AdmissionPlan("normal", None, 1.0, plan.reason)

    def work(c):
        cur = read_plan(c)
        if cur is not None and (cur[1].mode, cur[1].top_k, cur[1].admit_share) == (plan.mode, plan.top_k,
                                                                                   plan.admit_share):
            return cur[0]
        version = (cur[0] if cur else 0) + 1
        df = pd.DataFrame([{"version": version, "decided_at": datetime.now(), "mode": plan.mode,
                            "top_k": plan.top_k, "admit_share": float(plan.admit_share), "reason": plan.reason,
                            "decided_by": by, "decision_id": decision_id}])
        df["top_k"] = df["top_k"].astype("Int64")
        upsert_ignore(c, "ops.admission_plans", df)
        return version

    return transaction(con, work)


def admission_recorder(con, run_id: str):
    """What the capacity loop calls with an "admission" decision: the plan into the store (its
    decision id as write_decisions gives it), returning the outcome line for the decision."""
    def record(d: Decision) -> str:
        version = write_plan(con, d.admission, by=run_id, decision_id=f"{run_id}:{d.policy}:{d.t:.3f}")
        return f"admission plan version {version} ({d.admission.mode}) recorded for the workers"

    return record
