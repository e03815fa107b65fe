"""`osr mqtt ...`: the MQTT -> Kafka bridge (long-running) and a publisher of a population's uploads.

`register(subparsers)` plugs it into `osr`; `python -m pipelines.ops.commands.mqtt mqtt bridge` runs it alone
(without the full CLI's imports: what the demo and tests start).
The local Mosquitto itself is `osr services up --only mqtt`.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from pipelines import config, rate_limited_log


def _say(message: str) -> None:
    print(message, flush=True)


def cmd_bridge(args) -> int:
    from pipelines.ingest.mqtt_bridge import run_bridge, topic_map

    try:
        mapping = topic_map()  # a bad OSR_MQTT_TOPIC_MAP stops here, before anything connects
    except ValueError as exc:
        print(f"osr mqtt bridge: error: {exc}", file=sys.stderr)
        return 2
    _say(f"mqtt bridge: {config.get('OSR_MQTT_HOST')}:{config.get('OSR_MQTT_PORT')} as "
         f"{config.get('OSR_MQTT_CLIENT_ID')} -> Kafka {config.get('OSR_KAFKA_BOOTSTRAP')}; map {mapping}")
    last = {"handled": 0}

    def progress(s):
        handled = s.forwarded + s.deadlettered
        rate = (handled - last["handled"]) / args.progress_every
        last["handled"] = handled
        _say(f"mqtt bridge: received {s.received} (redelivered {s.redelivered}), forwarded {s.forwarded}, "
             f"dead-lettered {s.deadlettered} {s.by_category or ''}, acked {s.acked}, pending {s.pending}, "
             f"kafka retries {s.kafka_retries}, {rate:.0f}/s, {'connected' if s.connected else 'NOT connected'}")

    stats = run_bridge(max_runtime_s=args.max_runtime, idle_exit_s=args.idle_exit, on_progress=progress,
                       progress_every_s=args.progress_every,
                       stats_file=Path(args.stats_file) if args.stats_file else None)
    _say(f"mqtt bridge stopped: {json.dumps(stats.__dict__)}")
    return 0


def cmd_publish(args) -> int:
    from pipelines.ingest.mqtt_publish import MQTT_KINDS, publish_population
    from pipelines.ingest.producer import CORRUPTIONS
    from pipelines.synthetic import population as P

    pop = P.generate(P.PopulationParams(n_users=args.users, n_items=args.items, stream_contexts_per_user=args.moments,
                                        seed=args.seed))
    r = publish_population(pop, args.malformed_share, limit=args.limit, rate_per_s=args.rate,
                           kinds=MQTT_KINDS if args.path_mismatches else CORRUPTIONS,
                           on_progress=lambda r: _say(f"  published {r.total}"))
    print(json.dumps({"valid": r.valid, "malformed": r.malformed, "by_corruption": r.by_corruption,
                      "no_subscribers": r.no_subscribers, "seconds": r.seconds}))
    if r.no_subscribers:
        print(f"warning: {r.no_subscribers} uploads matched no subscriber (has the bridge ever connected? "
              "its session must exist before devices publish)", file=sys.stderr)
        return 1
    return 0


def register(subparsers) -> argparse.ArgumentParser:
    """Add `mqtt bridge` and `mqtt publish` to an argparse subparsers object."""
    from pipelines.synthetic.population import PopulationParams

    m = subparsers.add_parser(
        "mqtt", help="MQTT ingestion: the Mosquitto -> Kafka bridge and a publisher of uploads",
        description="Devices publish uploads with QoS 1 on osr/<device_type>/<person>/<device> to Mosquitto "
                    "(`osr services up --only mqtt` starts a local one). The bridge forwards each valid upload to "
                    "the Kafka topic of its device type (OSR_MQTT_TOPIC_MAP) keyed by the person, dead-letters the "
                    "rest with a reason, and acknowledges a message only after Kafka confirmed it.")
    m.set_defaults(func=lambda a: (m.print_help(), 0)[1])
    sub = m.add_subparsers(dest="mqtt_command", metavar="{bridge,publish}")

    b = sub.add_parser(
        "bridge", help="run the MQTT -> Kafka bridge in the foreground until SIGTERM / Ctrl-C",
        description="Connects to OSR_MQTT_HOST:OSR_MQTT_PORT as OSR_MQTT_CLIENT_ID with a persistent MQTT 5 session "
                    "(OSR_MQTT_SESSION_EXPIRY_S), subscribes to osr/# with QoS 1 and, for each message: validates "
                    "the upload against the event contract, checks the topic path agrees with it (device_type, "
                    "user_id, device_id), produces it to its mapped Kafka topic keyed by user id (or a dead letter "
                    "with its reason to sensor.deadletter), and sends the PUBACK only after Kafka confirmed. A crash "
                    "loses nothing: Mosquitto redelivers the unacknowledged (at least once; the stream drops or "
                    "dead-letters the duplicates by event id). SIGTERM stops cleanly: what Kafka confirmed is acked, "
                    "the rest is redelivered to the next bridge. Logs counts every --progress-every seconds.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    b.add_argument("--progress-every", type=float, default=10.0, help="seconds between progress lines")
    b.add_argument("--stats-file", help="keep the running counts in this JSON file (rewritten twice a second)")
    b.add_argument("--idle-exit", type=float, default=None, help="stop after this many seconds without a message")
    b.add_argument("--max-runtime", type=float, default=None, help="stop after this many seconds")
    b.set_defaults(func=cmd_bridge)

    d = PopulationParams()
    p = sub.add_parser(
        "publish", help="publish a synthetic population's streamed day of uploads over MQTT (QoS 1)",
        description="What devices would send, one client for all of them: each upload on its device's topic, a "
                    "share deliberately malformed (the same mixing as `osr stream produce`), optionally some on a "
                    "path that disagrees with the payload. Waits for every PUBACK; exits 1 if any upload matched no "
                    "subscriber (start the bridge once first, so its session exists).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--users", type=int, default=d.n_users, help="people")
    p.add_argument("--items", type=int, default=d.n_items, help="items")
    p.add_argument("--moments", type=int, default=d.stream_contexts_per_user, help="streamed moments per person")
    p.add_argument("--seed", type=int, default=d.seed, help="population seed")
    p.add_argument("--malformed-share", type=float, default=0.02, help="share of deliberately broken uploads")
    p.add_argument("--path-mismatches", action="store_true",
                   help="let the broken ones include valid uploads on a topic path that disagrees with them")
    p.add_argument("--limit", type=int, default=None, help="publish at most this many uploads")
    p.add_argument("--rate", type=float, default=None, help="uploads per second (default: as fast as acked)")
    p.set_defaults(func=cmd_publish)
    return m


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="osr", description="OSR MQTT ingestion")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    rate_limited_log.install()  # a broker outage must not print a line per reconnect
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
