"""Effectively-once benchmark: what redelivery memory, decision memory and the transactional push gateway cost.

Part 1 (no broker): per-upload cost of `filtering.stage.admit` (validation, a person's moment
assembly and fusion, and the redelivery memory of the last REMEMBER moments) against
`parse_sensor_event` + grouping + `moment.filter_moment` (the plain fused filter state), on the
synthetic stream's uploads with per-person states carried along; the JSON size of the per-person
table value, with and without the memory; per-event cost of `tuner.decide` (remembers
every decision by event id) against `tuner._decide_new` (the same decision without the memory), and
the JSON size of one person's tuner state after 50 decisions with and without the "decided" memory.

Part 2 (a throw-away local Apache Kafka broker on free ports, temporary OSR_HOME, unique topic prefix):
N approved pushes (~5 % exact duplicates of earlier ones) on push.approved, drained (a) by
`push_gateway.run_gateway` (transactional consume-transform-produce with dedupe by (user_id, event_id))
and (b) by a plain at-least-once relay (consume -> produce, async offset commit per batch, no
transactions, no dedupe) in another consumer group. Rates are steady-state: messages after the first
batch divided by the time from the end of the first batch to the end of the last (gateway: observed
through on_progress, called after every batch; relay: after its final flush), so group join, the
gateway's delivered-set rebuild and its idle_exit_s wait are not in them (they are reported apart).
Then a read_committed reader checks `notifications`: exactly N - duplicates messages, no (user_id,
event_id) twice.

Progress goes to stderr; the last stdout line is one JSON object. CPU timings on a shared 2-core
machine are noisy.

    .venv/bin/python bench/exactly_once.py [--json] [--n 20000] [--uploads 2000]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipelines import config  # noqa: E402
from pipelines.contracts import TOPICS, Notification, problem  # noqa: E402
from pipelines.filtering.moment import filter_moment, moment_of  # noqa: E402
from pipelines.filtering.stage import REMEMBER, Arrival, admit, remember  # noqa: E402
from pipelines.ingest.validation import parse_sensor_event  # noqa: E402
from pipelines.ops.services import broker, kafka_local, topics  # noqa: E402
from pipelines.ops.services.processes import find_free_port  # noqa: E402
from pipelines.online import tuner as tuner_mod  # noqa: E402
from pipelines.online.push_gateway import run_gateway  # noqa: E402


def say(msg: str) -> None:
    print(f"[exactly_once {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def best_of(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


# --- part 1a: filter stage ----------------------------------------------------------------------

def load_uploads(limit: int) -> list[tuple[str, bytes, str]]:
    """(user_id, upload JSON bytes, source) in stream order, at most `limit`."""
    from pipelines.synthetic.population import PopulationParams, generate, sensor_events

    pop = generate(PopulationParams(n_users=100, stream_contexts_per_user=10, history_contexts_per_user=2))
    out = []
    for k, (event, _truth) in enumerate(sensor_events(pop, "stream")):
        if k >= limit:
            break
        out.append((event["user_id"], json.dumps(event).encode(), f"{TOPICS.sensor_raw}:0:{k}"))
    return out


def bench_filter(uploads: list, repeats: int) -> dict:
    """The stage (per-person moment assembly + fusion + redelivery memory of the last REMEMBER moments)
    against plain fusion (group a moment's uploads, fuse, keep only the filter state)."""
    devices: dict[str, set] = {}
    for uid, raw, _s in uploads:
        devices.setdefault(uid, set()).add(json.loads(raw)["device_id"])
    devs = {u: sorted(d) for u, d in devices.items()}
    row = [0.0] * 26  # a feature row's values, as the chain remembers them

    def with_memory(collect: list | None = None):
        tables: dict[str, dict] = {}
        dead = 0
        for uid, raw, source in uploads:
            res, st = admit([Arrival(raw, source, uid, 0.0)], tables.get(uid), devices_of=devs.get)
            dead += len(res.dead)
            for fused, sources, released_by in res.moments:
                remember(st, fused, sources, row, released_by)
            tables[uid] = st
            if collect is not None:
                collect.append(len(json.dumps(st)))
        return dead

    def plain(collect: list | None = None):
        filters: dict[str, dict] = {}
        waiting: dict[tuple, list] = {}
        dead = 0
        for uid, raw, _source in uploads:
            upload, reason = parse_sensor_event(raw)
            if reason is not None:
                dead += 1
                continue
            key = (uid, moment_of(upload))
            waiting.setdefault(key, []).append(upload)
            if len(waiting[key]) == len(devs[uid]):
                _f, filters[uid] = filter_moment(uid, key[1], waiting.pop(key), filters.get(uid))
                if collect is not None:
                    collect.append(len(json.dumps(filters[uid])))
        return dead

    sizes_mem: list[int] = []
    sizes_plain: list[int] = []
    dead_mem = with_memory(sizes_mem)
    dead_plain = plain(sizes_plain)
    t_mem = best_of(with_memory, repeats)
    t_plain = best_of(plain, repeats)
    n = len(uploads)

    # a redelivered upload (same source) and a duplicate (same event id, another source), for scale
    uid, raw, source = uploads[-1]
    tables: dict[str, dict] = {}
    for u, r, src in uploads:
        res, st = admit([Arrival(r, src, u, 0.0)], tables.get(u), devices_of=devs.get)
        for fused, sources, released_by in res.moments:
            remember(st, fused, sources, row, released_by)
        tables[u] = st
    again, st_again = admit([Arrival(raw, source, uid, 0.0)], tables[uid], devices_of=devs.get)
    dup, _ = admit([Arrival(raw, source + "x", uid, 0.0)], tables[uid], devices_of=devs.get)

    us_mem = t_mem / n * 1e6
    us_plain = t_plain / n * 1e6
    return {
        "uploads": n,
        "filter_deadletters_with_memory": dead_mem,
        "filter_deadletters_plain": dead_plain,
        "filter_us_per_upload_with_memory": round(us_mem, 1),
        "filter_us_per_upload_plain": round(us_plain, 1),
        "filter_cost_ratio": round(us_mem / us_plain, 3),
        "state_changelog_bytes_with_memory": round(sum(sizes_mem) / max(len(sizes_mem), 1)),
        "state_changelog_bytes_plain": round(sum(sizes_plain) / max(len(sizes_plain), 1)),
        "state_changelog_bytes_ratio": round(sum(sizes_mem) / max(sum(sizes_plain), 1), 2),
        "filter_remember": REMEMBER,
        "redelivery_check_ok": (len(again.replays) == 1 and not again.dead and st_again["filters"] == tables[uid]["filters"]
                                and len(dup.dead) == 1 and "duplicate" in dup.dead[0]["reason"]),
    }


# --- part 1b: tuner -----------------------------------------------------------------------------

CATEGORIES = ("grocery", "apparel", "electronics", "beauty", "sports", "home")


def scored_events(n_users: int, per_user: int, seed: int = 11) -> list[dict]:
    """Synthetic ScoredEvents, 10 candidates each, one a minute per person from 06:00 UTC on the stream day."""
    rng = random.Random(seed)
    t0 = 1794808800.0  # 2026-11-16 06:00 UTC
    out = []
    for j in range(per_user):
        for u in range(n_users):
            uid = f"u{u:04d}"
            scores = []
            for c in range(10):
                raw = rng.random()
                scores.append({"item_id": f"i{rng.randrange(240):03d}", "category": rng.choice(CATEGORIES),
                               "preference": rng.random(), "propensity": rng.random(), "raw_score": raw,
                               "osr_score": round(raw * 0.3, 4)})
            out.append({"event_id": f"{uid}-phone:ctx{j:05d}", "user_id": uid, "ts": t0 + 60.0 * j + u,
                        "model_id": "bench-model", "scores": scores})
    return out


def _plain_decide(scored, rules, prefs, state):
    """decide() without the memory: the same default state, then _decide_new."""
    state = {"day": None, "count": 0, "last_push": {}, **(state or {})}
    return tuner_mod._decide_new(scored, rules, prefs or {}, state)


def bench_tuner(repeats: int) -> dict:
    rules = tuner_mod.RuleBook(tuner_mod.DEFAULT_RULES)
    events = scored_events(n_users=100, per_user=50)

    def run(fn) -> tuple[dict, int]:
        states: dict[str, dict] = {}
        approved = 0
        for ev in events:
            note, _reason, states[ev["user_id"]] = fn(ev, rules, None, states.get(ev["user_id"]))
            approved += note is not None
        return states, approved

    st_mem, appr_mem = run(tuner_mod.decide)
    st_plain, appr_plain = run(_plain_decide)
    t_mem = best_of(lambda: run(tuner_mod.decide), repeats)
    t_plain = best_of(lambda: run(_plain_decide), repeats)
    bytes_mem = sum(len(json.dumps(s)) for s in st_mem.values()) / len(st_mem)
    bytes_plain = sum(len(json.dumps(s)) for s in st_plain.values()) / len(st_plain)

    # one person at the memory cap (MEMORY_MAX moments within MEMORY_S): cost of one more decision
    cap_events = scored_events(n_users=1, per_user=tuner_mod.MEMORY_MAX + 200, seed=12)
    state = None
    for ev in cap_events[:-200]:
        _n, _r, state = tuner_mod.decide(ev, rules, None, state)
    tail = cap_events[-200:]

    def at_cap():
        s = state
        for ev in tail:
            _n, _r, s = tuner_mod.decide(ev, rules, None, s)

    t_cap = best_of(at_cap, repeats)
    s = state
    for ev in tail:
        _n, _r, s = tuner_mod.decide(ev, rules, None, s)
    # redelivery of an old decision
    replay = tuner_mod.decide(events[0], rules, None, st_mem[events[0]["user_id"]])
    n = len(events)
    return {
        "tuner_events": n,
        "tuner_us_with_memory": round(t_mem / n * 1e6, 1),
        "tuner_us_plain": round(t_plain / n * 1e6, 1),
        "tuner_cost_ratio": round(t_mem / t_plain, 2),
        "tuner_state_bytes_with_memory": round(bytes_mem),
        "tuner_state_bytes_plain": round(bytes_plain),
        "tuner_decisions_per_person": 50,
        "tuner_approved_with_memory": appr_mem,
        "tuner_approved_plain": appr_plain,
        "tuner_us_with_memory_at_cap": round(t_cap / len(tail) * 1e6, 1),
        "tuner_state_bytes_at_cap": len(json.dumps(s)),
        "tuner_memory_max": tuner_mod.MEMORY_MAX,
        "tuner_replay_same_answer": replay[2] is st_mem[events[0]["user_id"]] or replay[2] == st_mem[events[0]["user_id"]],
    }


# --- part 2: gateway vs relay on a real broker --------------------------------------------------

def make_pushes(n: int, dup_share: float = 0.05, seed: int = 5) -> tuple[list[tuple[bytes, bytes]], int]:
    """n (key, value) approved pushes; about dup_share of them exact copies of earlier ones."""
    rng = random.Random(seed)
    t0 = 1794808800.0
    out: list[tuple[bytes, bytes]] = []
    dups = 0
    for i in range(n):
        if out and rng.random() < dup_share:
            out.append(out[rng.randrange(len(out))])
            dups += 1
            continue
        uid = f"u{rng.randrange(500):04d}"
        eid = f"{uid}-phone:m{i:07d}"
        item = f"i{rng.randrange(240):03d}"
        note: Notification = {
            "notification_id": f"{eid}:{item}", "event_id": eid, "user_id": uid, "item_id": item,
            "category": rng.choice(CATEGORIES), "ts": t0 + i, "osr_score": round(0.15 + 0.8 * rng.random(), 4),
            "threshold": 0.15, "rule_scope": "global", "model_id": "bench-model",
        }
        assert problem(Notification, note) is None
        out.append((uid.encode(), json.dumps(note).encode()))
    return out, dups


def produce_all(topic: str, msgs: list[tuple[bytes, bytes]]) -> float:
    from confluent_kafka import Producer

    from pipelines.ingest.kafka_clients import producer_config

    p = Producer(producer_config())
    t0 = time.perf_counter()
    for i, (k, v) in enumerate(msgs):
        while True:
            try:
                p.produce(topic, key=k, value=v)
                break
            except BufferError:
                p.poll(0.05)
        if i % 5000 == 0:
            p.poll(0)
    left = p.flush(60)
    if left:
        raise RuntimeError(f"{left} pushes not delivered to {topic}")
    return time.perf_counter() - t0


def bench_gateway(n: int) -> dict:
    prefix = config.get("OSR_TOPIC_PREFIX")
    progress = {"t_first": None, "recv_first": 0, "t_all": None, "last_log": 0.0}
    t_start = time.perf_counter()

    def on_progress(stats):
        now = time.perf_counter()
        if progress["t_first"] is None and stats.received > 0:
            progress["t_first"], progress["recv_first"] = now, stats.received
        if progress["t_all"] is None and stats.received >= n:
            progress["t_all"] = now
        if now - progress["last_log"] >= 5.0:
            progress["last_log"] = now
            say(f"gateway: received {stats.received}, delivered {stats.delivered}, duplicates {stats.duplicates}")

    stats = run_gateway(instance=f"bench-{uuid.uuid4().hex[:10]}", group_id=f"{prefix}bench-gateway",
                        idle_exit_s=3, max_runtime_s=150, progress_every_s=0.0, on_progress=on_progress)
    t_end = time.perf_counter()
    if progress["t_all"] is None or progress["t_first"] is None:
        raise RuntimeError(f"gateway did not receive all {n} pushes: {stats}")
    steady_n = n - progress["recv_first"]
    steady_s = progress["t_all"] - progress["t_first"]
    return {
        "gateway_msgs_per_s": round(steady_n / steady_s) if steady_s > 0 else None,
        "gateway_steady_s": round(steady_s, 3),
        "gateway_first_batch_after_s": round(progress["t_first"] - t_start, 2),
        "gateway_start_to_all_received_s": round(progress["t_all"] - t_start, 2),
        "gateway_msgs_per_s_incl_startup": round(n / (progress["t_all"] - t_start)),
        "gateway_wall_incl_idle_exit_s": round(t_end - t_start, 2),
        "gateway_received": stats.received, "gateway_delivered": stats.delivered,
        "gateway_duplicates_dropped": stats.duplicates, "gateway_invalid": stats.invalid,
        "gateway_transactions": stats.transactions, "gateway_aborted": stats.aborted,
        "gateway_restarts": stats.restarts,
    }


def bench_relay(n: int, source: str, sink: str) -> dict:
    from confluent_kafka import Consumer, Producer

    from pipelines.ingest.kafka_clients import consumer_config, producer_config

    prefix = config.get("OSR_TOPIC_PREFIX")
    producer = Producer(producer_config(**{"linger.ms": 2}))
    consumer = Consumer(consumer_config(f"{prefix}bench-relay", auto_commit=False))
    consumer.subscribe([source])
    t_start = time.perf_counter()
    t_first = None
    recv_first = 0
    received = 0
    deadline = t_start + 150
    try:
        while received < n and time.perf_counter() < deadline:
            msgs = [m for m in consumer.consume(num_messages=500, timeout=0.2) if m.error() is None]
            if not msgs:
                continue
            for m in msgs:
                while True:
                    try:
                        producer.produce(sink, key=m.key(), value=m.value(), partition=m.partition())
                        break
                    except BufferError:
                        producer.poll(0.05)
            producer.poll(0)
            consumer.commit(asynchronous=True)
            received += len(msgs)
            if t_first is None:
                t_first, recv_first = time.perf_counter(), received
        left = producer.flush(60)
        t_all = time.perf_counter()
        try:
            consumer.commit(asynchronous=False)
        except Exception:  # noqa: BLE001 - _NO_OFFSET: the async commits already covered everything
            pass
    finally:
        consumer.close()
    if received < n or t_first is None:
        raise RuntimeError(f"relay got only {received} of {n}")
    steady_s = t_all - t_first
    return {
        "relay_msgs_per_s": round((n - recv_first) / steady_s) if steady_s > 0 else None,
        "relay_steady_s": round(steady_s, 3),
        "relay_first_batch_after_s": round(t_first - t_start, 2),
        "relay_msgs_per_s_incl_startup": round(n / (t_all - t_start)),
        "relay_received": received,
        "relay_undelivered": left,
    }


def read_committed(topic: str, partitions: int, timeout: float = 60.0) -> list[tuple[str, str]]:
    """Every (user_id, event_id) a read_committed reader sees on `topic`, from the start to the end."""
    from confluent_kafka import Consumer, TopicPartition

    from pipelines.ingest.kafka_clients import consumer_config

    reader = Consumer(consumer_config(f"bench-verify-{uuid.uuid4().hex[:8]}", auto_commit=False,
                                      **{"isolation.level": "read_committed"}))
    keys: list[tuple[str, str]] = []
    try:
        ends = {}
        for p in range(partitions):
            _low, high = reader.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False)
            if high > 0:
                ends[p] = high
        reader.assign([TopicPartition(topic, p, 0) for p in ends])
        deadline = time.monotonic() + timeout
        while ends and time.monotonic() < deadline:
            for m in reader.consume(1000, timeout=0.5):
                if m.error():
                    continue
                note = json.loads(m.value())
                keys.append((note["user_id"], note["event_id"]))
            for p in list(ends):
                pos = reader.position([TopicPartition(topic, p)])[0].offset
                # the transaction markers occupy offsets too: the reader's position passes them
                if pos >= ends[p]:
                    ends.pop(p)
        if ends:
            raise TimeoutError(f"could not read {topic} partitions {sorted(ends)} to their end")
    finally:
        reader.close()
    return keys


