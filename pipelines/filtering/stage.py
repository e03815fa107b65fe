"""The filter stage of the stream: a person's raw uploads in, their fused moments (or dead letters) out.

Why per person and not per upload: a moment is fused from all of a person's devices (see
`moment.py`), so an upload waits in the person's state until the other registered devices'
uploads of the same moment are there — or until a later moment of that person arrives, or it
has waited OSR_MOMENT_HOLD_S (the stream's ticks release it on a quiet partition); then the
moment is fused from the devices that reported. The wait is measured in stream time (record
timestamps), not by the worker's clock: after a crash or under a backlog the partner upload sits
right behind in the partition, and a wall-clock wait would release its moment without it. Everything that can go wrong with an upload
(bad JSON, an unknown person, a duplicate, a late device, a filter error) ends here as a dead
letter with its reason, never as an exception that stops the agent.

Redelivery. Faust delivers at least once: after a crash the same record (same
topic:partition:offset) can come again, and the person's state may or may not already hold
its moment (the stream logs a person's state, durably, before it publishes what the state
produced). The state remembers the last REMEMBER fused moments with the sources of their
uploads, the record that released them (an upload of the moment, the person's next upload, or
a tick) and the feature row they produced, so a redelivered record re-emits the rows it
released (the scores and the tuner's remembered decision downstream are idempotent by moment
id) without the filters advancing twice; an upload still waiting is recognised by its source.
The same event id from another record is a duplicate upload and is dead-lettered.

How far back a replay reaches: the stream awaits the broker's acks of a batch's results before it
takes the next batch, so only the batch a crash interrupted can have unpublished results. The state
therefore keeps every moment released by its last batch (at least REMEMBER), and the sources and
reasons of the records that batch dead-lettered; an older redelivered record (at or below the
highest offset already taken from its partition) had its results published and is dropped.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from pipelines.contracts import DeadLetter, FilteredUpload, Upload, event_belongs_to
from pipelines.filtering.moment import filter_moment, moment_id, moment_of
from pipelines.ingest.validation import deadletter_record, parse_sensor_event

log = logging.getLogger(__name__)

#: Fused moments per person remembered for redelivery, at the least: every moment the person's last
#: batch released is kept (a test producer sends a person's moments back to back, so a backlog batch
#: can release many), and older ones had their results acknowledged before the next batch began.
REMEMBER = 4


@dataclass(frozen=True)
class Arrival:
    """One record of sensor.raw as the stage sees it."""

    value: bytes | str
    source: str  # topic:partition:offset
    key: str | None
    arrived: float  # the record's time (its producer's timestamp): a held moment's wait starts here


@dataclass
class StageOut:
    """What one person's records of a micro-batch produced."""

    moments: list[tuple[FilteredUpload, dict, str | None]] = field(default_factory=list)  # (fused, {event_id: source}, released by)
    replays: list[list] = field(default_factory=list)  # remembered feature-row values to re-emit
    dead: list[DeadLetter] = field(default_factory=list)


def empty_state() -> dict:
    """A person's stream state: filters, moments waiting for devices, remembered moments, feature
    history and the tuner's memory (one table entry, so one changelog write per person per batch)."""
    return {"filters": None, "t_last": None, "devices": [], "pending": {}, "recent": [], "history": None,
            "tuner": None, "offsets": {}, "dead": {}}


def admit(arrivals: list[Arrival], state: dict | None, registered=None, devices_of=None,
          now: float | None = None, hold_s: float = 2.0, tick: str | None = None) -> tuple[StageOut, dict]:
    """Take one person's records (in partition order) into their state; fuse the moments now ready.

    registered: callable (user_id, device_id) -> reason or None (the live snapshot's registry).
    devices_of: callable user_id -> sorted device ids expected to report, or None when unknown
    (then the devices of the person's last moment are expected).
    now: the person's stream time — the newest record time seen on their partition, or the wall clock
    on a tick when the partition is caught up (moments held longer than hold_s are released);
    None = release nothing by age.
    tick: the source of the tick record this call answers (moments it releases remember it, and a
    redelivered tick re-emits them).
    """
    st = {**empty_state(), **(state or {})}
    st["pending"] = {m: {**p, "uploads": dict(p["uploads"])} for m, p in st["pending"].items()}
    st["recent"] = list(st["recent"])
    st["offsets"] = dict(st["offsets"])
    out = StageOut()
    replayed: set[str] = set()
    dead_before = st["dead"] or {}  # source -> reason: what the last batch dead-lettered
    for source in [tick] if tick else []:
        _replay_released_by(source, st, out, replayed)
    for a in arrivals:
        _replay_released_by(a.source, st, out, replayed)
        if a.source in dead_before:  # redelivered: its dead letter again (it may not have been published)
            out.dead.append(deadletter_record(a.value, dead_before[a.source], a.source))
            continue
        upload, reason = parse_sensor_event(a.value)
        if reason is None:
            reason = _identity_problem(upload, a.key, registered)
        if reason is None:
            reason = _place(upload, a, st, out, replayed)
        if reason is not None:
            out.dead.append(deadletter_record(a.value, reason, a.source))
    trigger = tick or (arrivals[-1].source if arrivals else None)
    _release(st, out, devices_of, now, hold_s, trigger)
    st["dead"] = {d["source"]: d["reason"] for d in out.dead}
    return out, st


def _replay_released_by(source: str, st: dict, out: StageOut, replayed: set) -> None:
    """A redelivered record re-emits the moments it released (their results may not have been published)."""
    for mid, _sources, row, released_by in st["recent"]:
        if released_by == source and mid not in replayed:
            replayed.add(mid)
            out.replays.append(row)


