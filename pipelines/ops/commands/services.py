"""`osr services ...` and `osr topics ...`: start, stop and inspect the local services; manage topics.

`register(subparsers)` plugs both into the project's `osr` command; `main()` runs them
alone (`python -m pipelines.ops.commands.services services up`), e.g. from infra/services.sh.
"""

from __future__ import annotations

import argparse
import json
import sys

from confluent_kafka import KafkaException

from pipelines import config
from pipelines.contracts import TOPICS
from pipelines.ops.services import airflow_local, broker, dask_cluster, mosquitto_local, topics
from pipelines.ops.services.processes import ServiceError

#: What `--only` accepts; kafka/tansu are aliases of "broker" (OSR_BROKER decides which broker runs).
SERVICES = ("broker", "airflow", "dask", "mqtt")
_ALIASES = {"kafka": "broker", "tansu": "broker", "broker": "broker", "airflow": "airflow", "dask": "dask",
            "mqtt": "mqtt", "mosquitto": "mqtt"}


def _say(message: str) -> None:
    print(message, flush=True)


def _only(value: str | None, default: tuple[str, ...]) -> list[str]:
    if not value:
        return list(default)
    chosen = []
    for name in (v.strip().lower() for v in value.split(",") if v.strip()):
        if name not in _ALIASES:
            raise argparse.ArgumentTypeError(f"unknown service {name!r}; choose from {', '.join(sorted(_ALIASES))}")
        if _ALIASES[name] not in chosen:
            chosen.append(_ALIASES[name])
    return chosen


def _services_up(args: argparse.Namespace) -> int:
    wanted = _only(args.only, ("broker",))
    for name in wanted:
        if name == "broker":
            info = broker.start(_say, fresh=args.fresh)
            created = topics.create_topics()
            _say(f"Topics ready ({len(created)}, {config.get('OSR_TOPIC_PARTITIONS')} partitions each): "
                 + ", ".join(created))
            _say(f"Broker {info['broker']} at {info['bootstrap']} (OSR_KAFKA_BOOTSTRAP)")
        elif name == "airflow":
            info = airflow_local.start(_say)
            _say(f"Airflow UI/API at {info['url']} — user {airflow_local.ADMIN_USER}, password in "
                 f"{airflow_local.passwords_file()} (`osr services status --show-password` prints it)")
        elif name == "dask":
            info = dask_cluster.start(_say)
            _say(f"export OSR_DASK_SCHEDULER={info['address']}   # point batch jobs at this scheduler")
        elif name == "mqtt":
            info = mosquitto_local.start(_say)
            _say(f"Mosquitto at mqtt://{info['address']} (OSR_MQTT_PORT); forward uploads with `osr mqtt bridge`")
    return 0


def _services_down(args: argparse.Namespace) -> int:
    wanted = _only(args.only, ("airflow", "dask", "mqtt", "broker"))
    for name in ("airflow", "dask", "mqtt", "broker"):  # the broker last: the others may still be talking to it
        if name not in wanted:
            continue
        if name == "broker":
            _say(f"broker ({broker.kind()}): {broker.stop()}")
        elif name == "airflow":
            _say(f"airflow: {airflow_local.stop()}")
        elif name == "mqtt":
            _say(f"mosquitto: {mosquitto_local.stop()}")
        else:
            _say(f"dask: {dask_cluster.stop()}")
    return 0


def _services_status(args: argparse.Namespace) -> int:
    show = getattr(args, "show_password", False)
    rows = [broker.status(), airflow_local.status(show_password=show), dask_cluster.status(), mosquitto_local.status()]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for row in rows:
        where = row.get("bootstrap") or row.get("url") or row.get("address")
        extra = ""
        if "answering" in row:
            extra = " (answering)" if row["answering"] else (" (NOT answering)" if row["state"] == "up" else "")
        if row["service"] == "airflow" and row["state"] == "up":
            secret = row["admin_password"] if show else f"in {row['password_file']}, --show-password prints it"
            extra = f" ({'healthy' if row['healthy'] else 'NOT healthy'}; user {row['admin_user']}, password {secret})"
        pid = f"pid {row['pid']}" if row.get("pid") else "no pid"
        print(f"{row['service']:<16} {row['state']:<8} {pid:<12} {where}{extra}   log: {row.get('log', '-')}")
    return 0


