"""profiles.raw -> [route_profiles] -> profiles.updates (partition = node) -> [profile_node] -> profile table.

The router sends each CDR to the node its routing version names; the node agent keeps the
profiles of its partition in `profile_states` and ships / installs profiles when a version moves
them (pipelines.partitioning.migration: barriers, buffering at the new owner, replay). Each agent
body is one call into pipelines plus the sends and table writes it returns, awaited (acked by
the broker) before the next batch acknowledges this one; a crash replays a batch, which the
node functions make harmless (idempotent).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time

import orjson

from pipelines import config
from pipelines.contracts import TOPICS
from pipelines.partitioning import gaps
from pipelines.partitioning.acks import wait_acked
from pipelines.partitioning.migration import (MissingVersion, NodeParams, Versions, active_profiles,
                                              handle_node_batch, record_key, route_records)
from pipelines.partitioning.summaries import node_summary
from streams.app import app
from streams.topics import PARTITIONS, sensor_deadletter

log = logging.getLogger(__name__)
BATCH = int(config.get("OSR_STREAM_BATCH"))
#: A profile update is one small message, so batches wait longer to fill than the sensor stream's:
#: each batch costs a broker round trip (its writes are awaited), at most this much is added per hop.
WITHIN_S = float(os.environ.get("OSR_PROFILE_WITHIN_S", "0.1"))
SUMMARY_S = float(os.environ.get("OSR_PROFILE_SUMMARY_S", "30"))  # seconds between a node's micro-cluster summaries
#: How long a batch waits for the broker's acks before it checks whether the producer is wedged (see `_acked`).
ACK_TIMEOUT_S = float(os.environ.get("OSR_PROFILE_ACK_TIMEOUT_S", "60"))
WEDGED_EXIT_CODE = 70
RAW = config.topic(TOPICS.profiles_raw)
UPDATES = config.topic(TOPICS.profiles_updates)

profiles_raw = app.topic(RAW, partitions=PARTITIONS, key_serializer="raw", value_serializer="raw")
profiles_updates = app.topic(UPDATES, partitions=PARTITIONS, key_serializer="raw", value_serializer="raw")
control_routing = app.topic(config.topic(TOPICS.control_routing), partitions=PARTITIONS, key_serializer="raw",
                            value_serializer="raw")
#: "<node>|<customer>" -> the profile's record on that node (orjson bytes); "<node>|#align" -> barrier alignment.
profile_states = app.Table("profile_states", default=None, partitions=PARTITIONS, value_type=bytes)
#: raw partition -> [[barrier offset, version], ...]: which routing version is in force where.
profile_router = app.Table("profile_router", default=None, partitions=PARTITIONS, value_type=bytes)

versions = Versions(PARTITIONS)  # node = partition of profiles.updates
params = NodeParams(n_raw=PARTITIONS)
baselines: dict[int, dict] = {}
raw_offsets: dict[int, int] = {}  # the last profiles.raw offset routed, per partition (logged)
#: agent -> monotonic time its current batch began (absent between batches): the stall watchdog's input
busy_since: dict[str, float] = {}
stats = {"routed": 0, "dead": 0, "applied": 0, "held": 0, "duplicates": 0, "stale": 0, "transfers": 0, "installs": 0}


def _load(value: bytes | None):
    return orjson.loads(value) if value else None


def _write(table, partition: int, key: str, value) -> object:
    data = orjson.dumps(value)
    table.data[key] = data
    return table.send_changelog(partition, key, data)


async def _acked(futures: list, what: str) -> None:
    """Await a batch's sends and writes; a wedged producer ends the worker (pipelines.partitioning.acks)."""

    def wedged(pending: int, total: int, waited: float) -> None:
        log.error("profiles: %s: %d of %d sends/writes not acked after %.0f s while a probe was acked: the "
                  "producer is wedged; %s; exiting (%d) so that the group replays this worker's partitions",
                  what, pending, total, waited, _producer_state(), WEDGED_EXIT_CODE)
        for h in logging.getLogger().handlers:
            h.flush()
        os._exit(WEDGED_EXIT_CODE)

    def waiting(pending: int, total: int, waited: float) -> None:
        log.warning("profiles: %s: %d of %d sends/writes not acked after %.0f s, nor a probe: broker away? "
                    "waiting on; %s", what, pending, total, waited, _producer_state())

    await wait_acked(futures, timeout=ACK_TIMEOUT_S, probe=_probe, on_wedged=wedged, on_waiting=waiting)