def _place(upload: Upload, a: Arrival, st: dict, out: StageOut, replayed: set) -> str | None:
    """Put a valid upload where it belongs; the reason it cannot be taken, or None."""
    eid = upload["event_id"]
    for mid, sources, row, _released_by in st["recent"]:
        if eid in sources:
            if sources[eid] != a.source:
                return f"duplicate upload: event id already processed from {sources[eid]}"
            if mid not in replayed:  # a redelivery of a moment already fused: the same row again
                replayed.add(mid)
                out.replays.append(row)
            return None
    moment = moment_of(upload)
    held = st["pending"].get(moment)
    if held is not None and eid in held["uploads"]:
        seen = held["uploads"][eid][0]
        return None if seen == a.source else f"duplicate upload: event id already received from {seen}"
    held_last = max((float(u["ts"][-1]) for m, p in st["pending"].items() if m != moment
                     for _src, u in p["uploads"].values() if u["device_id"] == upload["device_id"]), default=None)
    if held_last is not None and upload["ts"][0] <= held_last:
        if _processed_before(a.source, st):
            return None  # a redelivered record whose moment was fused and published before the one waiting
        return (f"out of order: first reading at {upload['ts'][0]:.3f} is not after the device's last "
                f"reading at {held_last:.3f} (a moment still waiting for the person's other devices)")
    if st["t_last"] is not None and upload["ts"][0] <= st["t_last"]:
        if _processed_before(a.source, st):
            return None  # a redelivered record whose moment left the memory long ago: already done
        late = any(moment_id(upload["user_id"], moment) == r[0] for r in st["recent"])
        return (f"late device: moment {moment[:80]!r} was already fused without {upload['device_id'][:80]!r}"
                if late else
                f"out of order: first reading at {upload['ts'][0]:.3f} is not after the person's "
                f"last fused reading at {st['t_last']:.3f}")
    if held is None:
        held = st["pending"][moment] = {"since": a.arrived, "first_ts": upload["ts"][0], "uploads": {}}
    held["uploads"][eid] = [a.source, upload]
    _note_offset(a.source, st)
    return None


def _split_source(source: str) -> tuple[str, int] | None:
    """("topic:partition", offset) of a record's source, or None for a source that is not one."""
    head, _, offset = source.rpartition(":")
    return (head, int(offset)) if head and offset.isdigit() else None


def _note_offset(source: str, st: dict) -> None:
    """Remember the highest offset of the person's records taken into a moment, per topic-partition."""
    where = _split_source(source)
    if where is not None:
        seen = st.setdefault("offsets", {})
        seen[where[0]] = max(where[1], seen.get(where[0], -1))


def _processed_before(source: str, st: dict) -> bool:
    """A record at or below the highest offset already taken from its partition was processed before:
    a person's records arrive in partition order, so this is a redelivery (after a crash the replay
    can reach back past the REMEMBER moments a person's state keeps), not a new upload out of order."""
    where = _split_source(source)
    return where is not None and where[1] <= st.get("offsets", {}).get(where[0], -1)


def _release(st: dict, out: StageOut, devices_of, now, hold_s: float, trigger: str | None) -> None:
    """Fuse, in time order, every held moment that is complete, superseded by a later one, or overdue."""
    if not st["pending"]:
        return
    order = sorted(st["pending"], key=lambda m: st["pending"][m]["first_ts"])
    newest = order[-1]
    for moment in order:
        held = st["pending"][moment]
        uploads = [u for _src, u in held["uploads"].values()]
        user_id = uploads[0]["user_id"]
        expected = (devices_of(user_id) if devices_of else None) or st["devices"]
        have = {u["device_id"] for u in uploads}
        ready = (moment != newest or (expected and have.issuperset(expected))
                 or (now is not None and now - held["since"] >= hold_s))
        if not ready:
            break  # later moments wait behind it: a person's moments are fused in time order
        del st["pending"][moment]
        sources = {u["event_id"]: src for src, u in held["uploads"].values()}
        try:
            fused, st["filters"] = filter_moment(user_id, moment, uploads, st["filters"])
        except Exception as exc:  # noqa: BLE001 - a moment the filter cannot take must not stop the worker
            log.debug("filter failed on %s", moment, exc_info=True)
            for src, u in held["uploads"].values():
                out.dead.append(deadletter_record(u, f"filter error: {exc.__class__.__name__}: {exc}", src))
            continue
        st["t_last"] = max(float(u["ts"][-1]) for u in uploads)
        st["devices"] = sorted(have | set(st["devices"]))
        out.moments.append((fused, sources, trigger))


def remember(st: dict, fused: FilteredUpload, sources: dict, row_values: list, released_by: str | None = None,
             keep: int = REMEMBER) -> None:
    """Keep a fused moment's sources, the record that released it and its feature row for redelivery:
    the last `keep` moments (the caller passes at least the number its batch released, see "How far
    back a replay reaches")."""
    st["recent"] = [*st["recent"], [fused["event_id"], sources, row_values, released_by]][-max(keep, REMEMBER):]


def _identity_problem(upload: dict, key: str | None, registered) -> str | None:
    if key is not None and upload["user_id"] != key:
        return f"message key {key[:80]!r} is not the upload's user_id {upload['user_id'][:80]!r}"
    if not event_belongs_to(upload["event_id"], upload["device_id"]):
        return (f"event id {upload['event_id'][:80]!r} is not scoped to device {upload['device_id'][:80]!r} "
                "(reused from another device or person?)")
    if registered is not None:
        return registered(upload["user_id"], upload["device_id"])
    return None