def _topics_create(args: argparse.Namespace) -> int:
    created = topics.create_topics(args.names, partitions=args.partitions, include_defaults=not args.no_defaults)
    for name, count in created.items():
        print(f"{name}\t{count}")
    return 0


def _topics_list(args: argparse.Namespace) -> int:
    for name, count in topics.list_topics().items():
        print(f"{name}\t{count}")
    return 0


def _topics_delete(args: argparse.Namespace) -> int:
    deleted = topics.delete_topics(args.names)
    print(f"deleted: {', '.join(deleted) or '(none existed)'}")
    return 0


def _guarded(handler):
    """Turn ServiceError (and a broker that cannot be reached) into a one-line error and exit code 1."""

    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except ServiceError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        except argparse.ArgumentTypeError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        except KafkaException as exc:
            print(f"error: broker at {config.get('OSR_KAFKA_BOOTSTRAP')} did not answer: {exc} "
                  "(is it up? `osr services status`)", file=sys.stderr)
            return 1

    return run


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `services` and `topics` to the `osr` command."""
    only_help = ("comma list of services: kafka (the broker chosen by OSR_BROKER: kafka, tansu or external, "
                 "plus its topics), airflow, dask, mqtt (a local Mosquitto on OSR_MQTT_PORT)")

    svc = subparsers.add_parser(
        "services", help="start, stop and inspect the local broker, Airflow and Dask",
        description="Local services, each in its own process group with a pid file in OSR_RUN_DIR and a log "
                    "in OSR_LOG_DIR. `up` without --only starts the broker (OSR_BROKER) and creates the topics; "
                    "Airflow and Dask are heavy and start only when named with --only. See infra/README.md.",
    )
    svc_sub = svc.add_subparsers(dest="services_command", required=True, metavar="{up,down,status}")
    up = svc_sub.add_parser("up", help="start services and wait until they answer",
                            description="Start services and wait until each answers (OSR_SERVICE_TIMEOUT seconds "
                                        "at most). Default: the broker plus every topic of TOPICS.")
    up.add_argument("--only", metavar="LIST", help=only_help + " (default: kafka)")
    up.add_argument("--fresh", action="store_true",
                    help="discard the local Apache Kafka broker's data before starting (only when it is down)")
    up.set_defaults(func=_guarded(_services_up))
    down = svc_sub.add_parser("down", help="stop services this project started (only processes named in our pid files)",
                              description="Stop services started by `osr services up`: SIGTERM to the process "
                                          "group, then SIGKILL after a timeout. A pid file naming a process that is "
                                          "not ours is removed and that process is left alone.")
    down.add_argument("--only", metavar="LIST", help=only_help + " (default: all)")
    down.set_defaults(func=_guarded(_services_down))
    st = svc_sub.add_parser("status", help="show up/down, pid, address and log of every service")
    st.add_argument("--json", action="store_true", help="print JSON instead of a table")
    st.add_argument("--show-password", action="store_true",
                    help="also print the Airflow admin password (otherwise only the file that holds it)")
    st.set_defaults(func=_guarded(_services_status))

    top = subparsers.add_parser("topics", help="create, list or delete the stream topics on OSR_KAFKA_BOOTSTRAP",
                                description="Stream topics (TOPICS, with OSR_TOPIC_PREFIX). Create them "
                                            "before any consumer subscribes: a confluent-kafka consumer that "
                                            "subscribes to a missing topic does not look again for 300 s.")
    top_sub = top.add_subparsers(dest="topics_command", required=True, metavar="{create,list,delete}")
    cr = top_sub.add_parser("create", help="create every topic of TOPICS (plus NAMEs) and wait until listed",
                            description="Idempotent: existing topics with the right partition count are fine; "
                                        "another count is an error.")
    cr.add_argument("names", nargs="*", metavar="NAME", help="extra topics to create")
    cr.add_argument("--partitions", type=int, help="partitions per topic (default: OSR_TOPIC_PARTITIONS)")
    cr.add_argument("--no-defaults", action="store_true", help="create only the NAMEs, not TOPICS")
    cr.set_defaults(func=_guarded(_topics_create))
    ls = top_sub.add_parser("list", help="list topics and their partition counts")
    ls.set_defaults(func=_guarded(_topics_list))
    rm = top_sub.add_parser("delete", help="delete the named topics (their data is lost)")
    rm.add_argument("names", nargs="+", metavar="NAME", help="topics to delete")
    rm.set_defaults(func=_guarded(_topics_delete))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="osr", description="OSR local services and topics")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
