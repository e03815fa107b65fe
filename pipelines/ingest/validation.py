"""Validation of incoming sensor uploads: a bad upload gets a reason, never an exception.

One upload = one device's batch of readings (arrays), so Faust's per-message cost
is paid once per ~60 readings rather than once per reading.
"""

from __future__ import annotations

import json
import math

from pipelines.contracts import DeadLetter, Upload

DEVICE_TYPES = ("phone", "watch")
MAX_READINGS = 3600
MIN_READINGS = 2
ARRAY_FIELDS = ("ts", "x", "y", "acc")
ID_FIELDS = ("event_id", "user_id", "device_id")
HR_RANGE = (25.0, 250.0)
COORD_LIMIT = 1e7  # metres; anything larger is a unit or encoding error, not a GPS spike


def _finite_numbers(values) -> bool:
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values)


def parse_sensor_event(raw: bytes | str | dict) -> tuple[Upload | None, str | None]:
    """Return (event, None) for a valid upload, or (None, reason) for a bad one."""
    if isinstance(raw, dict):
        event = raw
    else:
        try:
            event = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            return None, f"not JSON: {exc.__class__.__name__}: {str(exc)[:80]}"
    if not isinstance(event, dict):
        return None, f"not a JSON object but {type(event).__name__}"
    for f in ID_FIELDS:
        v = event.get(f)
        if not isinstance(v, str) or not v or len(v) > 200:
            return None, f"field {f!r} missing or not a non-empty string (<= 200 chars)"
    if event.get("device_type") not in DEVICE_TYPES:
        return None, f"device_type {event.get('device_type')!r} not one of {DEVICE_TYPES}"
    n = None
    for f in ARRAY_FIELDS:
        arr = event.get(f)
        if not isinstance(arr, list):
            return None, f"field {f!r} missing or not a list"
        if n is None:
            n = len(arr)
        elif len(arr) != n:
            return None, f"field {f!r} has {len(arr)} readings, ts has {n}"
        if not _finite_numbers(arr):
            return None, f"field {f!r} has a non-numeric or non-finite reading"
    if not MIN_READINGS <= n <= MAX_READINGS:
        return None, f"{n} readings; an upload carries {MIN_READINGS}..{MAX_READINGS}"
    ts = event["ts"]
    if any(b <= a for a, b in zip(ts, ts[1:])):
        return None, "timestamps not strictly increasing"
    if any(abs(v) > COORD_LIMIT for v in event["x"]) or any(abs(v) > COORD_LIMIT for v in event["y"]):
        return None, f"coordinate beyond {COORD_LIMIT:g} m"
    hr = event.get("hr")
    if hr is None:
        event["hr"] = [None] * n
    elif not isinstance(hr, list) or len(hr) != n:
        return None, "field 'hr' must be a list as long as ts (null where no reading)"
    else:
        for v in hr:
            if v is None:
                continue
            if not _finite_numbers([v]) or not HR_RANGE[0] <= v <= HR_RANGE[1]:
                return None, f"heart rate {v!r} outside {HR_RANGE[0]:g}..{HR_RANGE[1]:g} bpm"
    return event, None


def deadletter_record(raw: bytes | str, reason: str, source: str) -> DeadLetter:
    """The message sent to the dead-letter topic: the reason, where it came from, and the payload as received."""
    text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else str(raw)
    event_id = None
    try:
        obj = json.loads(text)
        if isinstance(obj, dict) and isinstance(obj.get("event_id"), str):
            event_id = obj["event_id"]
    except json.JSONDecodeError:
        pass
    return {"reason": reason, "source": source, "event_id": event_id, "payload": text[:10_000]}
