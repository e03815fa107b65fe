"""Monitor: what the broker and the workers say about one consumer group on one topic.

From the broker (confluent-kafka): log-end and committed offsets per partition -> arrival rate,
processing (commit) rate and lag; the group's state and members (a rebalance in progress means
the group has not settled); and every input record's timestamp, read by a tail consumer of its
own, so the latency of the records the group committed since the last sample is
commit-observed time - produce time (resolution: the sample interval plus the worker's commit
interval, Faust's 2.8 s by default), and the head of line's age tells a growing queue before
anything completes.

From the workers: the BatchTiming line each Faust worker logs every OSR_STREAM_LOG_S
("process: B batches, R records ...; per batch: chain X ms, state ack Y ms, publish Z ms"), so
busy time = B * (X + Y + Z) ms, busy fraction = busy / interval and DS2's true processing rate =
R / busy time, without any change to the agent.
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

from pipelines import config
from pipelines.ingest.kafka_clients import CLIENT_LOGGER, consumer_config

_TIMING = re.compile(r"^\[(?P<at>[\d-]+ [\d:,]+)\] \[\d+\] \[\w+\] process: (?P<b>\d+) batches, (?P<r>\d+) records .*?"
                     r"per batch: chain (?P<c>[\d.]+) ms, state ack (?P<a>[\d.]+) ms, publish (?P<p>[\d.]+) ms")


def parse_timing(line: str) -> tuple[float, int, float] | None:
    """A BatchTiming log line -> (epoch seconds it was logged, records, busy seconds), else None."""
    m = _TIMING.match(line)
    if not m:
        return None
    at = datetime.strptime(m["at"], "%Y-%m-%d %H:%M:%S,%f").timestamp()
    busy = int(m["b"]) * (float(m["c"]) + float(m["a"]) + float(m["p"])) / 1000.0
    return at, int(m["r"]), busy


@dataclass
class WorkerStats:
    worker: str
    records: int = 0
    busy_s: float = 0.0
    interval_s: float = 0.0

    @property
    def busy_fraction(self) -> float | None:
        return min(self.busy_s / self.interval_s, 1.0) if self.interval_s > 0 else None

    @property
    def true_rate(self) -> float | None:
        return self.records / self.busy_s if self.busy_s > 0 else None


class WorkerLogs:
    """Reads the BatchTiming lines each worker's log gained since the last call."""

    def __init__(self, interval_s: float | None = None):
        self.interval_s = float(interval_s if interval_s is not None else config.get("OSR_STREAM_LOG_S"))
        self._pos: dict[Path, int] = {}

    def read(self, logs: dict[str, Path]) -> dict[str, WorkerStats]:
        out = {}
        for name, path in logs.items():
            st = WorkerStats(name)
            try:
                with open(path, "rb") as f:
                    f.seek(self._pos.get(path, 0))
                    chunk = f.read()
                    # only whole lines; a partial last line is read next time
                    cut = chunk.rfind(b"\n") + 1
                    self._pos[path] = self._pos.get(path, 0) + cut
            except OSError:
                continue
            for line in chunk[:cut].decode("utf-8", "replace").splitlines():
                t = parse_timing(line)
                if t:
                    st.records += t[1]
                    st.busy_s += t[2]
                    st.interval_s += self.interval_s
            out[name] = st
        return out


class TimestampIndex(threading.Thread):
    """A tail reader of the topic (its own group, nothing committed) keeping each record's timestamp."""

    def __init__(self, topic: str, partitions: int):
        super().__init__(daemon=True, name=f"ts-index-{topic}")
        self.topic, self.partitions = topic, partitions
        self.c = Consumer({**consumer_config(f"osr-capacity-ts-{uuid.uuid4().hex[:8]}"), "enable.partition.eof": False,
                           "fetch.wait.max.ms": 50})
        self.c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])  # from the start (offset 0)
        self.ts: dict[int, dict[int, float]] = {p: {} for p in range(partitions)}
        self.lock = threading.Lock()
        self._halt = threading.Event()

    def run(self):
        try:
            while not self._halt.is_set():
                msgs = self.c.consume(500, timeout=0.2)
                with self.lock:
                    for m in msgs:
                        if m.error():
                            continue
                        kind, ms = m.timestamp()
                        if kind:
                            self.ts[m.partition()][m.offset()] = ms / 1000.0
        finally:
            self.c.close()

    def stop(self):
        self._halt.set()
        self.join(10)

    def completed(self, partition: int, lo: int, hi: int) -> list[float]:
        """Timestamps of offsets [lo, hi) and forget them (committed: they will not be asked again)."""
        with self.lock:
            d = self.ts[partition]
            return [d.pop(o) for o in range(lo, hi) if o in d]

    def at(self, partition: int, offset: int) -> float | None:
        with self.lock:
            return self.ts[partition].get(offset)


#: Errors a group coordinator gives while it moves or loads (a new group, a broker restart): asked again.
_TRANSIENT = {KafkaError.NOT_COORDINATOR, KafkaError.COORDINATOR_LOAD_IN_PROGRESS, KafkaError.COORDINATOR_NOT_AVAILABLE,
              KafkaError._TIMED_OUT}


