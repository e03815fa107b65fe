"""The filter stage of the stream: one raw upload in, a filtered upload or a dead letter out.

Why a function of its own: the Faust agent stays one call, and everything that can go
wrong with an upload (bad JSON, an unknown person, a duplicate, a reading the filter
cannot take) ends here as a dead letter with its reason, never as an exception that
stops the agent.

Redelivery. Faust delivers at least once: after a crash the same record (same
topic:partition:offset) can come again, and its device's Kalman state may or may not
already include it. Each device's entry remembers its last few uploads with the state
*before* each, so a redelivered upload is filtered again from that state: the output is
identical (downstream stages are keyed by event id) and the state does not advance twice
(spike and reading counts stay right). The same event id from another record is a
duplicate upload and is dead-lettered.
"""

from __future__ import annotations

import logging

from pipelines.contracts import DeadLetter, FilteredUpload, event_belongs_to
from pipelines.filtering.kalman import filter_event
from pipelines.ingest.validation import deadletter_record, parse_sensor_event

log = logging.getLogger(__name__)

#: Uploads per device remembered for redelivery. A replay after a crash reaches back only to the
#: last committed offset (Faust flushes every output before it commits, every ~2.8 s); a device
#: uploads about once a minute, a test producer sends a person's moments back to back. A device
#: that sent more than this many uploads inside one commit interval may, after a crash, see its
#: oldest replayed upload dead-lettered as out of order (the reason says so).
REMEMBER = 8


def _entry(device_states: dict, device_id: str) -> dict:
    e = device_states.get(device_id)
    if e is None:
        return {"state": None, "recent": []}
    if "recent" not in e:  # a bare Kalman state from before redelivery memory existed
        return {"state": e, "recent": []}
    return e


def filter_upload(raw: bytes | str, device_states: dict | None, source: str, key: str | None = None,
                  registered=None) -> tuple[FilteredUpload | None, DeadLetter | None, dict | None]:
    """(filtered, None, new device states) for a good upload, (None, dead letter, None) for a bad one.

    device_states: {device_id: {"state", "recent"}} of the upload's person (the stream's table).
    source: where the upload came from (topic:partition:offset), kept in the dead letter.
    key: the message key; the stream keeps per-person state by it, so it must be the upload's user id.
    registered: callable (user_id, device_id) -> reason or None (the live snapshot's registry).
    """
    upload, reason = parse_sensor_event(raw)
    if reason is None:
        reason = _identity_problem(upload, key, registered)
    if reason is None:
        try:
            states = dict(device_states or {})
            entry = _entry(states, upload["device_id"])
            for event_id, seen_at, before in entry["recent"]:
                if event_id == upload["event_id"]:
                    if seen_at != source:
                        return None, deadletter_record(
                            raw, f"duplicate upload: event id already processed from {seen_at}", source), None
                    filtered, _ = filter_event(upload, before)  # a redelivery: same output, state unchanged
                    return filtered, None, states
            last_ts = (entry["state"] or {}).get("last_ts")
            if last_ts is not None and upload["ts"][0] <= last_ts:
                return None, deadletter_record(
                    raw, f"out of order: first reading at {upload['ts'][0]:.3f} is not after the device's "
                         f"last reading at {last_ts:.3f}", source), None
            filtered, new_state = filter_event(upload, entry["state"])
            new_state["last_ts"] = float(upload["ts"][-1])
            recent = [*entry["recent"], [upload["event_id"], source, entry["state"]]][-REMEMBER:]
            states[upload["device_id"]] = {"state": new_state, "recent": recent}
            return filtered, None, states
        except Exception as exc:  # a reading the filter cannot take must not stop the worker
            log.exception("filter failed on %s", source)
            reason = f"filter error: {exc.__class__.__name__}: {exc}"
    return None, deadletter_record(raw, reason, source), None


def _identity_problem(upload: dict, key: str | None, registered) -> str | None:
    if key is not None and upload["user_id"] != key:
        return f"message key {key[:80]!r} is not the upload's user_id {upload['user_id'][:80]!r}"
    if not event_belongs_to(upload["event_id"], upload["device_id"]):
        return (f"event id {upload['event_id'][:80]!r} is not scoped to device {upload['device_id'][:80]!r} "
                "(reused from another device or person?)")
    if registered is not None:
        return registered(upload["user_id"], upload["device_id"])
    return None