async def _probe() -> bool:
    """Whether the producer still gets acks at all: one probe record on control.routing (readers ignore it)."""
    try:
        fut = await control_routing.send(key=None, value=orjson.dumps({"kind": "probe", "at": time.time()}),
                                         partition=0)
        await asyncio.wait_for(asyncio.shield(fut), timeout=10.0)
        return True
    except Exception:  # noqa: BLE001 - a timeout or a send error both mean "not acked"
        return False


async def _fill_holes(topic: str, table, key_of, pairs: list) -> tuple[list, dict]:
    """Records of `topic` this agent's input skipped (pipelines.partitioning.gaps), read back, and the
    watermarks (partition -> last offset processed) the batch starts from. `key_of(p)` is the table key."""
    marks = {}
    for p in {p for p, _ in pairs}:
        mark = _load(table.data.get(key_of(p)))
        if mark is not None:
            marks[p] = int(mark["pos"])
    holes = gaps.missing(marks, pairs)
    if not holes:
        return [], marks
    stats["holes"] = stats.get("holes", 0) + 1
    log.warning("profiles: %s: offsets never processed (committed without being seen): %s; reading them back",
                topic, holes)
    while True:  # going on without the hole would lose it: wait for the broker instead
        try:
            found = await asyncio.get_running_loop().run_in_executor(None, gaps.fetch, topic, holes)
            break
        except Exception as exc:  # noqa: BLE001 - a broker outage: log, read again
            log.warning("profiles: %s: reading holes %s back failed (%s); again in 2 s", topic, holes, exc)
            await asyncio.sleep(2.0)
    stats["refetched"] = stats.get("refetched", 0) + len(found)
    return found, marks


async def _with_versions(fn):
    """Run a pure step; when it needs a routing version not read yet, wait for it and run it again."""
    while True:
        try:
            return fn()
        except MissingVersion as missing:
            stats["waiting_for_version"] = missing.version
            log.info("profiles: waiting for routing version %d", missing.version)
            while missing.version not in versions.tables:
                await asyncio.sleep(0.05)


@app.agent(profiles_raw)
async def route_profiles(stream):
    """Route each CDR by the routing version in force at its offset; barriers switch the version.
    The batch's sends and writes are awaited before the next batch (which acknowledges this one):
    Faust's flush before a commit gives up on its table-write buffer after 0.1 s."""
    async for events in stream.take_events(BATCH, within=WITHIN_S):
        busy_since["router"] = time.monotonic()
        records = [(ev.message.partition, ev.message.offset, ev.value) for ev in events]
        found, marks = await _fill_holes(RAW, profile_router, lambda r: f"{r}{gaps.POS}",
                                         [(r, o) for r, o, _ in records])
        if found:  # each partition's records in offset order, the hole's among them
            records = [(r, o, v) for (r, o), v in sorted({(r, o): v for r, o, v in found + records}.items())]
        parts = {r for r, _, _ in records}
        hist = {r: _load(profile_router.data.get(str(r))) or [] for r in parts}
        out = await _with_versions(lambda: route_records(records, hist, versions))
        sent = [await profiles_updates.send(key=None, value=orjson.dumps(m), partition=node) for node, m in out.sends]
        sent += [_write(profile_router, r, str(r), h) for r, h in out.history.items()]
        sent += [_write(profile_router, r, f"{r}{gaps.POS}", {"pos": o})
                 for r, o in gaps.advanced(marks, [(r, o) for r, o, _ in records]).items()]
        for reason, r, offset, payload in out.dead:
            sent.append(await sensor_deadletter.send(key=None, value={
                "reason": f"profile update: {reason}", "source": f"{RAW}:{r}:{offset}", "event_id": None,
                "payload": payload.decode("utf-8", "replace")[:2000]}))
        await _acked(sent, "router batch")
        stats["routed"] += out.routed
        stats["dead"] += len(out.dead)
        for r, offset, _ in records:
            raw_offsets[r] = offset
        busy_since.pop("router", None)


