"""`osr`: the platform's command line. Every subcommand has --help.

Settings come from OSR_* environment variables (`osr config` lists them).
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import sys

from pipelines import config, rate_limited_log

#: Modules that add their own subcommands through `register(subparsers)`.
PLUGINS = ("pipelines.ops.commands.services", "pipelines.ops.commands.filtering", "pipelines.ops.commands.recsys",
           "pipelines.ops.commands.propensity", "pipelines.ops.commands.qos", "pipelines.ops.commands.tuner",
           "pipelines.ops.commands.mqtt", "pipelines.ops.commands.cluster",
           "pipelines.ops.commands.analytics", "pipelines.ops.commands.capacity",
           "pipelines.ops.commands.repartition")


def _population_args(p: argparse.ArgumentParser) -> None:
    from pipelines.synthetic.population import PopulationParams

    d = PopulationParams()
    p.add_argument("--users", type=int, default=d.n_users, help=f"people (default {d.n_users})")
    p.add_argument("--items", type=int, default=d.n_items, help=f"items (default {d.n_items})")
    p.add_argument("--moments", type=int, default=d.stream_contexts_per_user,
                   help=f"streamed moments per person (default {d.stream_contexts_per_user})")
    p.add_argument("--history", type=int, default=d.history_contexts_per_user,
                   help=f"history moments per person for training (default {d.history_contexts_per_user})")
    p.add_argument("--seed", type=int, default=d.seed, help=f"random seed (default {d.seed})")


def _population_params(args):
    from pipelines.synthetic.population import PopulationParams

    return PopulationParams(n_users=args.users, n_items=args.items, stream_contexts_per_user=args.moments,
                            history_contexts_per_user=args.history, seed=args.seed)


def cmd_config(args) -> int:
    for name, (default, doc) in config.SETTINGS.items():
        mark = "*" if name in os.environ else " "
        print(f"{mark} {name:28s} = {config.get(name)}\n    {doc}")
    print("\n(* = set in the environment; others are defaults)")
    return 0


def cmd_db_migrate(args) -> int:
    from pipelines.store.db import connect, migrate

    con = connect()
    applied = migrate(con)
    con.close()
    print(f"{config.get('OSR_STORE_CATALOG')}: applied {applied or 'nothing (up to date)'}")
    return 0


def cmd_db_compact(args) -> int:
    from pipelines.store.db import compact, connect

    con = connect()
    try:
        counts = compact(con, keep_snapshots_days=args.keep_days, delete_files_after_s=args.delete_after)
    finally:
        con.close()
    print(json.dumps({"catalog": config.get("OSR_STORE_CATALOG"), **counts}))
    return 0


def cmd_query(args) -> int:
    from pipelines.store.db import connect

    sql = args.sql
    from pipelines.store.db import REPORTS_SQL

    named = REPORTS_SQL / f"{sql}.sql"
    if named.exists():
        sql = named.read_text()
    con = connect(read_only=True)
    try:
        df = con.execute(sql).df()
    finally:
        con.close()
    if args.json:
        print(df.to_json(orient="records", date_format="iso"))
    else:
        import pandas as pd

        with pd.option_context("display.max_rows", args.limit, "display.width", 200, "display.max_columns", 30):
            print(df.head(args.limit).to_string(index=False))
    return 0


def cmd_populate(args) -> int:
    from pipelines.synthetic import population as P
    from pipelines.store.population_loader import load_population
    from pipelines.store.db import connect, migrate

    con = connect()
    migrate(con)
    counts = load_population(con, P.generate(_population_params(args)),
                             progress=lambda k: print(f"  backfilled {k} history uploads", flush=True))
    con.close()
    print(json.dumps(counts, indent=2))
    return 0


def cmd_nightly(args) -> int:
    from pipelines.reco import nightly

    report = nightly.run_all(algorithm=args.algorithm, rank=args.rank, reg=args.reg, iterations=args.iterations)
    if args.announce:
        from pipelines.ingest.kafka_clients import announce_model

        announce_model(report["model_id"], report["published"]["snapshot"])
    print(json.dumps(report, indent=2, default=str))
    return 0


def cmd_sink(args) -> int:
    from pipelines.store.sink import run_sink

    stats = run_sink(idle_exit_s=args.idle_exit, max_runtime_s=args.max_runtime,
                     on_progress=lambda s: print(f"sink: {s.messages} -> new rows {s.new_rows}", flush=True))
    print(f"sink stopped: {stats}")
    return 0


def cmd_push_gateway(args) -> int:
    from pipelines.online.push_gateway import run_gateway

    stats = run_gateway(instance=args.instance, idle_exit_s=args.idle_exit, max_runtime_s=args.max_runtime,
                        on_progress=lambda s: print(f"push gateway: {s}", flush=True))
    print(f"push gateway stopped: {stats}")
    return 0


def cmd_produce(args) -> int:
    from pipelines.synthetic import population as P
    from pipelines.ingest.producer import produce_population

    r = produce_population(P.generate(_population_params(args)), args.malformed_share, limit=args.limit,
                           on_progress=lambda r: print(f"  sent {r.total}", flush=True))
    print(json.dumps({"valid": r.valid, "malformed": r.malformed, "by_corruption": r.by_corruption}))
    return 0


def cmd_worker(args) -> int:
    os.execvp(sys.executable, [sys.executable, "-m", "faust", "-A", "streams.app", "worker", "-l", args.loglevel,
                               "--web-host", "127.0.0.1", "--web-port", config.get("OSR_FAUST_WEB_PORT")])


def cmd_demo(args) -> int:
    from pipelines.ops.demo import print_summary, run_demo

    rep = run_demo(_population_params(args), malformed_share=args.malformed_share,
                   drain_timeout=args.drain_timeout, keep_services=args.keep_services, via=args.via,
                   cluster=args.cluster)
    print_summary(rep)
    ok = rep.counts.get("notifications", 0) > 0 and \
        rep.produced["total"] == rep.counts["uploads_fused"] + rep.counts["deadlettered"]
    return 0 if ok else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="osr",
        description="OSR platform: pushes a recommendation when a person is most receptive. "
                    "Start with `osr demo` (the whole loop on the embedded default).",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("demo", help="run the whole loop locally: store, population, nightly batch, broker, "
                                    "Faust worker, sink, a streamed day, summary")
    _population_args(p)
    p.add_argument("--malformed-share", type=float, default=0.02, help="share of deliberately broken uploads")
    p.add_argument("--drain-timeout", type=float, default=600, help="seconds to wait for the stream to finish")
    p.add_argument("--keep-services", action="store_true", help="leave the broker running afterwards")
    p.add_argument("--via", choices=("kafka", "mqtt"), default="kafka",
                   help="how uploads enter: produced straight to Kafka (default), or published over MQTT to a "
                        "local Mosquitto and forwarded by the MQTT bridge (both started and stopped by the demo)")
    p.add_argument("--cluster", action="store_true",
                   help="run on the multi-process cluster of `osr cluster up` (its OSR_* settings and processes)")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("config", help="list every OSR_* setting with its value and meaning")
    p.set_defaults(func=cmd_config)

    p = sub.add_parser("db", help="the store (a DuckLake: OSR_STORE_CATALOG + OSR_STORE_DATA)")
    dsub = p.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    dsub.add_parser("migrate", help="apply sql/migrations idempotently").set_defaults(func=cmd_db_migrate)
    c = dsub.add_parser("compact", help="maintenance: move inlined rows to Parquet, merge small files, "
                                        "expire old snapshots, delete unreferenced files (safe beside the sink)")
    c.add_argument("--keep-days", type=float, default=7.0,
                   help="keep snapshots (time travel) this many days (default 7)")
    c.add_argument("--delete-after", type=float, default=3600.0,
                   help="delete files unreferenced for more than this many seconds (default 3600: a running "
                        "query may still read them)")
    c.set_defaults(func=cmd_db_compact)

    p = sub.add_parser("query", help="run SQL (or a named report from sql/reports) read-only against the store")
    p.add_argument("sql", help="SQL text, or the name of a report in sql/reports without .sql "
                               "(e.g. notifications_by_state, stream_reconciliation, top_notifications)")
    p.add_argument("--limit", type=int, default=50, help="rows to print (default 50)")
    p.add_argument("--json", action="store_true", help="print JSON records")
    p.set_defaults(func=cmd_query)

    p = sub.add_parser("populate", help="generate a synthetic population and load it into the store")
    _population_args(p)
    p.set_defaults(func=cmd_populate)

    from pipelines.reco.nightly import DEFAULTS, PREFERENCE_ALGORITHMS

    p = sub.add_parser("nightly", help="run the nightly retrain once, in-process (the DAG's task functions)")
    p.add_argument("--algorithm", choices=PREFERENCE_ALGORITHMS, default="implicit_als",
                   help="preference model: implicit_als (single machine) or dask_als (Dask, OSR_DASK_SCHEDULER "
                        "or a LocalCluster)")
    p.add_argument("--rank", type=int, default=DEFAULTS["rank"], help="ALS factors")
    p.add_argument("--reg", type=float, default=DEFAULTS["reg"], help="ALS regularization λ")
    p.add_argument("--iterations", type=int, default=DEFAULTS["iterations"], help="ALS iterations")
    p.add_argument("--announce", action="store_true", help="announce the new model on control.models")
    p.set_defaults(func=cmd_nightly)

    p = sub.add_parser("sink", help="write stream results into the store (keyed, idempotent; batch jobs "
                                    "and queries run beside it)")
    p.add_argument("--idle-exit", type=float, default=None, help="stop after this many idle seconds")
    p.add_argument("--max-runtime", type=float, default=None, help="stop after this many seconds")
    p.set_defaults(func=cmd_sink)

    p = sub.add_parser("push-gateway", help="deliver approved pushes (push.approved) onto notifications, each "
                                            "moment once (Kafka transactions + dedupe by moment)")
    p.add_argument("--instance", default=None,
                   help="transactional name; a restarted gateway must reuse it (default OSR_PUSH_GATEWAY_ID)")
    p.add_argument("--idle-exit", type=float, default=None, help="stop after this many idle seconds")
    p.add_argument("--max-runtime", type=float, default=None, help="stop after this many seconds")
    p.set_defaults(func=cmd_push_gateway)

    p = sub.add_parser("stream", help="the stream side: Faust worker, producing uploads")
    ssub = p.add_subparsers(dest="stream_command", metavar="ACTION", required=True)
    w = ssub.add_parser("worker", help="run a Faust worker for streams.app in the foreground")
    w.add_argument("-l", "--loglevel", default="info")
    w.set_defaults(func=cmd_worker)
    pr = ssub.add_parser("produce", help="send a population's streamed day of uploads to sensor.raw")
    _population_args(pr)
    pr.add_argument("--malformed-share", type=float, default=0.02, help="share of deliberately broken uploads")
    pr.add_argument("--limit", type=int, default=None, help="send at most this many uploads")
    pr.set_defaults(func=cmd_produce)

    for module in PLUGINS:
        try:
            importlib.import_module(module).register(sub)
        except ModuleNotFoundError as exc:
            if not (exc.name and module.startswith(exc.name)):  # an optional part not installed: skip it
                raise
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    rate_limited_log.install()  # a broker outage must not print a line per reconnect
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (FileNotFoundError, RuntimeError, TimeoutError, ValueError) as exc:
        print(f"osr {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
