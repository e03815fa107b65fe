"""Real-time path benchmark: the full chain (validate -> fuse -> features -> score -> tune) in real Faust
workers on a real Kafka broker, against a raw confluent-kafka reader of the same topic in the same run.

Parts (a throw-away local Apache Kafka on free ports, a temporary OSR_HOME, a population loaded and
the nightly batch run so the workers serve a real snapshot; a fresh topic prefix and app id per part):
  chain      the pure chain (pipelines.online.chain) in this process over the same uploads:
             per-stage cost per upload and its uploads/s without Kafka or Faust;
  raw        a confluent-kafka consumer reading the backlog of sensor.raw (messages/s);
  drain_1    one worker, its group settled, then the uploads as fast as the broker takes them:
             readings/s through the whole chain, measured from the tuner decisions it publishes
             (one per moment) from the 5 % mark to the last;
  drain_2    the same with two workers of one group (two_worker_speedup = drain_2 / drain_1);
  latency    one worker and the push gateway, uploads offered at a fixed rate (default 10,000
             readings/s); produce -> notification (read_committed, as a user's device would see it)
             and produce -> decision latency per moment, from the send time of the moment's last
             upload; the share of decisions dropped as stale.
Memory: the worker's RSS after drain_1, and the memory a person's state takes in the worker's table
(orjson bytes; as Python objects for comparison), extrapolated to 100,000 people (reported as such,
not measured at that size).

Progress on stderr; the last stdout line is one JSON object. On this shared 2-core machine the
broker, the bench's own producer and consumers and the workers compete for the cores: figures vary
between runs, ratios inside a run are what to compare.

    .venv/bin/python bench/stream.py [--json] [--users 400] [--contexts 8] [--rate 10000] [--latency-s 40]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipelines import config  # noqa: E402
from pipelines.contracts import TOPICS  # noqa: E402
from pipelines.ops.services.processes import find_free_port  # noqa: E402

READINGS = 60


def say(msg: str) -> None:
    print(f"[stream {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    v = sorted(values)
    return v[min(len(v) - 1, int(round(q / 100 * (len(v) - 1))))]


# --- setup ------------------------------------------------------------------------------------------

def start_broker(home: Path) -> None:
    from pipelines.ops.services import broker

    os.environ.update({"OSR_HOME": str(home), "OSR_BROKER": "kafka",
                       "OSR_KAFKA_BOOTSTRAP": f"127.0.0.1:{find_free_port()}",
                       "OSR_KAFKA_CONTROLLER_PORT": str(find_free_port())})
    broker.start(timeout=180)


def fresh_stream(tag: str) -> None:
    """A new topic prefix and app id: an empty input, no committed offsets, empty tables."""
    from pipelines.ops.services import topics

    os.environ.update({"OSR_TOPIC_PREFIX": f"b{tag}.", "OSR_FAUST_APP_ID": f"osr-bench-{tag}",
                       "OSR_PUSH_GATEWAY_ID": f"gw-{tag}"})
    topics.create_topics()


def prepare(users: int, contexts: int):
    """Population, store, nightly model; returns (population, uploads in live order as (key, bytes))."""
    from pipelines.reco import nightly
    from pipelines.store.db import connect, migrate
    from pipelines.store.population_loader import load_population
    from pipelines.synthetic import population as P
    from pipelines.synthetic.replay import live_order

    pop = P.generate(P.PopulationParams(n_users=users, stream_contexts_per_user=contexts))
    con = connect()
    migrate(con)
    load_population(con, pop)
    con.close()
    say("population loaded; running the nightly batch for a real snapshot")
    nightly.run_all(rank=16, iterations=6)
    import orjson

    uploads = [(e["user_id"].encode(), orjson.dumps(e), e) for e, _t in live_order(pop, "stream")]
    return pop, uploads


# --- parts ------------------------------------------------------------------------------------------

def bench_chain(uploads, batch: int = 200) -> dict:
    """The chain in-process: per-stage seconds per upload, uploads/s, the state per person."""
    import orjson

    from pipelines.filtering.stage import Arrival
    from pipelines.online.chain import Chain
    from pipelines.online.snapshot import load_snapshot

    snap = load_snapshot()
    chain, states = Chain(), {}
    seconds = dict.fromkeys(("filter", "features", "score", "tune"), 0.0)
    n_dec = 0
    t0 = time.perf_counter()
    for i in range(0, len(uploads), batch):
        by: dict = {}
        for k, (key, value, _e) in enumerate(uploads[i:i + batch]):
            person = key.decode()
            by.setdefault(person, []).append(Arrival(value, f"raw:0:{i + k}", person, time.time()))
        out = chain.run(by, states.get, snap, now=time.time())
        states.update(out.states)
        n_dec += len(out.decisions)
        for s, v in out.seconds.items():
            seconds[s] += v
    wall = time.perf_counter() - t0
    n = len(uploads)
    state_bytes = [len(orjson.dumps(s)) for s in states.values()]
    import gc
    import tracemalloc

    gc.collect()
    tracemalloc.start()
    as_objects = orjson.loads(orjson.dumps(states))  # the states as Python objects (a dict-valued table)
    objects_bytes, _peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del as_objects
    gc.collect()
    tracemalloc.start()
    as_bytes = {k: orjson.dumps(v) for k, v in states.items()}  # as the worker's table holds them (orjson bytes)
    held, _peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del as_bytes
    return {"uploads": n, "moments": n_dec, "uploads_per_s": round(n / wall, 1),
            "readings_per_s": round(n * READINGS / wall),
            "us_per_upload": {s: round(v / n * 1e6, 1) for s, v in seconds.items()},
            "state_json_bytes_per_person": round(sum(state_bytes) / max(len(state_bytes), 1)),
            "state_table_bytes_per_person": round(held / max(len(states), 1)),
            "state_as_python_objects_bytes_per_person": round(objects_bytes / max(len(states), 1))}


def produce(uploads, rate_per_s: float | None = None, sent_at: dict | None = None) -> float:
    """Send the uploads to sensor.raw (at rate_per_s uploads/s, or as fast as the broker takes them)."""
    from confluent_kafka import Producer

    from pipelines.ingest.kafka_clients import produce_waiting, producer_config

    p = Producer(producer_config())
    topic = config.topic(TOPICS.sensor_raw)
    t0 = time.monotonic()
    for k, (key, value, e) in enumerate(uploads):
        if rate_per_s:
            ahead = t0 + k / rate_per_s - time.monotonic()
            if ahead > 0:
                p.poll(ahead)
        produce_waiting(p, topic, key, value)
        if sent_at is not None:
            sent_at[e["event_id"]] = time.time()
        p.poll(0)
    p.flush(120)
    return time.monotonic() - t0


def raw_consume(n: int) -> dict:
    from confluent_kafka import Consumer

    from pipelines.ingest.kafka_clients import consumer_config

    c = Consumer({**consumer_config(f"raw-{uuid.uuid4().hex[:6]}"), "auto.offset.reset": "earliest"})
    c.subscribe([config.topic(TOPICS.sensor_raw)])
    got, t_first = 0, None
    deadline = time.monotonic() + 120
    while got < n and time.monotonic() < deadline:
        for m in c.consume(1000, timeout=0.5):
            if m.error():
                continue
            if t_first is None:
                t_first = time.monotonic()
            got += 1
    dt = time.monotonic() - (t_first or time.monotonic())
    c.close()
    return {"messages": got, "raw_consume_per_s": round(got / dt) if dt > 0 else None}


class Collector(threading.Thread):
    """Reads a topic from the start (read_committed) and records (moment id, receive time, value)."""

    def __init__(self, topic_attr: str):
        super().__init__(daemon=True)
        from confluent_kafka import Consumer

        from pipelines.ingest.kafka_clients import consumer_config

        self.c = Consumer({**consumer_config(f"col-{uuid.uuid4().hex[:6]}"), "auto.offset.reset": "earliest",
                           "isolation.level": "read_committed", "fetch.wait.max.ms": 5})
        self.c.subscribe([config.topic(getattr(TOPICS, topic_attr))])
        self.rows: list[tuple[str, float, dict]] = []
        self.stop = False

    def run(self):
        while not self.stop:
            # wait for one record, then take what is there: consume(n, t) waits t for n records, which
            # would add up to t to every latency measured here
            first = self.c.consume(1, timeout=0.05)
            for m in (*first, *(self.c.consume(500, timeout=0) if first else ())):
                if m.error():
                    continue
                now = time.time()
                v = json.loads(m.value())
                self.rows.append((v.get("event_id"), now, v))
        self.c.close()


def start_workers(n: int) -> list[int]:
    from pipelines.ops import demo

    pids = [demo.start_worker(i, web_port=find_free_port()) for i in range(n)]
    for i, pid in enumerate(pids):
        demo.wait_worker_ready(pid, timeout=180, progress=lambda m: None, index=i)
    return pids


def stop_workers(n: int) -> None:
    from pipelines.ops import demo

    for i in range(n):
        demo.worker_service(i).stop(60)


def rss_mb(pid: int) -> float | None:
    import psutil

    try:
        return round(psutil.Process(pid).memory_info().rss / 2**20, 1)
    except psutil.Error:
        return None


def drain(uploads, workers: int, moments: int, settle_s: float = 8.0) -> dict:
    """The workers first (their group settled, so no rebalance falls in the measurement), then the
    uploads as fast as the broker takes them: readings/s from the decisions (one per moment)."""
    fresh_stream(f"d{workers}{uuid.uuid4().hex[:4]}")
    col = Collector("tuner_decisions")
    col.start()
    t_start = time.monotonic()
    pids = start_workers(workers)
    time.sleep(settle_s)
    say(f"{workers} worker(s) ready after {time.monotonic() - t_start:.1f} s; sending {len(uploads)} uploads")
    produce(uploads)
    deadline = time.monotonic() + 600
    while len({r[0] for r in col.rows}) < moments and time.monotonic() < deadline:
        time.sleep(0.2)
    rss = [rss_mb(p) for p in pids]
    stop_workers(workers)
    col.stop = True
    col.join(10)
    times = sorted(t for _e, t, _v in col.rows)
    done = len({r[0] for r in col.rows})
    # steady state: from the 5 % to the last decision (start-up and the first rebalance left out)
    lo = times[int(0.05 * len(times))] if times else 0
    dt = (times[-1] - lo) if times else 0
    share = (len(times) - int(0.05 * len(times))) / max(len(times), 1)
    uploads_per_s = share * len(uploads) / dt if dt > 0 else None
    return {"workers": workers, "moments_decided": done, "moments_expected": moments,
            "uploads_per_s": round(uploads_per_s, 1) if uploads_per_s else None,
            "readings_per_s": round(uploads_per_s * READINGS) if uploads_per_s else None,
            "messages_per_s": round(uploads_per_s) if uploads_per_s else None,
            "worker_rss_mb": rss}


def latency(uploads, rate_readings: float, seconds: float) -> dict:
    from pipelines.ops import demo

    fresh_stream(f"l{uuid.uuid4().hex[:4]}")
    pids = start_workers(1)
    gw = demo.start_gateway()
    time.sleep(5)  # the gateway joins its group and initialises its transactions
    decisions, notes = Collector("tuner_decisions"), Collector("notifications")
    decisions.start()
    notes.start()
    rate = rate_readings / READINGS
    n = min(len(uploads), int(rate * seconds))
    sent: dict[str, float] = {}
    say(f"offering {rate:.0f} uploads/s ({rate_readings:.0f} readings/s) for {n / rate:.0f} s")
    t0 = time.time()
    produce(uploads[:n], rate_per_s=rate, sent_at=sent)
    expected = len({f"{e['user_id']}:{e['event_id'][len(e['device_id']) + 1:]}" for _k, _v, e in uploads[:n]})
    deadline = time.monotonic() + 300
    while len({r[0] for r in decisions.rows}) < expected and time.monotonic() < deadline:
        time.sleep(0.2)  # every moment decided (a slow run shows up as latency, not as missing samples)
    time.sleep(3)  # the last pushes through the gateway
    for c in (decisions, notes):
        c.stop = True
        c.join(10)
    worker_rss = rss_mb(pids[0])
    demo.GATEWAY.stop(60)
    stop_workers(1)
    log_file = demo.worker_service(0).log_file
    batch_log = [line.split("process: ", 1)[1].strip() for line in
                 (log_file.read_text(errors="replace").splitlines() if log_file.exists() else []) if "process: " in line]
    # a moment's send time is its last upload's (the moment is complete only then)
    moment_sent: dict[str, float] = {}
    for key, _v, e in uploads[:n]:
        mid = f"{e['user_id']}:{e['event_id'][len(e['device_id']) + 1:]}"
        moment_sent[mid] = max(moment_sent.get(mid, 0.0), sent[e["event_id"]])

    def lat(rows, warm_s: float):
        out = []
        for mid, t, _v in rows:
            if mid in moment_sent and moment_sent[mid] - t0 >= warm_s:
                out.append((t - moment_sent[mid]) * 1000)
        return out

    d_all, d_warm = lat(decisions.rows, 0), lat(decisions.rows, 5)
    n_all, n_warm = lat(notes.rows, 0), lat(notes.rows, 5)
    stale = sum(str(v.get("reason", "")).startswith("stale") for _m, _t, v in decisions.rows)
    return {"offered_readings_per_s": rate_readings, "uploads_offered": n, "moments": len(moment_sent),
            "decisions": len(decisions.rows), "notifications": len(notes.rows),
            "p50_ms": _r(pct(n_warm, 50)), "p99_ms": _r(pct(n_warm, 99)),
            "p50_ms_incl_first_5s": _r(pct(n_all, 50)), "p99_ms_incl_first_5s": _r(pct(n_all, 99)),
            "decision_p50_ms": _r(pct(d_warm, 50)), "decision_p99_ms": _r(pct(d_warm, 99)),
            "stale_dropped_share": round(stale / max(len(decisions.rows), 1), 4), "gateway_pid": gw,
            "worker_rss_mb": worker_rss, "worker_batch_log": batch_log[-6:]}


def _r(v):
    return None if v is None else round(v, 1)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", action="store_true", help="print only the JSON result on stdout (progress on stderr)")
    ap.add_argument("--users", type=int, default=400, help="people in the population (default 400)")
    ap.add_argument("--contexts", type=int, default=8, help="streamed moments per person (default 8)")
    ap.add_argument("--rate", type=float, default=10_000, help="offered readings/s for the latency part (default 10,000)")
    ap.add_argument("--latency-s", type=float, default=40, help="seconds of offered load (default 40)")
    ap.add_argument("--only-latency", action="store_true", help="run only the latency part (a quick check)")
    args = ap.parse_args()

    home = Path(tempfile.mkdtemp(prefix="osr-bench-stream-"))
    from pipelines.ops.services import broker

    start_broker(home)
    try:
        fresh_stream("setup")
        pop, uploads = prepare(args.users, args.contexts)
        say(f"{len(uploads)} uploads ({len(uploads) * READINGS} readings) from {args.users} people")
        if args.only_latency:
            lat = latency(uploads, args.rate, args.latency_s)
            print(json.dumps({"p50_ms": lat["p50_ms"], "p99_ms": lat["p99_ms"], "stages": {"latency": lat}}))
            return 0
        chain = bench_chain(uploads)
        say(f"chain in-process: {chain['uploads_per_s']} uploads/s, per upload {chain['us_per_upload']} us")
        fresh_stream(f"r{uuid.uuid4().hex[:4]}")
        produce(uploads)
        raw = raw_consume(len(uploads))
        say(f"raw consumer: {raw['raw_consume_per_s']} msg/s")
        d1 = drain(uploads, 1, chain["moments"])
        say(f"one worker: {d1['readings_per_s']} readings/s")
        d2 = drain(uploads, 2, chain["moments"])
        say(f"two workers: {d2['readings_per_s']} readings/s")
        lat = latency(uploads, args.rate, args.latency_s)
        say(f"latency at {args.rate:.0f} readings/s: p50 {lat['p50_ms']} ms, p99 {lat['p99_ms']} ms")
    finally:
        broker.stop()
    per_person = chain["state_table_bytes_per_person"]
    result = {
        "events_per_s": d1["readings_per_s"], "messages_per_s": d1["messages_per_s"],
        "raw_consume_per_s": raw["raw_consume_per_s"],
        "worker_vs_raw": (round(d1["messages_per_s"] / raw["raw_consume_per_s"], 4)
                          if d1["messages_per_s"] and raw["raw_consume_per_s"] else None),
        "p50_ms": lat["p50_ms"], "p99_ms": lat["p99_ms"],
        "two_worker_speedup": (round(d2["readings_per_s"] / d1["readings_per_s"], 2)
                               if d1["readings_per_s"] and d2["readings_per_s"] else None),
        "worker_rss_mb": (d1["worker_rss_mb"] or [None])[0],
        # measured per person (tracemalloc over the table's values: orjson bytes) times 100,000: extrapolated
        "state_mb_100k_people_extrapolated": round(per_person * 100_000 / 2**20),
        "stale_dropped_share": lat["stale_dropped_share"],
        "stages": {"chain_in_process": chain, "raw": raw, "drain_1": d1, "drain_2": d2, "latency": lat},
        "load_avg": os.getloadavg()[0],
    }
    print(json.dumps(result, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