@app.agent(profiles_updates)
async def profile_node(stream):
    """Apply routed updates to the node's profiles; ship and install moving profiles."""
    async for events in stream.take_events(BATCH, within=WITHIN_S):
        busy_since["node"] = time.monotonic()
        pairs = [(ev.message.partition, ev.message.offset) for ev in events]
        found, marks = await _fill_holes(UPDATES, profile_states, lambda n: record_key(n, gaps.POS), pairs)
        by_node: dict[int, list] = {}
        if found:  # each node's messages in offset order, the hole's among them
            merged = {(n, o): v for n, o, v in found} | {(ev.message.partition, ev.message.offset): ev.value
                                                          for ev in events}
            for (node, _), value in sorted(merged.items()):
                by_node.setdefault(node, []).append(orjson.loads(value))
        else:
            for ev in events:
                by_node.setdefault(ev.message.partition, []).append(orjson.loads(ev.value))
        seen_to = gaps.advanced(marks, [(n, o) for n, o, _ in found] + pairs)
        for node, msgs in by_node.items():
            get = lambda k: _load(profile_states.data.get(k))  # noqa: E731
            out = await _with_versions(lambda: handle_node_batch(node, msgs, get, versions, params, time.time()))
            # a profile's state must be on its way before its forward pointer can be logged: awaited
            await _acked([await profiles_updates.send(key=None, value=orjson.dumps(m), partition=dst)
                          for dst, m in out.sends], f"node {node} transfers")
            writes = {**out.writes, record_key(node, gaps.POS): {"pos": seen_to[node]}}
            await _acked([_write(profile_states, node, k, v) for k, v in writes.items()], f"node {node} writes")
            await _acked([await control_routing.send(key=None, value=orjson.dumps(a), partition=0)
                          for a in out.acks], f"node {node} acks")
            for k in ("applied", "held", "duplicates", "stale"):
                stats[k] += getattr(out, k)
            stats["transfers"] += len(out.sends)
            stats["installs"] += sum(len(a["keys"]) for a in out.acks)
        busy_since.pop("node", None)


@app.task
async def follow_routing_versions() -> None:
    """Every worker reads all routing versions from control.routing (from its start, outside the group)."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    topic = config.topic(TOPICS.control_routing)
    while True:
        consumer = AIOKafkaConsumer(bootstrap_servers=config.get("OSR_KAFKA_BOOTSTRAP").split(","),
                                    group_id=None, enable_auto_commit=False, fetch_max_wait_ms=50)
        try:
            await consumer.start()
            parts = consumer.partitions_for_topic(topic)
            while not parts:
                await asyncio.sleep(1.0)
                await consumer._client.force_metadata_update()
                parts = consumer.partitions_for_topic(topic)
            tps = [TopicPartition(topic, p) for p in sorted(parts)]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            async for msg in consumer:
                ann = orjson.loads(msg.value) if msg.value else {}
                if ann.get("kind") == "table" and versions.add(ann):
                    log.info("profiles: routing version %d known (%d moves)", ann["version"], len(ann["moves"]))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - broker outage or a bad record: log, read again
            log.warning("profiles: routing follower stopped (%s); reading again", exc)
            await asyncio.sleep(2.0)
        finally:
            try:
                await consumer.stop()
            except Exception:  # noqa: BLE001
                pass


@app.timer(10.0)
async def log_profile_stats() -> None:
    log.info("profiles: %s; routing versions 0..%d; last raw offsets %s",
             ", ".join(f"{k} {v}" for k, v in stats.items()), versions.latest, dict(sorted(raw_offsets.items())))


def _producer_state() -> str:
    """What aiokafka's producer holds: batches per partition not yet sent, partitions in flight."""
    try:
        p = app.producer._producer
        acc, sender = p._message_accumulator, p._sender
        queued = {f"{tp.topic}:{tp.partition}": len(b) for tp, b in acc._batches.items() if b}
        sent = sorted(f"{b.tp.topic}:{b.tp.partition}" for b in acc._pending_batches)
        return (f"queued batches {queued}, sent and unresolved {sent}, in flight nodes {sender._in_flight}, "
                f"muted {sorted(f'{tp.topic}:{tp.partition}' for tp in sender._muted_partitions)}")
    except Exception as exc:  # noqa: BLE001 - a diagnostic must not fail the worker
        return f"(producer state unavailable: {exc!r})"


@app.timer(10.0)
async def watch_for_stalls() -> None:
    """A batch that has not finished in 30 s is a stall: log where each agent waits, and the producer state."""
    now = time.monotonic()
    slow = {a: now - t for a, t in busy_since.items() if now - t > 30.0}
    if slow:
        log.warning("profiles: STALL %s; %s\n%s", {a: round(s) for a, s in slow.items()}, _producer_state(),
                    app.agents.human_tracebacks())


@app.timer(SUMMARY_S)
async def summarize_nodes() -> None:
    """Each owned node's micro-cluster summaries (and trigger NMI) to control.routing, for the planner."""
    owned = sorted(tp.partition for tp in app.assignor.assigned_actives() if tp.topic == UPDATES)
    loop = asyncio.get_running_loop()
    for node in owned:
        prefix = f"{node}|"
        items = [(k, _load(v)) for k, v in list(profile_states.data.items()) if k.startswith(prefix)]
        if any(rec and rec.get("await") for _, rec in items):
            continue  # a migration is installing here: summarize after it
        active = active_profiles(items)
        summary, baselines[node] = await loop.run_in_executor(
            None, node_summary, node, versions.latest, active, baselines.get(node))
        await control_routing.send(key=None, value=orjson.dumps(summary), partition=0)
