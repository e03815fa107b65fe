"""The stream's one hop: a micro-batch of raw uploads -> fused moments -> features -> scores -> decisions.

Why one hop and not four agents: each Kafka hop cost the worker ~0.4 ms per message in Faust
and aiokafka (a profile of the four-agent chain spent ~45 % of its time there), an upload
became ~10 messages, and every hop waited for its own fetch. Here a micro-batch is validated,
fused per person (`filtering.stage`), turned into feature rows, scored with one model call,
checked for staleness and decided by the tuner, all in one call; the agent then publishes
only what users read (state.features for the store, osr.scores for the CRM,
tuner.decisions for `osr tuner explain`, push.approved for the push gateway) and writes each
touched person's state once.

Push only while the state holds: when a person's later moment is already known (a backlog, or
a moment released late), the earlier moment's push is dropped if the person's state has moved
on since (pipelines.online.staleness), with the reason recorded as the decision.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from pipelines import config
from pipelines.contracts import TOPICS, DeadLetter, FeatureRow, Notification, ScoredEvent, TunerDecision
from pipelines.filtering.stage import Arrival, admit, remember
from pipelines.online.features import FEATURE_COLUMNS, features_stage, next_history
from pipelines.online.osr_score import score_stage
from pipelines.online.tuner import TunerStage

STAGES = ("filter", "features", "score", "tune")

#: Ticks a worker keeps in its "released by" index per partition: a redelivery after a crash reaches
#: back only to the last commit (~3 s; a worker ticks every OSR_TICK_S = 0.5 s).
TICKS_KEPT = 64


def _tick_prefix() -> str:
    return config.topic(TOPICS.stream_ticks) + ":"


@dataclass
class ChainOut:
    """A micro-batch's results, in the order they should be published."""

    states: dict[str, dict] = field(default_factory=dict)  # person -> new state (touched people only)
    features: list[FeatureRow] = field(default_factory=list)
    scored: list[ScoredEvent] = field(default_factory=list)
    decisions: list[TunerDecision] = field(default_factory=list)
    approved: list[Notification] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))

    @property
    def stale(self) -> int:
        return sum(d["reason"].startswith("stale") for d in self.decisions)


@dataclass
class Taken:
    """One person's part of a micro-batch: feature rows (new and re-emitted), dead letters, new state."""

    rows: list[FeatureRow]
    dead: list[DeadLetter]
    state: dict | None  # None: nothing taken, the stored state stands (no table write)
    features_s: float = 0.0


def take_person(arrivals: list[Arrival], before: dict | None, snapshot, now: float | None, hold_s: float,
                clock=time.perf_counter, tick: str | None = None) -> Taken:
    """validate -> fuse -> features for one person's records, as the stream and the backfill both run it.

    snapshot: needs `registered`, `users`, `stores_xy` (and `devices_of` for the device registry)."""
    devices_of = getattr(snapshot, "devices_of", None)
    res, st = admit(arrivals, before, getattr(snapshot, "registered", None), devices_of, now, hold_s, tick)
    if (not (res.moments or res.replays) and st["pending"] == (before or {}).get("pending", {})
            and not (before or {}).get("dead")):
        # all dead-lettered, or nothing due: no state write, no table key (a replay of these records
        # meets the same state and dead-letters them again; a stored list of the last batch's dead
        # letters is cleared by a write, or it would re-emit them after a later crash)
        return Taken([], res.dead, None)
    rows = [dict(zip(FEATURE_COLUMNS, values)) for values in res.replays]
    dead = list(res.dead)
    t1 = clock()
    for fused, sources, released_by in res.moments:
        row, letter = features_stage(fused, snapshot, next(iter(sources.values())), st["history"])
        if letter is not None:
            dead.append(letter)
            st["dead"][letter["source"]] = letter["reason"]
            continue
        st["history"] = next_history(st["history"], row)
        remember(st, fused, sources, [row[c] for c in FEATURE_COLUMNS], released_by, keep=len(res.moments))
        rows.append(row)
    return Taken(rows, dead, st, clock() - t1)


