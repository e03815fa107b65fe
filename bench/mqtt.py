"""MQTT ingestion benchmark: uploads/s through Mosquitto -> bridge -> Kafka vs straight into Kafka.

Starts a throw-away Apache Kafka and Mosquitto on free ports in a temporary OSR_HOME (reusing the
Kafka jar cache) and sends the same population's uploads (all valid) three ways, each onto its
own topic prefix (generating the uploads is timed alone first: the first two ways include it):

  kafka    produce_population straight to sensor.raw, timed until the last delivery is confirmed;
  mqtt     publish_population over MQTT with the bridge running, timed until Kafka's high
           watermarks hold every upload (so the publisher, Mosquitto and the bridge all count);
  prebuilt the same two ways with the uploads built beforehand (confluent-kafka producer vs a paho
           publisher -> Mosquitto -> bridge): the pipes alone, without the generator;
  backlog  the same uploads queued in Mosquitto while the bridge is away, then forwarded by a
           fresh bridge: first to last Kafka CreateTime (the bridge alone, without the publisher).

Progress goes to stderr; the last line on stdout is one JSON object. On a shared 2-core machine
the figures move with the load (load_avg_1m is reported); compare the ways within one run.

    .venv/bin/python bench/mqtt.py [--users 300] [--moments 8] [--partitions 4]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import psutil  # noqa: E402
from confluent_kafka import Consumer, Producer, TopicPartition  # noqa: E402

from pipelines import config  # noqa: E402
from pipelines.contracts import TOPICS  # noqa: E402
from pipelines.ingest.kafka_clients import produce_waiting, producer_config  # noqa: E402
from pipelines.ingest.mqtt_publish import publish_population, topic_for  # noqa: E402
from pipelines.ingest.producer import ProduceReport, mixed_uploads, produce_population  # noqa: E402
from pipelines.ops.services import broker, mosquitto_local, topics  # noqa: E402
from pipelines.ops.services.processes import find_free_port  # noqa: E402
from pipelines.synthetic import population as P  # noqa: E402


def say(msg: str) -> None:
    print(f"[bench/mqtt {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def use_prefix(name: str) -> str:
    os.environ["OSR_TOPIC_PREFIX"] = f"{name}."
    topic = config.topic(TOPICS.sensor_raw)
    topics.create_topics([topic, config.topic(TOPICS.sensor_deadletter)], include_defaults=False)
    return topic


def _consumer() -> Consumer:
    return Consumer({"bootstrap.servers": config.get("OSR_KAFKA_BOOTSTRAP"), "group.id": f"bench-{time.time_ns()}",
                     "auto.offset.reset": "earliest", "enable.auto.commit": False})


def in_topic(c: Consumer, topic: str, partitions: int) -> int:
    return sum(c.get_watermark_offsets(TopicPartition(topic, p), timeout=5)[1] for p in range(partitions))


def wait_count(topic: str, n: int, partitions: int, timeout: float = 600.0) -> float:
    """Poll the high watermarks until `n` records are in; returns the monotonic time they were."""
    c = _consumer()
    deadline = time.monotonic() + timeout
    try:
        while (have := in_topic(c, topic, partitions)) < n:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{topic}: {have} of {n} records after {timeout:.0f} s")
            time.sleep(0.02)
        return time.monotonic()
    finally:
        c.close()


def create_time_span(topic: str, n: int) -> tuple[float, int]:
    """Seconds from the first to the last record's CreateTime, and how many records were read."""
    c = _consumer()
    c.subscribe([topic])
    stamps: list[int] = []
    deadline = time.monotonic() + 120
    try:
        while len(stamps) < n and time.monotonic() < deadline:
            stamps += [m.timestamp()[1] for m in c.consume(1000, timeout=1.0) if m.error() is None]
    finally:
        c.close()
    return (max(stamps) - min(stamps)) / 1000.0, len(stamps)


def prebuilt(pop) -> list[tuple[str, bytes, bytes]]:
    """(MQTT topic, key, payload) of every upload, built once, so the next two ways time only the pipes."""
    return [(topic_for(e, None), e["user_id"].encode(), v)
            for _k, e, _kind, v in mixed_uploads(pop, np.random.default_rng(11), 0.0, None, (), None, ProduceReport())]


def produce_prebuilt(items, topic: str) -> float:
    p = Producer(producer_config())
    t0 = time.monotonic()
    for _t, key, value in items:
        produce_waiting(p, topic, key, value)
        p.poll(0)
    if p.flush(300):
        raise RuntimeError("undelivered uploads")
    return time.monotonic() - t0


