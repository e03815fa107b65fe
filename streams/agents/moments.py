"""sensor.raw (+ stream.ticks) -> [process] -> state.features, osr.scores, tuner.decisions, push.approved;
bad uploads -> sensor.deadletter. The push gateway (pipelines.online.push_gateway, its own process)
turns push.approved into `notifications`, each moment's push once.

One agent over micro-batches (pipelines.online.chain): Faust's per-message cost is paid once per
upload in and once per published result, and each person's state is written once per batch.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time

import orjson

from pipelines import config
from pipelines.capacity.admission_follow import AdmissionFollower
from pipelines.contracts import TOPICS
from pipelines.filtering.stage import Arrival
from pipelines.ingest import offset_holes
from pipelines.ingest.kafka_clients import partition_for_key
from pipelines.online.chain import BatchTiming, Chain, HeldPeople
from pipelines.online.tuner import TunerStage
from pipelines.online.tuner_rules import RulesFollower
from pipelines.rate_limited_log import RateLimitedLog
from streams.app import app
from streams.topics import (PARTITIONS, live_snapshot, osr_scores, person_states, push_approved, sensor_deadletter,
                            state_features, stream_ticks, tuner_decisions, uploads_and_ticks)

log = logging.getLogger(__name__)
noisy = RateLimitedLog(log)
rules = RulesFollower()  # `osr tuner set` reaches running workers through the store, no restart
admission_plan = AdmissionFollower()  # the capacity loop's plan beyond the cap (degrade / defer), through the store
chain = Chain(TunerStage(rules=rules), hold_s=float(config.get("OSR_MOMENT_HOLD_S")))
timing = BatchTiming()  # logged every OSR_STREAM_LOG_S: what a batch costs, where
held = HeldPeople()
BATCH = int(config.get("OSR_STREAM_BATCH"))
WITHIN_S = float(config.get("OSR_STREAM_WITHIN_S"))
TICKS = config.topic(TOPICS.stream_ticks)
#: A partition whose ticks come but no record for this long is idle: nothing can be behind (3 holds).
IDLE_S = 3 * float(config.get("OSR_MOMENT_HOLD_S"))
RAW = config.topic(TOPICS.sensor_raw)
TRACE = config.get("OSR_STREAM_TRACE") == "1"
WATERMARK = "#sensor.raw offset of partition "


def _offsets_by_partition(events) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for ev in events:
        if ev.message.topic == RAW:
            out.setdefault(ev.message.partition, []).append(ev.message.offset)
    return out


def _key(key) -> str:
    return key.decode("utf-8", "replace") if isinstance(key, bytes) else str(key)


#: How many rebalances this worker had gone through at its last batch.
seen = {"rebalances": -1}

#: The last sensor.raw offset this worker processed, per partition (a tick asks whether it is caught up).
last_offset: dict[int, int] = {}


#: When this worker last took a sensor.raw record of a partition, or first ticked it (monotonic s),
#: when it last took a tick of it, and when its ticks came back after a gap (a broker outage).
last_record_at: dict[int, float] = {}
last_tick_at: dict[int, float] = {}
resumed_at: dict[int, float] = {}


async def caught_up(partition: int) -> bool:
    """Nothing of the partition waits behind what this worker processed: the agent reached the high
    watermark with the offsets it saw itself, or no record of the partition has come for IDLE_S
    while its ticks did (a partition gained in a rebalance at the end of a stream: its recovered
    held moments must still be released). Asking the consumer for its fetch position from here
    stalled a partition's fetching after a restart (seen in the crash test), so it is not asked.

    After a gap in the ticks (the broker was away, or the worker stalled) the partition is not caught
    up for IDLE_S: producers are still delivering what they buffered meanwhile, which the high
    watermark does not show yet (a held moment's partner may be among it)."""
    from faust.types import TP

    now = time.monotonic()
    if now - last_tick_at.get(partition, now) > IDLE_S:  # ticks stopped (a broker outage, a pause):
        last_record_at[partition] = now  # the backlog behind it has not been seen yet, idle starts over
        resumed_at[partition] = now
    last_tick_at[partition] = now
    if now - resumed_at.get(partition, now - IDLE_S) < IDLE_S:
        return False
    if now - last_record_at.setdefault(partition, now) >= IDLE_S:
        return True
    done = last_offset.get(partition)
    if done is None:
        return False
    try:
        high = app.consumer.highwater(TP(RAW, partition))
    except Exception:  # noqa: BLE001 - no consumer / no metadata yet: not known to be caught up
        return False
    return high is not None and done + 1 >= high


def load_state(value: bytes | None) -> dict | None:
    return orjson.loads(value) if value else None


def _save(person: str, state: dict, partition: int):
    """A table write to the changelog partition of the person's records: in a micro-batch the
    "current event" Faust would use is the batch's last one, which may be another partition's.
    The table holds the JSON bytes, not the dict: ~4x less worker memory per person (measured in
    bench/stream.py), and Faust sends them to the changelog as they are."""
    value = orjson.dumps(state)
    person_states.data[person] = value
    return person_states.send_changelog(partition, person, value)  # a future of the broker's ack


def _person(key) -> str:
    """The table key of a record's person; a hostile key shaped like a watermark's is taken under
    another key, so its state never replaces the mark (it is dead-lettered for its key)."""
    person = _key(key)
    return "\x00" + person if person.startswith(WATERMARK) else person


def _mark_key(p: int) -> str:
    """The table key of a partition's watermark (the last sensor.raw offset processed, logged with the
    batch, so the partition's next owner knows it too). Not a person: a record keyed like this is
    taken under another key (so its state never replaces the mark) and dead-lettered for its key."""
    return f"{WATERMARK}{p}"


def watermarks(parts: set[int]) -> dict[int, int]:
    out = {}
    for p in parts:
        mark = load_state(person_states.data.get(_mark_key(p)))
        if mark and isinstance(mark.get("pos"), int):
            out[p] = mark["pos"]
    return out


async def read_holes(holes: dict[int, tuple[int, int]]) -> list:
    """The skipped records, read back from the broker (in a thread); retried until the broker answers:
    going on without them would lose them for good."""
    log.warning("process: sensor.raw offsets committed past without being processed, reading them back: %s", holes)
    while True:
        try:
            return await asyncio.get_running_loop().run_in_executor(None, offset_holes.fetch, RAW, holes)
        except (TimeoutError, OSError, RuntimeError) as exc:
            noisy.warning("process: cannot read back %s yet (%s); retrying", holes, exc)
            await asyncio.sleep(1.0)


def _consumer():
    return app.consumer


async def let_commits_pass(holes: dict[int, tuple[int, int]]) -> None:
    """Tell Faust's consumer the read-back offsets are done, once their state is logged. Faust never
    delivered them, so it never acks them, and its commit (the run of acked offsets from the committed
    one) would stop below them for good: seen in the platform test, partition 0 committed at 187 with
    everything to 695 processed after a read-back of 187-192, so the drain never ended. Faust's own
    way to skip offsets no message will ack is its gap list (`Consumer._add_gap`, private: if it is
    missing the commit stays behind, and nothing is lost, as a restart replays onto the logged state)."""
    from faust.types import TP

    for p, (first, last) in holes.items():
        try:
            await _consumer()._add_gap(TP(RAW, p), first, last)
        except Exception as exc:  # noqa: BLE001 - no consumer (tests) or another Faust: commits just lag
            noisy.warning("process: cannot mark read-back offsets %s-%s of partition %d done for the commit (%s)",
                          first, last, p, exc)


def processed_unacked(marks: dict[int, int], pairs: list[tuple[int, int]]) -> dict[int, tuple[int, int]]:
    """Per partition of the batch: offsets processed before (at or below the watermark) that Faust's
    consumer will not ack, so its commit would stop below them (pipelines.ingest.offset_holes
    .processed_but_unacked). Reads the consumer's private bookkeeping; without it, nothing."""
    from faust.types import TP

    out: dict[int, tuple[int, int]] = {}
    try:
        consumer = _consumer()
        committed, acked = consumer._committed_offset, consumer._acked
        for p in {p for p, _ in pairs}:
            tp = TP(RAW, p)
            lowest = min(min(o for q, o in pairs if q == p), min(acked.get(tp) or (), default=math.inf))
            gap = offset_holes.processed_but_unacked(committed.get(tp), lowest, marks.get(p))
            if gap:
                out[p] = gap
    except Exception as exc:  # noqa: BLE001 - no consumer (tests) or another Faust: commits just lag
        noisy.warning("process: cannot check the consumer's acks (%s)", exc)
        return {}
    if out:
        log.warning("process: sensor.raw offsets processed before a rebalance and never acked since, "
                    "marked done for the commit: %s", out)
    return out


@app.agent(uploads_and_ticks)
async def process(stream):
    """validate -> fuse a person's devices -> features -> score -> tune, one call per micro-batch."""
    async for events in stream.take_events(BATCH, within=WITHIN_S):
        now = time.time()
        # partitions gained (at start, or from a worker that died) bring recovered people whose moments wait
        if app.rebalancing_count != seen["rebalances"]:
            # a partition lost and regained between two batches looks unchanged, yet its table was
            # recovered again and may hold moments another worker left waiting: look at everyone again
            seen["rebalances"] = app.rebalancing_count
            held.sync(set(), lambda: (), lambda k: 0)
        held.sync({tp.partition for tp in app.assignor.assigned_actives() if tp.topic == RAW},
                  lambda: ((k, load_state(v)) for k, v in person_states.data.items()),
                  lambda k: partition_for_key(k.encode(), PARTITIONS))
        by_person: dict[str, list[Arrival]] = {}
        partition: dict[str, int] = {}
        stream_time: dict[int, float] = {}  # per partition: the newest record time, or now on a caught-up tick
        ticks: dict[str, str] = {}  # person -> the tick record that made us look at them
        # records Faust committed past without delivering them (pipelines.ingest.offset_holes) come first
        pairs = [(ev.message.partition, ev.message.offset) for ev in events if ev.message.topic == RAW]
        marks = watermarks({p for p, _ in pairs})
        holes = offset_holes.missing(marks, pairs)
        found = await read_holes(holes) if holes else []
        for r in found:
            person = _person(r.key)
            by_person.setdefault(person, []).append(Arrival(r.value, f"{RAW}:{r.partition}:{r.offset}", person,
                                                            r.timestamp_s))
            partition[person] = r.partition
            stream_time[r.partition] = max(stream_time.get(r.partition, 0.0), r.timestamp_s)
        # records before ticks: a tick asks whether the worker has caught up, so it must see the offsets
        # of the batch's own records
        for ev in sorted(events, key=lambda e: e.message.topic == TICKS):
            m = ev.message
            if m.topic == TICKS:
                source = f"{m.topic}:{m.partition}:{m.offset}"
                people = held.released_by(source)  # a redelivered tick: what it released, again
                if await caught_up(m.partition):  # else the held moments' partners may be in the backlog
                    stream_time[m.partition] = max(stream_time.get(m.partition, 0.0), now)
                    people = [*people, *held.due(m.partition)]
                for person in people:
                    by_person.setdefault(person, [])
                    partition.setdefault(person, m.partition)
                    ticks.setdefault(person, source)
                continue
            person = _person(m.key)
            by_person.setdefault(person, []).append(
                Arrival(ev.value, f"{m.topic}:{m.partition}:{m.offset}", person, m.timestamp))
            partition[person] = m.partition
            stream_time[m.partition] = max(stream_time.get(m.partition, 0.0), m.timestamp)
            last_offset[m.partition] = m.offset
            last_record_at[m.partition] = time.monotonic()
        if TRACE:
            log.info("trace: batch %s", {p: o for p, o in sorted(_offsets_by_partition(events).items())})
        t0 = time.perf_counter()
        out = chain.run(by_person, lambda k: load_state(person_states.data.get(k)), live_snapshot.refresh(),
                        now={p: stream_time.get(partition[p]) for p in by_person}, ticks=ticks,
                        admission=admission_plan.current())
        t1 = time.perf_counter()
        # State first, durably; results after. A crash in between replays the batch's records onto the
        # logged state, which re-emits what they released (pipelines.filtering.stage, "Redelivery"),
        # so nothing released is lost and nothing is decided twice (the tuner's memory is in the state).
        logged = [_save(person, state, partition[person]) for person, state in out.states.items()]
        logged += [_save(_mark_key(p), {"pos": o}, p)
                   for p, o in offset_holes.advanced(marks, [(r.partition, r.offset) for r in found] + pairs).items()]
        await asyncio.gather(*logged)
        if holes:
            await let_commits_pass(holes)
        await let_commits_pass(processed_unacked(marks, pairs))
        t2 = time.perf_counter()
        for person, state in out.states.items():
            held.update(person, partition[person], state)
        sent = [await state_features.send(key=row["user_id"].encode(), value=row) for row in out.features]
        sent += [await osr_scores.send(key=s["user_id"].encode(), value=s) for s in out.scored]
        sent += [await tuner_decisions.send(key=d["user_id"].encode(), value=d) for d in out.decisions]
        sent += [await push_approved.send(key=n["user_id"].encode(), value=n) for n in out.approved]
        sent += [await sensor_deadletter.send(key=None, value=d) for d in out.dead]
        # The broker's acks before the next batch: then only this batch can have unpublished results
        # after a crash, and a person's state need remember only what this batch released.
        await asyncio.gather(*sent)
        n_ticks = sum(ev.message.topic == TICKS for ev in events)
        timing.add(len(events) - n_ticks, len(out.decisions), t1 - t0, t2 - t1, time.perf_counter() - t2, n_ticks)
        timing.note_admission(out)


@app.timer(float(config.get("OSR_TICK_S")))
async def tick() -> None:
    """A tick to each sensor.raw partition this worker owns, so moments held for missing devices are
    released on partitions where nothing else arrives."""
    for tp in app.assignor.assigned_actives():
        if tp.topic == RAW:
            await stream_ticks.send(key=None, value=b"t", partition=tp.partition)


@app.timer(rules.poll_s)
async def follow_tuner_rules() -> None:
    """Re-read the tuner rules when their version moved (a blocking store read, so in a thread)."""
    await asyncio.get_running_loop().run_in_executor(None, rules.refresh)


@app.timer(admission_plan.poll_s)
async def follow_admission_plan() -> None:
    """Re-read the admission plan the capacity loop recorded (a blocking store read, so in a thread)."""
    await asyncio.get_running_loop().run_in_executor(None, admission_plan.refresh)


@app.timer(float(config.get("OSR_STREAM_LOG_S")))
async def log_batch_timing() -> None:
    line = timing.report()
    if line:
        log.info("process: %s", line)
