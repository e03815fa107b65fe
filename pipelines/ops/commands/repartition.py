"""`osr repartition status|plan|apply|history`: the live profile stream's placement.

The logic is pipelines.partitioning.runs (collect -> decide -> apply -> record, the same steps the
stream_repartition_check DAG runs); this module parses and prints.
  status   routing version, whether its migration finished, each node's newest summary and NMI
  plan     collect the summaries and decide (no migration); recorded as a `plan` run
  apply    the same, and migrate when the trigger fires (or with --force); recorded
  history  the recorded runs; --plot PATH draws their qualities over time
"""

from __future__ import annotations

import json
import math


def _f(v, fmt=".3f") -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:{fmt}}"


def cmd_status(args) -> int:
    from pipelines.partitioning import runs

    s = runs.status()
    if args.json:
        print(json.dumps(s))
        return 0
    print(f"routing version {s['version']} on {s['n_nodes']} nodes: "
          + ("installed" if s["complete"] else f"migrating ({s['not_installed']} of {s['moved_in_version']} "
                                                f"moved profiles not installed yet)"))
    for n in s["nodes"]:
        print(f"  node {n['node']}: {n['profiles']} profiles in {n['microclusters']} micro-clusters, "
              f"NMI {_f(n['nmi'])} (summary of version {n['version']} at {n['at']})")
    if not s["nodes"]:
        print("  no node summary yet (workers report every OSR_PROFILE_SUMMARY_S seconds)")
    return 0


def _run(args, run: bool) -> int:
    from pipelines.partitioning import runs

    row = runs.check(run=run, force=args.force, threshold=args.threshold, wait_s=args.wait, timeout=args.timeout)
    if args.json:
        print(json.dumps(row, default=str))
        return 0
    print(f"{row['run_id']}: {row['status']} ({row['reason']})")
    print(f"  version {row['version_from']} -> {row['version_to'] if row['version_to'] is not None else '-'}; "
          f"{row['summaries']} node summaries, {_f(row['profiles'], '.0f')} profiles, "
          f"{_f(row['microclusters'], '.0f')} micro-clusters, min NMI {_f(row['min_nmi'])}")
    if row["cluster_quality_before"] is not None:
        print(f"  before: Q {_f(row['overall_quality_before'])}  Qc {_f(row['cluster_quality_before'])}  "
              f"Qb {_f(row['balance_quality_before'])}")
        print(f"  {'after: ' if row['status'] == 'applied' else 'now:   '} Q {_f(row['overall_quality'])}  "
              f"Qc {_f(row['cluster_quality'])}  Qb {_f(row['balance_quality'])}  Qm {_f(row['migration_quality'])}")
    if row["status"] == "applied":
        print(f"  moved {row['moved_profiles']} profiles ({row['state_bytes']} bytes of state) in "
              f"{_f(row['migration_seconds'], '.2f')} s; partition step {_f(row['partition_seconds'], '.3f')} s; "
              f"pause of a moving profile p50 {_f(row['pause_p50_s'], '.2f')} s, p99 {_f(row['pause_p99_s'], '.2f')} s")
    return 0


def cmd_plan(args) -> int:
    return _run(args, run=False)


def cmd_apply(args) -> int:
    return _run(args, run=True)


def cmd_history(args) -> int:
    from pipelines.partitioning import runs

    df = runs.history(args.limit)
    if args.plot:
        print(f"wrote {runs.plot_history(args.plot, df if len(df) else None)}")
    if args.json:
        print(df.to_json(orient="records", date_format="iso"))
        return 0
    if df.empty:
        print("no repartition run recorded yet")
        return 0
    cols = ["run_id", "started_at", "status", "version_from", "version_to", "moved_profiles", "overall_quality",
            "cluster_quality", "balance_quality", "migration_quality", "migration_seconds", "pause_p99_s"]
    print(df[cols].to_string(index=False))
    return 0


def register(sub) -> None:
    from pipelines.partitioning import trigger

    p = sub.add_parser("repartition", help="the live profile stream's placement: status, plan, apply, history")
    rsub = p.add_subparsers(dest="repartition_command", metavar="ACTION", required=True)
    q = rsub.add_parser("status", help="routing version, migration state, each node's summary and NMI")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_status)
    for name, func, text in (("plan", cmd_plan, "collect the nodes' summaries and decide (no migration)"),
                             ("apply", cmd_apply, "collect, decide and migrate when the trigger fires (or --force)")):
        q = rsub.add_parser(name, help=text)
        q.add_argument("--force", action="store_true", help="repartition whatever the nodes' NMIs say")
        q.add_argument("--threshold", type=float, default=trigger.THRESHOLD,
                       help=f"repartition when a node's NMI falls below this (default {trigger.THRESHOLD})")
        q.add_argument("--wait", type=float, default=60.0, help="seconds to wait for every node's summary (default 60)")
        q.add_argument("--timeout", type=float, default=180.0,
                       help="seconds the migration may take before it is reported failed (default 180)")
        q.add_argument("--json", action="store_true")
        q.set_defaults(func=func)
    q = rsub.add_parser("history", help="recorded runs (ops.repartition_runs)")
    q.add_argument("--limit", type=int, default=50)
    q.add_argument("--plot", default=None, help="also draw the qualities over time to this PNG")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_history)


if __name__ == "__main__":
    import argparse
    import sys

    ap = argparse.ArgumentParser(prog="repartition")
    register(ap.add_subparsers(dest="command", required=True))
    a = ap.parse_args()
    sys.exit(a.func(a))