def publish_prebuilt(items, max_pending: int = 500) -> float:
    from collections import deque

    from paho.mqtt import client as mqtt

    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-publisher", protocol=mqtt.MQTTv5)
    c.max_inflight_messages_set(max_pending)
    c.max_queued_messages_set(0)
    c.connect(config.get("OSR_MQTT_HOST"), int(config.get("OSR_MQTT_PORT")))
    c.loop_start()
    time.sleep(0.5)  # CONNACK
    t0 = time.monotonic()
    pending: deque = deque()
    for mqtt_topic, _key, value in items:
        pending.append(c.publish(mqtt_topic, value, qos=1))
        while len(pending) > max_pending:
            pending.popleft().wait_for_publish(60)
    while pending:
        pending.popleft().wait_for_publish(60)
    c.disconnect()
    c.loop_stop()
    return t0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=300)
    parser.add_argument("--moments", type=int, default=8)
    parser.add_argument("--partitions", type=int, default=4)
    args = parser.parse_args()

    libs = config.get("OSR_KAFKA_LIBS")
    result: dict = {"users": args.users, "moments": args.moments, "partitions": args.partitions,
                    "cpu_count": os.cpu_count()}
    with tempfile.TemporaryDirectory(prefix="osr-bench-mqtt-") as home:
        os.environ.update({
            "OSR_HOME": home, "OSR_KAFKA_LIBS": libs, "OSR_BROKER": "kafka",
            "OSR_KAFKA_BOOTSTRAP": f"127.0.0.1:{find_free_port()}", "OSR_KAFKA_CONTROLLER_PORT": str(find_free_port()),
            "OSR_MQTT_PORT": str(find_free_port()), "OSR_TOPIC_PARTITIONS": str(args.partitions),
            "OSR_MQTT_CLIENT_ID": "bench-bridge",
        })
        pop = P.generate(P.PopulationParams(n_users=args.users, stream_contexts_per_user=args.moments))
        try:
            say("starting Kafka and Mosquitto")
            broker.start(timeout=180)
            mosquitto_local.start(timeout=30)

            warm = use_prefix("warmup")  # a fresh broker makes the first idempotent producer wait for its PID
            p = Producer(producer_config())
            p.produce(warm, b"warm-up")
            p.flush(60)

            say("generate: building the uploads alone (both ways below pay this too)")
            t0 = time.monotonic()
            gen = sum(1 for _ in mixed_uploads(pop, np.random.default_rng(11), 0.0, None, (), None, ProduceReport()))
            gen_s = time.monotonic() - t0
            result["generate_only"] = {"seconds": round(gen_s, 3), "uploads_per_s": round(gen / gen_s)}

            topic = use_prefix("direct")
            say("kafka: producing straight to Kafka")
            t0 = time.monotonic()
            sent = produce_population(pop, malformed_share=0.0)
            direct_s = time.monotonic() - t0
            n = sent.total
            assert in_topic(_consumer(), topic, args.partitions) == n
            result["uploads"] = n
            result["kafka"] = {"seconds": round(direct_s, 3), "uploads_per_s": round(n / direct_s)}
            say(f"kafka: {n} uploads in {direct_s:.2f} s")

            topic = use_prefix("viamqtt")
            pid = mosquitto_local.start_bridge(say, timeout=120)
            say("mqtt: publishing over MQTT with the bridge running")
            cpu0 = psutil.Process(pid).cpu_times()
            t0 = time.monotonic()
            pub = publish_population(pop, malformed_share=0.0)
            done = wait_count(topic, n, args.partitions)
            cpu1 = psutil.Process(pid).cpu_times()
            mqtt_s = done - t0
            bridge_cpu = (cpu1.user + cpu1.system) - (cpu0.user + cpu0.system)
            result["mqtt"] = {"seconds": round(mqtt_s, 3), "uploads_per_s": round(n / mqtt_s),
                              "publish_seconds": pub.seconds, "publish_uploads_per_s": round(n / pub.seconds),
                              "bridge_cpu_s": round(bridge_cpu, 2),
                              "bridge_cpu_us_per_upload": round(1e6 * bridge_cpu / n),
                              "no_subscribers": pub.no_subscribers}
            say(f"mqtt: {n} uploads in {mqtt_s:.2f} s (publisher done after {pub.seconds:.2f} s)")
            say("mqtt bridge: " + mosquitto_local.BRIDGE.stop(60))

            items = prebuilt(pop)
            topic = use_prefix("prebuilt_kafka")
            say("prebuilt: the same uploads built beforehand, straight into Kafka")
            pk = produce_prebuilt(items, topic)
            result["prebuilt_kafka"] = {"seconds": round(pk, 3), "uploads_per_s": round(n / pk)}
            topic = use_prefix("prebuilt_mqtt")
            mosquitto_local.start_bridge(say, timeout=120)
            say("prebuilt: the same uploads built beforehand, over MQTT through the bridge")
            t0 = publish_prebuilt(items)
            pm = wait_count(topic, n, args.partitions) - t0
            result["prebuilt_mqtt"] = {"seconds": round(pm, 3), "uploads_per_s": round(n / pm)}
            result["prebuilt_mqtt_vs_kafka"] = round(pk / pm, 3)
            say("mqtt bridge: " + mosquitto_local.BRIDGE.stop(60))

            topic = use_prefix("backlog")
            mosquitto_local.start_bridge(say, timeout=120)  # the new prefix: a new bridge, same session
            say("mqtt bridge: " + mosquitto_local.BRIDGE.stop(60))
            say("backlog: publishing while the bridge is away")
            pub = publish_population(pop, malformed_share=0.0)
            mosquitto_local.start_bridge(say, timeout=120)
            wait_count(topic, n, args.partitions)
            span, read = create_time_span(topic, n)
            stats = mosquitto_local.bridge_stats()
            result["backlog"] = {"seconds": round(span, 3), "uploads_per_s": round(n / span) if span else None,
                                 "records_read": read, "redelivered": stats.get("redelivered"),
                                 "no_subscribers": pub.no_subscribers}
            say(f"backlog: {n} queued uploads forwarded in {span:.2f} s")
            result["mqtt_vs_kafka"] = round(result["mqtt"]["uploads_per_s"] / result["kafka"]["uploads_per_s"], 3)
            result["inflight"] = int(config.get("OSR_MQTT_INFLIGHT"))
            result["load_avg_1m"] = round(os.getloadavg()[0], 2)
        finally:
            say("mqtt bridge: " + mosquitto_local.BRIDGE.stop(60))
            say("mosquitto: " + mosquitto_local.stop())
            say("kafka: " + broker.stop())
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
