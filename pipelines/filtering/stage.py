"""The filter stage of the stream: one raw upload in, a filtered upload or a dead letter out.

Why a function of its own: the Faust agent stays one call, and everything that can go
wrong with an upload (bad JSON, a reading the filter cannot take) ends here as a dead
letter with its reason, never as an exception that stops the agent.
"""

from __future__ import annotations

import logging

from pipelines.contracts import DeadLetter, FilteredUpload
from pipelines.filtering.kalman import filter_event
from pipelines.ingest.validation import deadletter_record, parse_sensor_event

log = logging.getLogger(__name__)


def filter_upload(raw: bytes | str, device_states: dict, source: str, key: str | None = None
                  ) -> tuple[FilteredUpload | None, DeadLetter | None, dict | None]:
    """(filtered, None, new device states) for a good upload, (None, dead letter, None) for a bad one.

    device_states: {device_id: Kalman state} of the upload's person (from the stream's table).
    source: where the upload came from (topic:partition:offset), kept in the dead letter.
    key: the message key; the stream keeps per-person state by it, so it must be the upload's user id.
    """
    upload, reason = parse_sensor_event(raw)
    if reason is None and key is not None and upload["user_id"] != key:
        reason = f"message key {key[:80]!r} is not the upload's user_id {upload['user_id'][:80]!r}"
    if reason is None:
        try:
            states = dict(device_states or {})
            filtered, states[upload["device_id"]] = filter_event(upload, states.get(upload["device_id"]))
            return filtered, None, states
        except Exception as exc:  # a reading the filter cannot take must not stop the worker
            log.exception("filter failed on %s", source)
            reason = f"filter error: {exc.__class__.__name__}: {exc}"
    return None, deadletter_record(raw, reason, source), None
