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

Beyond the capacity of the capped workers (pipelines.capacity.admission, the plan the capacity
loop records and `admission_follow` hands the worker): degraded mode scores only each person's
top_k candidates by the preference pre-rank; admission mode also defers the scoring of the
lowest-priority people to a later batch, their moments kept in their state
(pipelines.capacity.deferral). No plan, or a normal one, runs exactly as without.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from pipelines import config
from pipelines.capacity import deferral
from pipelines.capacity.admission import AdmissionPlan
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
    deferred: int = 0  # moments whose scoring waits for a later batch (admission control)
    degraded: int = 0  # moments scored on fewer candidates than they have (degraded mode)
    late: int = 0  # moments scored this batch after waiting

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
            ticks: dict[str, str] | None = None, admission: AdmissionPlan | None = None) -> ChainOut:
        """by_person: each person's arrivals in partition order (a person with an empty list is only
        checked for moments held too long); state_of: person -> stored state or None; now: the stream
        time (see stage.admit), one float for everyone or {person: float | None}; ticks: {person: source
        of the tick record} for people looked at because of a tick; admission: the capacity loop's
        current plan (None: normal)."""
        out = ChainOut()
        clock = time.perf_counter
        t0 = clock()
        rows: list[FeatureRow] = []
        latest: dict[str, FeatureRow] = {}
        waiting: dict[str, list] = {}  # person -> (row, batches waited) of moments whose scoring waited
        own: dict[str, list[FeatureRow]] = {}
        sources: dict[str, list[str]] = {}
        for person, arrivals in by_person.items():
            when = now.get(person) if isinstance(now, dict) else now
            before = state_of(person) or None
            tick = (ticks or {}).get(person)
            taken = take_person(arrivals, before, snapshot, when, self.hold_s, clock, tick)
            out.dead += taken.dead
            out.seconds["features"] += taken.features_s
            sources[person] = [*([tick] if tick else []), *(a.source for a in arrivals)]
            waited = deferral.waiting(before, sources[person])
            if waited:
                waiting[person] = waited
            state = taken.state if taken.state is not None else (dict(before) if waited else None)
            if state is None:
                continue
            rows += taken.rows
            own[person] = taken.rows
            if state["recent"]:
                latest[person] = dict(zip(FEATURE_COLUMNS, state["recent"][-1][2]))
            out.states[person] = state
        out.seconds["filter"] = clock() - t0 - out.seconds["features"]
        out.features = rows

        plan = admission if admission is not None else deferral.NORMAL
        normal = deferral.is_normal(plan) and not waiting
        waits: dict[str, int] = {}
        to_score = rows
        if not normal:  # someone's scoring waited, or a plan limits this batch's: pick what is scored
            to_score = self._admit(plan, out, own, waiting, sources, waits)

        t2 = clock()
        scored, dead = score_stage(to_score, snapshot, top_k=plan.top_k)
        out.scored, out.dead = scored, out.dead + dead
        t3 = clock()
        out.seconds["score"] = t3 - t2

        by_id = {r["event_id"]: r for r in to_score}
        for s in scored:
            st = out.states[s["user_id"]]
            decided_before = not normal and s["event_id"] in ((st["tuner"] or {}).get("decided") or {})
            note, decision, st["tuner"] = self.tuner.decision(
                s, snapshot, st["tuner"], scored_state=by_id[s["event_id"]], latest_state=latest.get(s["user_id"]))
            if not normal:
                self._note(plan, s, decision, st, snapshot, waits.get(s["event_id"], 0), decided_before, out)
            out.decisions.append(decision)
            if note is not None:
                out.approved.append(note)
        out.seconds["tune"] = clock() - t3
        return out

    @staticmethod
    def _admit(plan: AdmissionPlan, out: ChainOut, own: dict, waiting: dict, sources: dict,
               waits: dict[str, int]) -> list[FeatureRow]:
        """Split the batch's people into admitted (scored now, waiting moments first) and deferred
        (their moments kept in their state); fills waits {event id: batches waited}."""
        per_person = {p: deferral.merge(waiting.get(p, []), own.get(p, [])) for p in out.states}
        people = [p for p, r in per_person.items() if r]
        if plan.admit_share < 1.0:
            prio = {p: deferral.priority(out.states[p], per_person[p]) for p in people}
            admitted, deferred = plan.admit(people, prio)
        else:
            admitted, deferred = people, []
        for p in deferred:
            deferral.defer(out.states[p], per_person[p])
            out.deferred += len(per_person[p])
        chosen = set(admitted)
        to_score: list[FeatureRow] = []
        for p in people:  # in the batch's order, not by priority: the output order stays the stream's
            if p not in chosen:
                continue
            deferral.admitted(out.states[p], per_person[p], sources.get(p, []))
            for row, w in per_person[p]:
                to_score.append(row)
                if w:
                    waits[row["event_id"]] = w
        out.late += len(waits)
        return to_score

    @staticmethod
    def _note(plan: AdmissionPlan, scored: ScoredEvent, decision: TunerDecision, st: dict, snapshot,
              waited: int, decided_before: bool, out: ChainOut) -> None:
        """A degraded or deferred moment's decision says so in its reason (also in the tuner's memory,
        so a replay and `osr tuner explain` show the same); the person's priority is kept."""
        n = len(snapshot.topn.get(scored["user_id"], snapshot.popular)[0])
        if plan.top_k is not None and n > plan.top_k:
            out.degraded += 1
        if not deferral.is_normal(plan):
            deferral.note_best(st, scored)
        extra = deferral.annotation(waited, plan.top_k, n)
        if extra and not decided_before:
            decision["reason"] += extra
            entry = ((st["tuner"] or {}).get("decided") or {}).get(scored["event_id"])
            if entry is not None and len(entry) > 2:
                entry[2] = decision["reason"]


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
        if state.get("pending") or state.get("deferred"):  # a device to wait for, or a score (admission)
            people.add(person)
        else:
            people.discard(person)
        prefix = _tick_prefix()
        released = [entry[3] if len(entry) > 3 else None for entry in state.get("recent") or ()]
        released += (state.get("late") or {}).get("by") or []  # the tick that scored deferred moments late
        for released_by in released:
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
        self.deferred = self.degraded = 0

    def add(self, records: int, moments: int, chain_s: float, state_ack_s: float, publish_s: float,
            ticks: int = 0) -> None:
        self.batches += 1
        self.records += records
        self.ticks += ticks
        self.moments += moments
        self.chain_s += chain_s
        self.state_ack_s += state_ack_s
        self.publish_s += publish_s

    def note_admission(self, out: ChainOut) -> None:
        """Count a batch's deferred and degraded moments (admission control; shown only when any)."""
        self.deferred += out.deferred
        self.degraded += out.degraded

    def report(self) -> str | None:
        if not self.batches:
            return None
        b = self.batches
        line = (f"{b} batches, {self.records} records ({self.records / b:.1f}/batch), {self.ticks} ticks, "
                f"{self.moments} moments; "
                f"per batch: chain {1000 * self.chain_s / b:.1f} ms, state ack {1000 * self.state_ack_s / b:.1f} ms, "
                f"publish {1000 * self.publish_s / b:.1f} ms")
        if self.deferred or self.degraded:  # after the figures the capacity monitor parses
            line += f"; admission: {self.deferred} deferred, {self.degraded} degraded"
        self.reset()
        return line