def topic_size(topic: str, partitions: int) -> int:
    from confluent_kafka import Consumer, TopicPartition

    from pipelines.ingest.kafka_clients import consumer_config

    c = Consumer(consumer_config(f"bench-size-{uuid.uuid4().hex[:8]}"))
    try:
        return sum(c.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False)[1]
                   for p in range(partitions))
    finally:
        c.close()


def warm_coordinators(topic: str) -> float:
    """A fresh broker creates __transaction_state and __consumer_offsets on first use, which can take
    longer than the gateway's idle_exit_s (its idle clock starts before init_transactions and the group
    join): load both coordinators with a throw-away transactional producer and a group commit first."""
    from confluent_kafka import Consumer, Producer, TopicPartition

    from pipelines.ingest.kafka_clients import consumer_config, producer_config

    t0 = time.perf_counter()
    p = Producer(producer_config(**{"transactional.id": f"bench-warm-{uuid.uuid4().hex[:8]}"}))
    p.init_transactions(60)
    p.begin_transaction()
    p.produce(topic, key=b"warm", value=b"{}")
    p.commit_transaction(30)
    c = Consumer(consumer_config(f"bench-warm-{uuid.uuid4().hex[:8]}"))
    try:
        c.commit(offsets=[TopicPartition(topic, 0, 0)], asynchronous=False)
    finally:
        c.close()
    return time.perf_counter() - t0


