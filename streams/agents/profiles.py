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
from pipelines.partitioning.migration import (MissingVersion, NodeParams, Versions, active_profiles,
                                              handle_node_batch, route_records)
from pipelines.partitioning.summaries import node_summary
from streams.app import app
from streams.topics import PARTITIONS, sensor_deadletter

log = logging.getLogger(__name__)
BATCH = int(config.get("OSR_STREAM_BATCH"))
#: A profile update is one small message, so batches wait longer to fill than the sensor stream's:
#: each batch costs a broker round trip (its writes are awaited), at most this much is added per hop.
WITHIN_S = float(os.environ.get("OSR_PROFILE_WITHIN_S", "0.1"))
SUMMARY_S = float(os.environ.get("OSR_PROFILE_SUMMARY_S", "30"))  # seconds between a node's micro-cluster summaries
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
stats = {"routed": 0, "dead": 0, "applied": 0, "held": 0, "duplicates": 0, "stale": 0, "transfers": 0, "installs": 0}


def _load(value: bytes | None):
    return orjson.loads(value) if value else None


def _write(table, partition: int, key: str, value) -> object:
    data = orjson.dumps(value)
    table.data[key] = data
    return table.send_changelog(partition, key, data)


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
        records = [(ev.message.partition, ev.message.offset, ev.value) for ev in events]
        parts = {r for r, _, _ in records}
        hist = {r: _load(profile_router.data.get(str(r))) or [] for r in parts}
        out = await _with_versions(lambda: route_records(records, hist, versions))
        sent = [await profiles_updates.send(key=None, value=orjson.dumps(m), partition=node) for node, m in out.sends]
        sent += [_write(profile_router, r, str(r), h) for r, h in out.history.items()]
        for reason, r, offset, payload in out.dead:
            sent.append(await sensor_deadletter.send(key=None, value={
                "reason": f"profile update: {reason}", "source": f"{RAW}:{r}:{offset}", "event_id": None,
                "payload": payload.decode("utf-8", "replace")[:2000]}))
        await asyncio.gather(*sent)
        stats["routed"] += out.routed
        stats["dead"] += len(out.dead)
        for r, offset, _ in records:
            raw_offsets[r] = offset


@app.agent(profiles_updates)
async def profile_node(stream):
    """Apply routed updates to the node's profiles; ship and install moving profiles."""
    async for events in stream.take_events(BATCH, within=WITHIN_S):
        by_node: dict[int, list] = {}
        for ev in events:
            by_node.setdefault(ev.message.partition, []).append(orjson.loads(ev.value))
        for node, msgs in by_node.items():
            get = lambda k: _load(profile_states.data.get(k))  # noqa: E731
            out = await _with_versions(lambda: handle_node_batch(node, msgs, get, versions, params, time.time()))
            # a profile's state must be on its way before its forward pointer can be logged: awaited
            await asyncio.gather(*[await profiles_updates.send(key=None, value=orjson.dumps(m), partition=dst)
                                   for dst, m in out.sends])
            await asyncio.gather(*[_write(profile_states, node, k, v) for k, v in out.writes.items()])
            await asyncio.gather(*[await control_routing.send(key=None, value=orjson.dumps(a), partition=0)
                                   for a in out.acks])
            for k in ("applied", "held", "duplicates", "stale"):
                stats[k] += getattr(out, k)
            stats["transfers"] += len(out.sends)
            stats["installs"] += sum(len(a["keys"]) for a in out.acks)


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
