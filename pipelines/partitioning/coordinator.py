"""The migration coordinator's side on the broker: read control.routing, announce a version, write
the barriers, wait until every moved profile is installed.

Why the log is the coordinator's memory: control.routing holds every announcement, every node's
Installed acks and summaries, so any process (the CLI, the DAG, a test, a restarted coordinator)
rebuilds the same view by reading it from the start; nothing else has to survive a crash. A
version whose barriers were never written (the coordinator died in between) is finished by
writing them again: routers ignore a barrier that is already in force.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field

import numpy as np
import orjson

from pipelines import config
from pipelines.contracts import TOPICS
from pipelines.ingest.kafka_clients import consumer_config, producer_config
from pipelines.partitioning.migration import Versions


def topic(name: str) -> str:
    return config.topic(getattr(TOPICS, name))


def partitions(name: str, timeout: float = 10.0) -> int:
    from confluent_kafka.admin import AdminClient

    t = topic(name)
    md = AdminClient({"bootstrap.servers": config.get("OSR_KAFKA_BOOTSTRAP")}).list_topics(t, timeout=timeout)
    if t not in md.topics or md.topics[t].error is not None or not md.topics[t].partitions:
        raise RuntimeError(f"topic {t} does not exist: create the topics first (`osr topics create`)")
    return len(md.topics[t].partitions)


@dataclass
class ControlView:
    """What control.routing says so far."""

    versions: Versions
    installed: dict = field(default_factory=dict)  # version -> {customer: pause_s or None}
    state_bytes: dict = field(default_factory=dict)  # version -> bytes of state installed
    installed_at: dict = field(default_factory=dict)  # version -> time of the last ack (record time, s)
    summaries: dict = field(default_factory=dict)  # node -> newest NodeSummary
    announced_at: dict = field(default_factory=dict)

    def take(self, msg: dict, ts: float) -> None:
        kind = msg.get("kind")
        if kind == "table":
            if self.versions.add(msg):
                self.announced_at[msg["version"]] = ts
        elif kind == "installed":
            got = self.installed.setdefault(msg["version"], {})
            for k, p in zip(msg["keys"], msg["pauses_s"]):
                if got.get(k) is None:
                    got[k] = p
            self.state_bytes[msg["version"]] = self.state_bytes.get(msg["version"], 0) + int(msg["state_bytes"])
            self.installed_at[msg["version"]] = ts
        elif kind == "summary":
            old = self.summaries.get(msg["node"])
            if old is None or (msg["version"], msg["at"]) >= (old["version"], old["at"]):
                self.summaries[msg["node"]] = msg

    def missing(self, version: int) -> set[str]:
        """Profiles version `version` moves that no node has acknowledged yet."""
        return set(self.versions.moves(version)) - set(self.installed.get(version, {}))

    def complete(self, version: int) -> bool:
        return version == 0 or not self.missing(version)

    def current_summaries(self) -> list[dict]:
        """The newest summary of each node, if taken after the latest routing version was installed
        (a summary taken during the migration could list a profile on two nodes)."""
        v = self.versions.latest
        if not self.complete(v):
            return []
        since = self.installed_at.get(v, self.announced_at.get(v, 0.0))
        return [s for s in self.summaries.values() if s["version"] == v and s["at"] >= since]


class ControlReader:
    """A group-less reader of control.routing from its start, kept open to follow new records."""

    def __init__(self, n_nodes: int | None = None):
        from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

        self.topic = topic("control_routing")
        self.view = ControlView(Versions(n_nodes or partitions("profiles_updates")))
        self.consumer = Consumer(consumer_config(f"osr-repartition-reader-{uuid.uuid4().hex[:8]}"))
        md = self.consumer.list_topics(self.topic, timeout=10).topics[self.topic]
        self.parts = [TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in md.partitions]
        self.consumer.assign(self.parts)

    def _ends(self) -> dict[int, int]:
        return {tp.partition: self.consumer.get_watermark_offsets(tp, timeout=10)[1] for tp in self.parts}

    def poll(self, seconds: float) -> int:
        deadline, n = time.monotonic() + seconds, 0
        while True:
            left = deadline - time.monotonic()
            msgs = self.consumer.consume(500, timeout=max(0.0, min(left, 0.2)))
            for m in msgs:
                if m.error() is None and m.value():
                    self.view.take(orjson.loads(m.value()), m.timestamp()[1] / 1000.0)
                    n += 1
            if left <= 0 and not msgs:
                return n

    def catch_up(self, timeout: float = 30.0) -> ControlView:
        """Read everything written so far."""
        ends = self._ends()
        deadline = time.monotonic() + timeout
        while True:
            pos = {tp.partition: tp.offset for tp in self.consumer.position(self.parts)}
            if all(pos.get(p, 0) >= e or e == 0 for p, e in ends.items()):
                return self.view
            if time.monotonic() > deadline:
                raise TimeoutError(f"control.routing not read to its end in {timeout} s")
            self.poll(0.2)

    def close(self) -> None:
        self.consumer.close()


def _produce(messages: list[tuple[str, int, bytes | None, dict]], timeout: float = 30.0) -> None:
    from confluent_kafka import Producer

    p = Producer(producer_config(**{"linger.ms": 0}))
    errors = []
    for t, part, key, value in messages:
        p.produce(t, key=key, value=orjson.dumps(value), partition=part,
                  on_delivery=lambda err, msg: errors.append(err) if err else None)
    left = p.flush(timeout)
    if left or errors:
        raise RuntimeError(f"could not deliver {left} control records: {errors[:3]}")


def announce(version: int, moves: dict[str, int], n_nodes: int) -> None:
    _produce([(topic("control_routing"), 0, f"table-{version}".encode(),
               {"kind": "table", "version": version, "n_nodes": n_nodes, "moves": moves})])


def write_barriers(version: int) -> float:
    """A RawBarrier in every profiles.raw partition; returns the time they were delivered."""
    raw = topic("profiles_raw")
    _produce([(raw, p, None, {"barrier": version}) for p in range(partitions("profiles_raw"))])
    return time.time()


class MigrationBusy(RuntimeError):
    pass


def apply(moves: dict[str, int], timeout: float = 120.0, reader: ControlReader | None = None,
          on_barrier=None, version: int | None = None) -> dict:
    """Announce version latest + 1 with `moves`, write its barriers and wait until every moved profile
    is installed. Finishes an unfinished version first. With `version` (the one a plan was made
    for), a retry after that version was announced only finishes it; an older plan is refused.
    Returns the migration's figures."""
    own = reader is None
    reader = reader or ControlReader()
    try:
        view = reader.catch_up()
        v = view.versions.latest
        if version is not None and v > version:
            raise MigrationBusy(f"the plan was made for version {version}, the stream is on {v}: plan again")
        if not view.complete(v):
            write_barriers(v)  # finish the unfinished one (its barriers may never have been written)
            wait_installed(reader, v, timeout)
        n = view.versions.n_nodes
        bad = {k: n_ for k, n_ in moves.items() if not 0 <= int(n_) < n}
        if bad:
            raise ValueError(f"{len(bad)} moves to nodes outside [0, {n})")
        t0 = time.time()
        if version is not None and v == version:
            w = v  # announced by an earlier attempt of this plan: finish it, do not announce again
        else:
            w = v + 1
            ann = {"kind": "table", "version": w, "n_nodes": n,
                   "moves": {str(k): int(n_) for k, n_ in moves.items()}}
            announce(w, ann["moves"], n)
            view.versions.add(ann)  # reading it back later changes nothing
            view.announced_at[w] = t0
        moving = len(view.versions.moves(w))
        t_barrier = write_barriers(w)
        if on_barrier is not None:
            on_barrier(w)
        t_done = wait_installed(reader, w, timeout)
        pauses = [p for p in view.installed.get(w, {}).values() if p is not None]
        return {"version": w, "moved_profiles": moving, "requested_moves": len(moves),
                "state_bytes": view.state_bytes.get(w, 0), "announce_s": t_barrier - t0,
                "migration_seconds": t_done - t_barrier, "paused_profiles": len(pauses),
                "pause_p50_s": float(np.percentile(pauses, 50)) if pauses else None,
                "pause_p99_s": float(np.percentile(pauses, 99)) if pauses else None,
                "pause_max_s": float(max(pauses)) if pauses else None, "pauses_s": pauses}
    finally:
        if own:
            reader.close()


def wait_installed(reader: ControlReader, version: int, timeout: float) -> float:
    deadline = time.monotonic() + timeout
    while reader.view.missing(version):
        if time.monotonic() > deadline:
            left = reader.view.missing(version)
            raise TimeoutError(f"version {version}: {len(left)} moved profiles not installed after {timeout} s, "
                               f"e.g. {sorted(left)[:3]}")
        reader.poll(0.2)
    return time.time()
