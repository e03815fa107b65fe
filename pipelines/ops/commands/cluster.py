"""`osr cluster up|down|status|env`: the multi-process cluster on this machine (pipelines.ops.cluster)."""

from __future__ import annotations

import argparse
import json
import shlex

from pipelines.ops.commands.services import _guarded  # one error format for every service command
from pipelines.ops.services.processes import ServiceError


def _say(message: str) -> None:
    print(message, flush=True)


def _mib(n: int) -> str:
    return f"{n / 2**20:,.0f} MiB"


def _print_memory(mem: dict) -> None:
    print(f"memory (RSS of every process the cluster started, children included): {_mib(mem['total_rss_bytes'])} "
          f"in {mem['processes']} processes")
    for name, row in mem["services"].items():
        print(f"  {name:<16} {_mib(row['rss_bytes']):>10}  ({row['processes']} processes)")


def _up(args: argparse.Namespace) -> int:
    from pipelines.ops import cluster

    new = cluster.Plan.default(home=args.home, port_base=args.port_base)  # before any use() moves OSR_HOME
    try:
        plan = cluster.Plan.load(new.home)  # a cluster made before keeps its ports (its brokers were formatted for them)
    except ServiceError:
        plan = new
    if args.fresh:
        cluster.discard(plan)
        _say(f"discarded {plan.home}")
        plan = new
    info = cluster.up(plan, _say, airflow=None if args.airflow is None else args.airflow)
    _say(f"cluster up in {info['seconds']['total']} s: " + ", ".join(
        f"{k} {v} s" for k, v in info["seconds"].items() if k != "total" and v is not None))
    _print_memory(info["memory"])
    _say(f'point any osr command at it:  eval "$(osr cluster env --home {shlex.quote(plan.home)})"')
    return 0


def _down(args: argparse.Namespace) -> int:
    from pipelines.ops import cluster

    cluster.down(cluster.Plan.load(args.home), _say)
    return 0


def _status(args: argparse.Namespace) -> int:
    from pipelines.ops import cluster

    st = cluster.status(cluster.Plan.load(args.home))
    if args.json:
        print(json.dumps(st, indent=2, default=str))
        return 0
    print(f"cluster home {st['home']}; bootstrap {st['bootstrap']}")
    for row in st["services"]:
        extra = ""
        if "answering" in row:
            extra = " (answering)" if row["answering"] else (" (NOT answering)" if row["state"] == "up" else "")
        if "cluster_brokers" in row and row["state"] == "up":
            extra = f" ({row['cluster_brokers']} brokers in the metadata)"
        if row["service"] == "airflow" and row["state"] == "up":
            extra = (f" ({'healthy' if row.get('healthy') else 'NOT healthy'}; executor {row.get('executor')}; "
                     f"metadata DB {row.get('metadata_db')})")
        pid = f"pid {row['pid']}" if row.get("pid") else "no pid"
        print(f"{row['service']:<16} {row['state']:<8} {pid:<12} {row.get('address') or '-'}{extra}   "
              f"log: {row.get('log', '-')}")
    _print_memory(st["memory"])
    return 0 if all(r["state"] == "up" for r in st["services"] if r["service"] != "airflow") else 1


def _env(args: argparse.Namespace) -> int:
    from pipelines.ops import cluster

    for key, value in cluster.env(cluster.Plan.load(args.home)).items():
        print(f"export {key}={shlex.quote(value)}")
    return 0




def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `cluster` to the `osr` command."""
    p = subparsers.add_parser(
        "cluster", help="a multi-process cluster on this machine: 3 Kafka brokers, PostgreSQL, Dask, 2 Faust "
                        "workers, sink, push gateway, Airflow",
        description="The same code and OSR_* settings as the embedded default, as separate processes: a 3-broker "
                    "Kafka KRaft cluster (replication 3, min ISR 2), PostgreSQL (DuckLake catalog; Airflow "
                    "metadata DB with the LocalExecutor), a Dask scheduler with 2 workers, 2 Faust workers in one "
                    "group, the push gateway and the sink, on 127.0.0.1 with their own ports (from "
                    "OSR_CLUSTER_PORT_BASE, default 19000) and their own home (OSR_CLUSTER_HOME, default "
                    "$OSR_HOME/cluster). Then `osr demo --cluster` runs the main job on it.")
    sub = p.add_subparsers(dest="cluster_command", required=True, metavar="{up,down,status,env}")
    home = {"metavar": "DIR", "default": None, "help": "cluster home (default OSR_CLUSTER_HOME or $OSR_HOME/cluster)"}
    up = sub.add_parser("up", help="start every part and wait until each answers")
    up.add_argument("--home", **home)
    up.add_argument("--port-base", type=int, default=None,
                    help="first of the cluster's ports (default OSR_CLUSTER_PORT_BASE or 19000); kept from an "
                         "existing cluster.json")
    up.add_argument("--airflow", dest="airflow", action="store_true", default=None,
                    help="start Airflow (the default; needs a PostgreSQL driver)")
    up.add_argument("--no-airflow", dest="airflow", action="store_false", help="do not start Airflow")
    up.add_argument("--fresh", action="store_true", help="discard everything the cluster holds first (broker logs, PostgreSQL, store, snapshots, "
                         "logs); only when it is down")
    up.set_defaults(func=_guarded(_up))
    down = sub.add_parser("down", help="stop every process the cluster started (by pid)")
    down.add_argument("--home", **home)
    down.set_defaults(func=_guarded(_down))
    st = sub.add_parser("status", help="up/down, pid, address and log of every part, and memory used")
    st.add_argument("--home", **home)
    st.add_argument("--json", action="store_true", help="print JSON")
    st.set_defaults(func=_guarded(_status))
    en = sub.add_parser("env", help='print the OSR_* settings of the cluster as export lines: eval "$(osr cluster env)"')
    en.add_argument("--home", **home)
    en.set_defaults(func=_guarded(_env))