def run_broker_part(n: int) -> dict:
    partitions = int(config.get("OSR_TOPIC_PARTITIONS"))
    source, sink = config.topic(TOPICS.push_approved), config.topic(TOPICS.notifications)
    relay_sink = config.topic("relay.out")
    t0 = time.perf_counter()
    topics.create_topics([relay_sink, config.topic("warmup")], partitions=partitions)
    create_s = time.perf_counter() - t0
    warm_s = warm_coordinators(config.topic("warmup"))
    say(f"transaction and group coordinators loaded in {warm_s:.2f} s")
    msgs, dups = make_pushes(n)
    say(f"producing {n} approved pushes ({dups} exact duplicates) to {source}")
    produce_s = produce_all(source, msgs)
    say(f"produced in {produce_s:.2f} s; running the push gateway")
    gw = bench_gateway(n)
    say(f"gateway: {gw['gateway_msgs_per_s']} msg/s steady; running the plain relay")
    relay = bench_relay(n, source, relay_sink)
    say(f"relay: {relay['relay_msgs_per_s']} msg/s steady; verifying {sink} with read_committed")
    keys = read_committed(sink, partitions)
    expected = n - dups
    unique = len(set(keys))
    ok = (len(keys) == expected and unique == len(keys) and gw["gateway_delivered"] == expected
          and gw["gateway_duplicates_dropped"] == dups)
    relay_out = topic_size(relay_sink, partitions)
    return {
        "n": n, "partitions": partitions, "duplicates_produced": dups, "create_topics_s": round(create_s, 2),
        "warm_coordinators_s": round(warm_s, 2),
        "produce_s": round(produce_s, 2),
        **gw, **relay,
        "gateway_vs_relay": (round(gw["gateway_msgs_per_s"] / relay["relay_msgs_per_s"], 3)
                             if gw["gateway_msgs_per_s"] and relay["relay_msgs_per_s"] else None),
        "gateway_vs_relay_incl_startup": round(gw["gateway_msgs_per_s_incl_startup"]
                                               / relay["relay_msgs_per_s_incl_startup"], 3),
        "notifications_read_committed": len(keys), "notifications_unique_moments": unique,
        "notifications_expected": expected,
        "gateway_output_ok": ok,
        "relay_out_messages": relay_out,
        "relay_out_duplicates_passed": relay_out - expected,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="accepted; the last line is JSON anyway")
    parser.add_argument("--n", type=int, default=20_000, help="approved pushes for the gateway part")
    parser.add_argument("--uploads", type=int, default=2000, help="uploads for the filter part (at most what the population has)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")

    result: dict = {"cpu_count": os.cpu_count()}
    t_all = time.perf_counter()
    say("generating the population and its stream uploads")
    uploads = load_uploads(args.uploads)
    say(f"{len(uploads)} uploads; timing the filter stage vs plain fusion (best of {args.repeats})")
    result.update(bench_filter(uploads, args.repeats))
    say("timing tuner.decide vs _decide_new")
    result.update(bench_tuner(args.repeats))
    say(f"filter x{result['filter_cost_ratio']}, tuner x{result['tuner_cost_ratio']}; starting a local Kafka broker")

    libs = config.get("OSR_KAFKA_LIBS")
    with tempfile.TemporaryDirectory(prefix="osr-bench-eo-") as home:
        os.environ.update({
            "OSR_HOME": home, "OSR_KAFKA_LIBS": libs, "OSR_BROKER": "kafka",
            "OSR_KAFKA_BOOTSTRAP": f"127.0.0.1:{find_free_port()}", "OSR_KAFKA_CONTROLLER_PORT": str(find_free_port()),
            "OSR_TOPIC_PREFIX": f"bench-eo-{uuid.uuid4().hex[:8]}.",
        })
        os.environ.setdefault("OSR_TOPIC_PARTITIONS", config.get("OSR_TOPIC_PARTITIONS"))
        kafka_local.install()
        info = broker.start(timeout=180)
        say(f"broker ready in {info['ready_seconds']} s at {info['bootstrap']}")
        try:
            result["broker_ready_s"] = info["ready_seconds"]
            result.update(run_broker_part(args.n))
        finally:
            result["broker_stop"] = broker.stop()
    result["total_s"] = round(time.perf_counter() - t_all, 1)
    result["load_avg_1m"] = round(os.getloadavg()[0], 2)
    say("done")
    print(json.dumps(result))
    return 0 if result.get("gateway_output_ok") else 1


if __name__ == "__main__":
    sys.exit(main())
