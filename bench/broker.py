"""Broker benchmark: jar install, start-to-ready, and confluent-kafka produce/consume rates.

Starts a throw-away broker (Apache Kafka by default, or tansu) on free ports with a
temporary OSR_HOME, reusing the Kafka jar cache (OSR_KAFKA_LIBS); produces N small
JSON messages to a fresh topic and consumes them back with a consumer group. The last
line printed is one JSON object. CPU timings on a shared 2-core machine are noisy.

    .venv/bin/python bench/broker.py [--broker kafka|tansu] [--messages 100000] [--partitions 4]
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

from confluent_kafka import Consumer, Producer  # noqa: E402

from pipelines import config  # noqa: E402
from pipelines.ops.services import broker, kafka_local, topics  # noqa: E402
from pipelines.ops.services.processes import find_free_port  # noqa: E402


def produce(bootstrap: str, topic: str, n: int) -> tuple[float, int]:
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "batch.num.messages": 10000})
    payloads = [json.dumps({"device": f"d{i % 500}", "seq": i, "value": i * 0.5}).encode() for i in range(n)]
    t0 = time.perf_counter()
    for i, payload in enumerate(payloads):
        while True:
            try:
                producer.produce(topic, value=payload, key=payloads[i][:14])
                break
            except BufferError:
                producer.poll(0.05)
        if i % 10000 == 0:
            producer.poll(0)
    left = producer.flush(60)
    seconds = time.perf_counter() - t0
    if left:
        raise RuntimeError(f"{left} messages not delivered")
    return seconds, sum(len(p) for p in payloads)


def consume(bootstrap: str, topic: str, n: int) -> tuple[float, float, int]:
    """Returns (seconds from subscribe to the first message, seconds from first to last message, count)."""
    consumer = Consumer({
        "bootstrap.servers": bootstrap, "group.id": f"bench-{time.time_ns()}", "session.timeout.ms": 6000,
        "auto.offset.reset": "earliest", "enable.auto.commit": False,
    })
    consumer.subscribe([topic])
    t0 = time.perf_counter()
    first = None
    count = 0
    deadline = t0 + 120
    while count < n and time.perf_counter() < deadline:
        for msg in consumer.consume(num_messages=10000, timeout=1.0):
            if msg.error() is None:
                if first is None:
                    first = time.perf_counter()
                count += 1
    end = time.perf_counter()
    consumer.close()
    if first is None:
        raise RuntimeError("nothing consumed")
    return first - t0, end - first, count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--broker", choices=("kafka", "tansu"), default="kafka")
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--partitions", type=int, default=4)
    args = parser.parse_args()

    libs = config.get("OSR_KAFKA_LIBS")
    with tempfile.TemporaryDirectory(prefix="osr-bench-") as home:
        os.environ.update({
            "OSR_HOME": home, "OSR_KAFKA_LIBS": libs, "OSR_BROKER": args.broker,
            "OSR_KAFKA_BOOTSTRAP": f"127.0.0.1:{find_free_port()}", "OSR_KAFKA_CONTROLLER_PORT": str(find_free_port()),
        })
        install = kafka_local.install() if args.broker == "kafka" else None
        info = broker.start(timeout=180)
        try:
            bootstrap = info["bootstrap"]
            topic = "bench.small"
            t0 = time.perf_counter()
            topics.create_topics([topic], partitions=args.partitions, include_defaults=False)
            create_s = time.perf_counter() - t0
            produce_s, payload_bytes = produce(bootstrap, topic, args.messages)
            join_s, consume_s, consumed = consume(bootstrap, topic, args.messages)
        finally:
            stop_t0 = time.perf_counter()
            stopped = broker.stop()
            stop_s = time.perf_counter() - stop_t0
    result = {
        "broker": args.broker,
        "kafka_version": kafka_local.kafka_version() if args.broker == "kafka" else None,
        "install": install,
        "start_to_ready_s": info["ready_seconds"],
        "create_topic_s": round(create_s, 3),
        "messages": args.messages,
        "avg_message_bytes": round(payload_bytes / args.messages, 1),
        "partitions": args.partitions,
        "produce_s": round(produce_s, 3),
        "produce_msg_per_s": round(args.messages / produce_s),
        "consumer_join_s": round(join_s, 2),
        "consume_s": round(consume_s, 3),
        "consume_msg_per_s": round(consumed / consume_s) if consume_s else None,
        "consumed": consumed,
        "stop_s": round(stop_s, 2),
        "stop": stopped,
        "cpu_count": os.cpu_count(),
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(result))
    return 0 if consumed == args.messages else 1


if __name__ == "__main__":
    sys.exit(main())