class Chain:
    """validate -> fuse -> features -> score -> tune over one micro-batch; pure apart from the clock."""

    def __init__(self, tuner: TunerStage | None = None, hold_s: float = 2.0):
        self.tuner = tuner or TunerStage()
        self.hold_s = hold_s

    def run(self, by_person: dict[str, list[Arrival]], state_of, snapshot, now=None,
            ticks: dict[str, str] | None = None) -> ChainOut:
        """by_person: each person's arrivals in partition order (a person with an empty list is only
        checked for moments held too long); state_of: person -> stored state or None; now: the stream
        time (see stage.admit), one float for everyone or {person: float | None}; ticks: {person: source
        of the tick record} for people looked at because of a tick."""
        out = ChainOut()
        clock = time.perf_counter
        t0 = clock()
        rows: list[FeatureRow] = []
        latest: dict[str, FeatureRow] = {}
        for person, arrivals in by_person.items():
            when = now.get(person) if isinstance(now, dict) else now
            taken = take_person(arrivals, state_of(person) or None, snapshot, when, self.hold_s, clock,
                                (ticks or {}).get(person))
            out.dead += taken.dead
            out.seconds["features"] += taken.features_s
            if taken.state is None:
                continue
            rows += taken.rows
            if taken.state["recent"]:
                latest[person] = dict(zip(FEATURE_COLUMNS, taken.state["recent"][-1][2]))
            out.states[person] = taken.state
        out.seconds["filter"] = clock() - t0 - out.seconds["features"]
        out.features = rows

        t2 = clock()
        scored, dead = score_stage(rows, snapshot)
        out.scored, out.dead = scored, out.dead + dead
        t3 = clock()
        out.seconds["score"] = t3 - t2

        by_id = {r["event_id"]: r for r in rows}
        for s in scored:
            st = out.states[s["user_id"]]
            note, decision, st["tuner"] = self.tuner.decision(
                s, snapshot, st["tuner"], scored_state=by_id[s["event_id"]], latest_state=latest.get(s["user_id"]))
            out.decisions.append(decision)
            if note is not None:
                out.approved.append(note)
        out.seconds["tune"] = clock() - t3
        return out


class HeldPeople:
    """Who has moments waiting for devices, by partition: a tick looks at those, not at every person.

    Kept per worker process and synced with the partitions it owns: a partition gained at start or
    in a later rebalance (another worker died) comes with its recovered table, whose waiting people
    are looked up once; a partition lost is forgotten."""

    def __init__(self):
        self.by_partition: dict[int, set[str]] = {}
        self.partitions: set[int] = set()
        self.by_tick: dict[str, set[str]] = {}  # tick source -> people whose remembered moments it released

    def sync(self, assigned: set[int], items, partition_of) -> None:
        """assigned: the partitions owned now; items(): (person, state) of the table (read only when a
        partition is new); partition_of: person -> partition of their records."""
        for p in self.partitions - assigned:
            self.by_partition.pop(p, None)
        new = assigned - self.partitions
        if new:
            for person, state in items():
                if state and partition_of(person) in new:
                    self.update(person, partition_of(person), state)
        self.partitions = set(assigned)

    def update(self, person: str, partition: int, state: dict) -> None:
        people = self.by_partition.setdefault(partition, set())
        if state.get("pending"):
            people.add(person)
        else:
            people.discard(person)
        prefix = _tick_prefix()
        for entry in state.get("recent") or ():
            released_by = entry[3] if len(entry) > 3 else None
            if released_by and released_by.startswith(prefix):
                self.by_tick.setdefault(released_by, set()).add(person)
                self._prune(released_by)

    def due(self, partition: int) -> list[str]:
        return sorted(self.by_partition.get(partition, ()))

    def released_by(self, tick_source: str) -> list[str]:
        """People whose remembered moments this tick released (a redelivered tick re-emits them)."""
        return sorted(self.by_tick.get(tick_source, ()))

    def _prune(self, newest: str) -> None:
        _topic, p, o = newest.rsplit(":", 2)
        if len(self.by_tick) <= TICKS_KEPT * max(len(self.partitions), 1):
            return
        for src in list(self.by_tick):
            _t, sp, so = src.rsplit(":", 2)
            if sp == p and int(so) < int(o) - TICKS_KEPT:
                del self.by_tick[src]


class BatchTiming:
    """What the process agent's micro-batches cost, summed between two reports (an operator's view:
    records per batch, the chain, waiting for the state's ack, publishing the results). Ticks are
    counted apart from the records: they cost almost nothing, and a planner that divides records by
    busy time (pipelines.capacity) must not take them for work."""

    def __init__(self):
        self.reset()

    def reset(self) -> None:
        self.batches = self.records = self.ticks = self.moments = 0
        self.chain_s = self.state_ack_s = self.publish_s = 0.0

    def add(self, records: int, moments: int, chain_s: float, state_ack_s: float, publish_s: float,
            ticks: int = 0) -> None:
        self.batches += 1
        self.records += records
        self.ticks += ticks
        self.moments += moments
        self.chain_s += chain_s
        self.state_ack_s += state_ack_s
        self.publish_s += publish_s

    def report(self) -> str | None:
        if not self.batches:
            return None
        b = self.batches
        line = (f"{b} batches, {self.records} records ({self.records / b:.1f}/batch), {self.ticks} ticks, "
                f"{self.moments} moments; "
                f"per batch: chain {1000 * self.chain_s / b:.1f} ms, state ack {1000 * self.state_ack_s / b:.1f} ms, "
                f"publish {1000 * self.publish_s / b:.1f} ms")
        self.reset()
        return line
