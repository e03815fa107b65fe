"""`osr capacity status|plan|history|admission`: the capacity loop's view for an operator, and the real effectors.

The logic is pipelines.capacity; this module wires it to real Faust workers (pipelines.ops.demo's
start/stop, the only place that knows how a worker is started) and prints.
"""

from __future__ import annotations

import json
from pathlib import Path

from pipelines import config
from pipelines.contracts import TOPICS


# --- the real effectors (used by the bench and the integration test too) ----------------------------

def start_worker(index: int) -> int:
    """Start Faust worker `index` of this home on a free web port, without waiting: the monitor sees
    it join (group Stable with it as a member); a planner in MIGRATION ignores samples meanwhile."""
    from pipelines.ops import demo
    from pipelines.ops.services.processes import find_free_port

    return demo.start_worker(index, web_port=find_free_port())


def stop_worker(index: int) -> str:
    from pipelines.ops import demo

    return demo.worker_service(index).stop(60)


def real_effector():
    from pipelines.capacity.execute import Effector

    return Effector(start=start_worker, stop=stop_worker)


def worker_logs(effector) -> dict[str, Path]:
    from pipelines.ops import demo

    return {f"worker-{i}": demo.worker_service(i).log_file for i in effector.running}


# --- commands -----------------------------------------------------------------------------------------

def _group_topic(args) -> tuple[str, str]:
    return args.group or config.get("OSR_FAUST_APP_ID"), args.topic or config.topic(TOPICS.sensor_raw)


def admission_status(con) -> dict:
    """The admission plan the workers follow (ops.admission_plans; none recorded: normal)."""
    from pipelines.capacity.store import read_plan

    found = read_plan(con)
    if found is None:
        return {"mode": "normal", "top_k": None, "admit_share": 1.0, "reason": "no admission plan recorded",
                "version": None, "decided_at": None}
    version, plan, at = found
    return {"mode": plan.mode, "top_k": plan.top_k, "admit_share": plan.admit_share, "reason": plan.reason,
            "version": version, "decided_at": at}


def cmd_status(args) -> int:
    from pipelines.capacity.monitor import Monitor
    from pipelines.store.db import connect

    group, topic = _group_topic(args)
    out: dict = {"group": group, "topic": topic}
    try:
        mon = Monitor(group, topic, index_timestamps=False)
        try:
            s = mon.sample()
        finally:
            mon.close()
        out.update({"partitions": s.partitions, "group_state": s.group_state, "members": s.members, "lag": s.lag,
                    "end_offsets": s.end_offsets, "committed": s.committed})
    except Exception as exc:  # noqa: BLE001 - the store's view (the admission plan) is still worth printing
        out["broker"] = f"unavailable: {exc}"
    try:
        con = connect(read_only=True)
        try:
            last = con.execute("SELECT ts, policy, action, workers_from, workers_to, reason FROM ops.capacity_decisions "
                               "WHERE action <> 'hold' ORDER BY ts DESC LIMIT 1").fetchone()
            rate = con.execute("SELECT avg(arrival_rate), avg(true_rate) FROM ops.capacity_samples "
                               "WHERE group_id = ? AND ts >= now() - INTERVAL 10 MINUTE", [group]).fetchone()
            out["admission"] = admission_status(con)
        finally:
            con.close()
        out["last_action"] = dict(zip(("ts", "policy", "action", "from", "to", "reason"), last)) if last else None
        out["arrival_rate_10min"], out["true_rate_10min"] = rate if rate else (None, None)
    except Exception as exc:  # noqa: BLE001 - the broker's view is still worth printing
        out["store"] = f"unavailable: {exc}"
    print(json.dumps(out, indent=2, default=str))
    return 0


def cmd_admission(args) -> int:
    """Record an admission plan by hand (the workers follow it within a poll; the planner's next
    admission decision replaces it): e.g. end a degraded mode the loop left behind when it stopped."""
    import getpass

    from pipelines.capacity.admission import AdmissionPlan
    from pipelines.capacity.store import write_plan
    from pipelines.store.db import connect, migrate

    if args.mode == "normal":
        plan = AdmissionPlan("normal", None, 1.0, args.reason or "set by hand: normal")
    else:
        share = 1.0 if args.mode == "degraded" else args.share
        if share is None:
            raise ValueError("admission mode needs --share (the share of people scored per batch, 0-1]")
        plan = AdmissionPlan(args.mode, args.top_k, share,
                             args.reason or f"set by hand: {args.mode}, top {args.top_k}, admit {share:.0%}")
    con = connect()
    try:
        migrate(con)
        version = write_plan(con, plan, by=f"osr capacity admission ({getpass.getuser()})")
        out = admission_status(con)
    finally:
        con.close()
    print(json.dumps({**out, "version": version}, default=str))
    return 0