def _retrying(call, attempts: int = 20, wait_s: float = 0.5):
    for i in range(attempts):
        try:
            return call()
        except KafkaException as exc:
            if exc.args[0].code() not in _TRANSIENT or i == attempts - 1:
                raise
            time.sleep(wait_s)


@dataclass
class Sample:
    t: float  # epoch seconds
    group: str
    topic: str
    partitions: int
    end_offsets: dict[int, int]
    committed: dict[int, int]
    arrival_rate: float | None
    processing_rate: float | None
    lag: int
    members: int
    group_state: str
    latency_p50_s: float | None
    latency_p99_s: float | None
    head_age_s: float | None  # age of the oldest record not committed yet
    completed: int  # records committed since the last sample
    workers: dict[str, WorkerStats] = field(default_factory=dict)

    @property
    def settled(self) -> bool:
        return self.group_state.lower() == "stable"

    @property
    def latency_s(self) -> float | None:
        """The latency the planner watches: the completed records' p99, or the head of line's age if older."""
        vals = [v for v in (self.latency_p99_s, self.head_age_s) if v is not None]
        return max(vals) if vals else None

    @property
    def busy_fraction(self) -> float | None:
        vals = [w.busy_fraction for w in self.workers.values() if w.busy_fraction is not None]
        return float(np.mean(vals)) if vals else None

    @property
    def true_rate(self) -> float | None:
        """Records per busy second of one worker, pooled over the workers that logged."""
        rec = sum(w.records for w in self.workers.values())
        busy = sum(w.busy_s for w in self.workers.values())
        return rec / busy if busy > 0 and rec > 0 else None


class Monitor:
    """Samples one group on one topic; keep one per (group, topic) and call sample() periodically."""

    def __init__(self, group: str, topic: str, *, index_timestamps: bool = True):
        self.group, self.topic = group, topic
        self.c = Consumer({**consumer_config(group), "logger": CLIENT_LOGGER})  # never subscribes: reads only
        self.admin = AdminClient({"bootstrap.servers": config.get("OSR_KAFKA_BOOTSTRAP"), "logger": CLIENT_LOGGER})
        md = self.c.list_topics(topic, timeout=10).topics[topic]
        if md.error is not None:
            raise ValueError(f"topic {topic!r}: {md.error}")
        self.partitions = len(md.partitions)
        self.index = TimestampIndex(topic, self.partitions) if index_timestamps else None
        if self.index:
            self.index.start()
        self.logs = WorkerLogs()
        self._prev: Sample | None = None

    def close(self):
        if self.index:
            self.index.stop()
        self.c.close()

    def offsets(self, timeout: float = 10.0) -> tuple[dict[int, int], dict[int, int]]:
        """(log-end offset, committed offset) per partition, from the broker (committed -1 -> low watermark)."""
        parts = [TopicPartition(self.topic, p) for p in range(self.partitions)]
        committed = {tp.partition: tp.offset for tp in _retrying(lambda: self.c.committed(parts, timeout=timeout))}
        end, done = {}, {}
        for p in range(self.partitions):
            low, high = self.c.get_watermark_offsets(TopicPartition(self.topic, p), timeout=timeout, cached=False)
            end[p] = high
            done[p] = committed[p] if committed[p] >= 0 else low
        return end, done

    def group_info(self, timeout: float = 10.0) -> tuple[str, int]:
        """(state, members) of the group as the coordinator reports it."""
        try:
            desc = self.admin.describe_consumer_groups([self.group], request_timeout=timeout)[self.group].result()
        except Exception as exc:  # noqa: BLE001 - e.g. the coordinator still loading: not settled
            if isinstance(getattr(exc, "args", [None])[0], KafkaError):
                return f"unknown ({exc.args[0].str()})", 0
            return f"unknown ({exc})", 0
        state = getattr(desc.state, "name", str(desc.state))
        return state, len(desc.members)

    def sample(self, worker_logs: dict[str, Path] | None = None) -> Sample:
        t = time.time()
        end, done = self.offsets()
        state, members = self.group_info()
        prev = self._prev
        lat, head = [], []
        completed = 0
        for p in range(self.partitions):
            lo = prev.committed[p] if prev else done[p]
            if self.index and done[p] > lo:
                lat += [t - ts for ts in self.index.completed(p, lo, done[p])]
            completed += max(done[p] - lo, 0) if prev else 0
            if self.index and end[p] > done[p]:
                ts = self.index.at(p, done[p])
                if ts is not None:
                    head.append(t - ts)
        dt = t - prev.t if prev else 0.0
        s = Sample(t, self.group, self.topic, self.partitions, end, done,
                   (sum(end.values()) - sum(prev.end_offsets.values())) / dt if prev and dt > 0 else None,
                   (sum(done.values()) - sum(prev.committed.values())) / dt if prev and dt > 0 else None,
                   sum(max(end[p] - done[p], 0) for p in end), members, state,
                   float(np.percentile(lat, 50)) if lat else None, float(np.percentile(lat, 99)) if lat else None,
                   max(head) if head else None, completed,
                   self.logs.read(worker_logs) if worker_logs else {})
        self._prev = s
        return s