def cmd_plan(args) -> int:
    """Per hour of day: the model's rate and the workers M/M/c sizes for it."""
    from pipelines.capacity.queueing import workers_for_sla
    from pipelines.capacity.store import read_model
    from pipelines.store.db import connect

    con = connect(read_only=True)
    try:
        found = read_model(con)
        mu = args.service_rate or con.execute(
            "SELECT median(true_rate) FROM ops.capacity_samples WHERE true_rate IS NOT NULL").fetchone()[0]
    finally:
        con.close()
    if not found:
        print("no capacity model yet: run the capacity_planning DAG (or bench/capacity.py) first")
        return 1
    if not mu:
        print("no measured service rate in ops.capacity_samples: pass --service-rate RECORDS_PER_S")
        return 1
    model_id, model = found
    rows = []
    for h in range(24):
        lam = model.predict(h)
        s = workers_for_sla(lam, mu, args.sla, args.q, beta=args.beta, minimum=args.minimum, cap=args.cap)
        rows.append({"hour": h, "rate": round(lam, 1), "workers": s.workers, "p_model_s": round(s.percentile_s, 3),
                     "utilization": round(s.utilization, 2), "beyond_cap": s.needed is None})
    if args.json:
        print(json.dumps({"model_id": model_id, "service_rate": mu, "hours": rows}))
        return 0
    print(f"model {model_id} ({model.percentile:g}th percentile per hour, {model.days} days); "
          f"service rate {mu:.1f} records/s per worker; SLA p{args.q * 100:g} <= {args.sla:g} s")
    print(" hour   rate/s  workers  model p (s)  util")
    for r in rows:
        print(f"  {r['hour']:02d}  {r['rate']:8.1f}  {r['workers']:7d}  {r['p_model_s']:11.3f}  {r['utilization']:.2f}"
              + ("  beyond the cap: admission control" if r["beyond_cap"] else ""))
    return 0


def cmd_history(args) -> int:
    from pipelines.store.db import connect

    con = connect(read_only=True)
    try:
        where = "" if args.all else "WHERE action <> 'hold'"
        df = con.execute(f"SELECT ts, run_id, policy, action, workers_from AS from_, workers_to AS to_, state, reason, "
                         f"outcome FROM ops.capacity_decisions {where} ORDER BY ts DESC LIMIT ?", [args.limit]).df()
    finally:
        con.close()
    if args.json:
        print(df.to_json(orient="records", date_format="iso"))
    elif df.empty:
        print("no capacity decisions recorded yet")
    else:
        for r in df.itertuples():
            print(f"{r.ts:%Y-%m-%d %H:%M:%S} {r.policy:20s} {r.action:22s} {r.from_}->{r.to_} [{r.state}] {r.reason}"
                  + (f"\n    outcome: {r.outcome}" if r.outcome else ""))
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("capacity", help="capacity planning: live status, the hourly plan, decision history")
    sub = p.add_subparsers(dest="capacity_cmd", required=True)
    st = sub.add_parser("status", help="the stream group's lag and membership from the broker, the last action, "
                                       "the admission mode and its reason")
    st.add_argument("--group", help="consumer group (default OSR_FAUST_APP_ID)")
    st.add_argument("--topic", help="input topic (default the prefixed sensor.raw)")
    st.set_defaults(func=cmd_status)
    pl = sub.add_parser("plan", help="per hour of day: predicted rate and workers sized by M/M/c")
    pl.add_argument("--sla", type=float, default=5.0, help="latency SLA in seconds (default 5)")
    pl.add_argument("--q", type=float, default=0.99, help="percentile the SLA holds for (default 0.99)")
    pl.add_argument("--service-rate", type=float, help="records/s per worker (default: median measured true rate)")
    pl.add_argument("--beta", type=float, default=1.0, help="tier factor (work per input record)")
    pl.add_argument("--minimum", type=int, default=1)
    pl.add_argument("--cap", type=int, default=int(config.get("OSR_TOPIC_PARTITIONS")),
                    help="most workers (default: the partitions)")
    pl.add_argument("--json", action="store_true")
    pl.set_defaults(func=cmd_plan)
    ad = sub.add_parser("admission", help="record the admission plan the stream's workers follow (by hand)")
    ad.add_argument("mode", choices=("normal", "degraded", "admission"))
    ad.add_argument("--top-k", type=int, default=3, help="candidates scored per person (default 3)")
    ad.add_argument("--share", type=float, help="admission: share of people scored per micro-batch, (0, 1]")
    ad.add_argument("--reason", help="why (recorded with the plan)")
    ad.set_defaults(func=cmd_admission)
    hi = sub.add_parser("history", help="the capacity decisions with their reasons and outcomes")
    hi.add_argument("--limit", type=int, default=30)
    hi.add_argument("--all", action="store_true", help="include holds")
    hi.add_argument("--json", action="store_true")
    hi.set_defaults(func=cmd_history)

