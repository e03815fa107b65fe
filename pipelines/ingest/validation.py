"""Validation of incoming sensor uploads: a bad upload gets a reason, never an exception.

One upload = one device's batch of readings (arrays), so Faust's per-message cost
is paid once per ~60 readings rather than once per reading.

`parse_sensor_event` never raises for bytes, str or dict input: whatever a device, a
buggy client or an attacker sends ends as `(None, reason)`, and the reason names what
broke (the dead-letter table is read by operators). The checks run in this order, the
cheap ones on the raw message first:

1. size (`MAX_UPLOAD_BYTES`, before anything is decoded), UTF-16/32 and BOM sniffing,
   strict UTF-8 decoding, a nesting-depth scan (`MAX_JSON_DEPTH`, only when the text
   has enough brackets to be deep at all), then `json.loads`;
2. the object: ids (non-empty printable strings, no NUL / control characters or lone
   surrogates, <= `MAX_ID_CHARS`), device_type, the arrays (lists of equal length,
   `MIN_READINGS..MAX_READINGS`);
3. the numbers of each array, in one C-level pass each (type set, sum, min, max):
   JSON numbers only (no strings, booleans, nulls except in hr), finite (no NaN /
   Infinity), no magnitude beyond `MAX_ABS_NUMBER` (a 400-digit integer is compared
   as an int, never converted to float where it would overflow);
4. the time axis: strictly increasing, epoch seconds (not milliseconds), after
   `PLATFORM_EPOCH`, at most `MAX_FUTURE_SKEW_S` ahead of `now`, at most `MAX_AGE_S`
   behind it (only when the caller passes `now`, see below), spanning <= `MAX_SPAN_S`;
5. the physical ranges: coordinates, acceleration, heart rate.

Which clock bounds an upload's age: `now` defaults to the wall clock for the future
bound (a far-future reading would move the tuner's day forward and silence a person),
but the age bound applies only when the caller passes `now` explicitly. The synthetic
stream day is a fixed date (PopulationParams.stream_day), so a wall-clock age bound
would dead-letter every replayed upload once that date is a week old; a caller that
knows its clock (a live deployment, or a replay passing its own replay clock) passes
it and gets the age bound too.
"""

from __future__ import annotations

import bisect
import json
import math
import operator
import re
import sys
import time

import orjson
from functools import partial
from itertools import accumulate

from pipelines.contracts import DeadLetter, Upload

DEVICE_TYPES = ("phone", "watch")
MAX_READINGS = 3600
MIN_READINGS = 2
ARRAY_FIELDS = ("ts", "x", "y", "acc")
ID_FIELDS = ("event_id", "user_id", "device_id")
MAX_ID_CHARS = 200
HR_RANGE = (25.0, 250.0)  # bpm: below any living adult at rest, above any measured maximum
#: metres; anything larger is a unit or encoding error (millimetres, E7 degrees), not a GPS spike.
#: Kept at 1e7 rather than the 10 km synthetic city: a real city frame can be a metro area, and
#: spikes beyond the city are the Kalman gate's job, not the validator's.
COORD_LIMIT = 1e7
#: m/s^2: devices report linear acceleration |a| - g (gravity removed), so a reading lies between
#: -g (free fall) and 16 g (~157 m/s^2, the full scale of phone and watch accelerometers); the
#: synthetic population's noisy readings dip a little below 0 at rest, as real ones do.
ACC_RANGE = (-9.81, 157.0)
#: Any number beyond this magnitude is refused before a field's own range is looked at (the
#: largest sane value is a timestamp, ~2e9; epoch milliseconds, ~2e12, pass this and get their
#: own reason; epoch micro- or nanoseconds and 400-digit integers are refused here).
MAX_ABS_NUMBER = 1e15
#: Epoch seconds stop at ~1e11 (year 5138); values above are milliseconds or microseconds.
MAX_EPOCH_SECONDS = 1e11
#: 2000-01-01T00:00:00Z: the platform's epoch; anything earlier (1970, negative) is a device
#: clock that was never set.
PLATFORM_EPOCH = 946_684_800.0
#: seconds a reading may lie ahead of `now` (device clocks drift; NTP-synced ones by far less).
MAX_FUTURE_SKEW_S = 300.0
#: seconds an upload may lie behind an explicit `now` (a device offline for a week is the limit;
#: older batches are history, not stream).
MAX_AGE_S = 7 * 86400.0
#: seconds from first to last reading: an upload carries at most 3600 readings at 1 Hz (1 h),
#: and devices pause sampling (dropouts, background limits), so twice that is the limit.
MAX_SPAN_S = 2 * 3600.0
#: bytes of a raw message (of its UTF-8 form for str input); a full 3600-reading upload is ~200 kB.
MAX_UPLOAD_BYTES = 512 * 1024
#: nesting levels of the JSON: an upload is 2 (object > arrays); extra fields may nest a little.
MAX_JSON_DEPTH = 32
#: characters of a dead letter's payload.
MAX_PAYLOAD_CHARS = 10_000

_NUMBER_TYPES = frozenset((float, int))
_not_none = partial(operator.is_not, None)
#: a JSON string, or an unterminated one running to the end (so the match never fails and
#: restarts: linear even on '"\\"\\"...' floods); possessive, so no backtracking
_JSON_STRING = re.compile(r'"(?:[^"\\]++|\\.)*+(?:"|\\?\Z)', re.S)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_DEPTH_DELTA = {"[": 1, "{": 1, "]": -1, "}": -1}
#: what may follow a parse error when the text was cut short: nothing, or the start of a number
#: or literal (json stops at "1794787200." or "nul" before the end)
_PARTIAL_TOKEN = re.compile(r"\s*(?:-?[0-9]*\.?[0-9]*(?:[eE][-+]?[0-9]*)?"
                            r"|n(?:u(?:l)?)?|t(?:r(?:u)?)?|f(?:a(?:l(?:s)?)?)?)\s*")
_SURROGATE = re.compile("[\ud800-\udfff]")
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


class _Reject(Exception):
    """Internal: a check failed with this reason."""


def _show(v, limit: int = 60) -> str:
    """repr of a value for a reason, shortened, and never raising (huge ints, deep nesting)."""
    try:
        text = repr(v)
    except Exception:  # noqa: BLE001 - a reason must be built whatever the value
        return f"<{type(v).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _json_depth(text: str) -> int:
    """How deep brackets outside strings nest: strings and other text are cut out by regex, then
    a running sum over the brackets (C-level throughout; linear, no backtracking)."""
    brackets = _NOT_BRACKET.sub("", _JSON_STRING.sub("", text))
    return max(accumulate(map(_DEPTH_DELTA.__getitem__, brackets)), default=0)


def _decode(raw: bytes) -> str:
    """Strict UTF-8 text of a raw message, or _Reject saying which encoding problem it has."""
    head = raw[:4]
    if head[:2] in (b"\xff\xfe", b"\xfe\xff") or b"\x00" in head:
        raise _Reject("not JSON: UTF-16 (or UTF-32) encoded bytes (byte-order mark or NUL bytes); "
                      "the contract is UTF-8 JSON")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        bad = raw[exc.start: exc.start + 1]
        raise _Reject(f"not JSON: not UTF-8 text (invalid byte 0x{bad.hex()} at offset {exc.start})") from None


def _loads(text: str):
    """json.loads with the depth bound, and every parser failure turned into a reason."""
    if not text.strip():
        raise _Reject("not JSON: empty message")
    if text[0] == "\ufeff":
        raise _Reject("not JSON: starts with a UTF-8 byte-order mark; the contract is UTF-8 JSON without one")
    if text.count("[") + text.count("{") > MAX_JSON_DEPTH and _json_depth(text) > MAX_JSON_DEPTH:
        raise _Reject(f"not JSON: nested deeper than {MAX_JSON_DEPTH} levels (an upload is 2)")
    try:  # orjson first (~4x faster on an upload); anything it refuses goes the stdlib way, whose reasons we keep
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        pass
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        msg = exc.msg
        cut = (msg.startswith("Unterminated string") or _PARTIAL_TOKEN.fullmatch(text, exc.pos)
               or (msg.startswith("Invalid \\uXXXX") and len(text) - exc.pos < 6))
        if cut:
            raise _Reject(f"not JSON: truncated (ends inside a value at char {exc.pos}: {msg})") from None
        raise _Reject(f"not JSON: malformed at char {exc.pos}: {msg[:80]}") from None
    except RecursionError:
        raise _Reject(f"not JSON: nested deeper than the parser can follow (limit {MAX_JSON_DEPTH})") from None
    except ValueError as exc:  # int() refuses literals of more than sys.get_int_max_str_digits() digits
        if "digits" not in str(exc):
            raise
        raise _Reject(f"number too large: an integer literal with too many digits "
                      f"(more than {sys.get_int_max_str_digits()})") from None


def _id_problem(f: str, v) -> str | None:
    if v is None:
        return f"field {f!r} missing (or null)"
    if not isinstance(v, str):
        return f"field {f!r} is {type(v).__name__}, not a string"
    if not v:
        return f"field {f!r} is empty"
    if len(v) > MAX_ID_CHARS:
        return f"field {f!r} is {len(v)} chars long (limit {MAX_ID_CHARS})"
    if not v.isprintable():
        if _SURROGATE.search(v):
            return f"field {f!r} holds a lone surrogate (not encodable as UTF-8): {_show(v)}"
        if _CONTROL.search(v):
            return f"field {f!r} holds a NUL or control character: {_show(v)}"
        return f"field {f!r} holds a non-printable character: {_show(v)}"
    return None


def _bad_element(f: str, values, allowed: frozenset) -> str:
    """The reason for the first element of `values` whose type is not allowed (slow path only)."""
    for v in values:
        if type(v) in allowed:
            continue
        if isinstance(v, bool):
            return f"field {f!r} has a non-numeric reading: boolean {_show(v)} (readings are JSON numbers)"
        if isinstance(v, (int, float)):  # a subclass (numpy float64 in a dict): fine
            continue
        if isinstance(v, str):
            return f"field {f!r} has a non-numeric reading: string {_show(v, 30)} (numbers must not be quoted)"
        if v is None:
            return f"field {f!r} has a non-numeric reading: null (only hr may hold nulls)"
        return f"field {f!r} has a non-numeric reading: {type(v).__name__} {_show(v, 30)}"
    return ""


def _numbers(f: str, values, allowed: frozenset = _NUMBER_TYPES) -> tuple[float, float]:
    """(min, max) of a list of JSON numbers, or _Reject naming the first problem.

    One C-level pass each for the type set, the sum (finite iff every reading is, once
    magnitudes are bounded) and min / max; Python-level work only on the failure path.
    """
    kinds = set(map(type, values))
    if not kinds <= allowed:
        problem = _bad_element(f, values, allowed)
        if problem:
            raise _Reject(problem)
    try:
        total = sum(values)
        finite = type(total) is int or math.isfinite(total)
    except OverflowError:  # an int too large for a float, next to a float
        raise _Reject(f"field {f!r} has a number too large to be a reading (|v| > {MAX_ABS_NUMBER:g})") from None
    if not finite:
        for v in values:
            if isinstance(v, float) and not math.isfinite(v):
                what = "NaN" if v != v else ("Infinity" if v > 0 else "-Infinity")
                raise _Reject(f"field {f!r} has a non-numeric or non-finite reading: {what} "
                              f"(NaN / Infinity are not JSON numbers; 1e400 overflows to Infinity)")
        # every reading finite, yet the sum overflowed: the magnitudes are absurd
    lo, hi = min(values), max(values)
    if not finite or hi > MAX_ABS_NUMBER or lo < -MAX_ABS_NUMBER:
        raise _Reject(f"field {f!r} has a number too large to be a reading (|v| > {MAX_ABS_NUMBER:g})")
    return lo, hi


def _check_time(ts: list, lo: float, hi: float, now: float | None) -> None:
    n = len(ts)
    if hi > MAX_EPOCH_SECONDS:
        raise _Reject(f"ts {hi:.6g} is not epoch seconds (above {MAX_EPOCH_SECONDS:g}): milliseconds? "
                      f"the contract is epoch seconds")
    if lo < PLATFORM_EPOCH:
        raise _Reject(f"ts {lo:.6g} is before the platform epoch 2000-01-01 (device clock not set?)")
    clock = time.time() if now is None else now
    limit = clock + MAX_FUTURE_SKEW_S
    if hi > limit:
        ahead = bisect.bisect_right(ts, limit)
        if ahead == 0:
            raise _Reject(f"upload is from the future: starts {lo - clock:.0f} s after now "
                          f"(allowed skew {MAX_FUTURE_SKEW_S:g} s)")
        raise _Reject(f"{n - ahead} of {n} readings are in the future: the last {hi - clock:.0f} s after now "
                      f"(allowed skew {MAX_FUTURE_SKEW_S:g} s)")
    if now is not None and lo < now - MAX_AGE_S:
        raise _Reject(f"upload too old: starts {(now - lo) / 86400:.1f} days before now "
                      f"(limit {MAX_AGE_S / 86400:g} days)")
    if hi - lo > MAX_SPAN_S:
        raise _Reject(f"readings span {hi - lo:.0f} s; an upload covers at most {MAX_SPAN_S:g} s")


def _validate(raw, now: float | None) -> Upload:
    if isinstance(raw, dict):
        event = raw
    else:
        if isinstance(raw, (bytearray, memoryview)):
            raw = bytes(raw)
        if isinstance(raw, bytes):
            if len(raw) > MAX_UPLOAD_BYTES:
                raise _Reject(f"message too large: {len(raw)} bytes (limit {MAX_UPLOAD_BYTES})")
            text = _decode(raw)
        elif isinstance(raw, str):
            size = len(raw)
            if MAX_UPLOAD_BYTES // 4 < size <= 4 * MAX_UPLOAD_BYTES:  # its UTF-8 size may exceed the limit
                size = len(raw.encode("utf-8", "surrogatepass"))
            if size > MAX_UPLOAD_BYTES:
                raise _Reject(f"message too large: {size} bytes (limit {MAX_UPLOAD_BYTES})")
            text = raw
        else:
            raise _Reject(f"not JSON: a {type(raw).__name__}, not bytes, str or a dict")
        event = _loads(text)
    if not isinstance(event, dict):
        raise _Reject(f"not a JSON object but {type(event).__name__}")
    for f in ID_FIELDS:
        p = _id_problem(f, event.get(f))
        if p:
            raise _Reject(p)
    device_type = event.get("device_type")
    if not isinstance(device_type, str) or device_type not in DEVICE_TYPES:
        raise _Reject(f"device_type {_show(device_type)} not one of {DEVICE_TYPES}")
    n = None
    for f in ARRAY_FIELDS:
        arr = event.get(f)
        if not isinstance(arr, list):
            raise _Reject(f"field {f!r} missing (or null)" if arr is None else
                          f"field {f!r} is not a list but {type(arr).__name__}")
        if n is None:
            n = len(arr)
        elif len(arr) != n:
            raise _Reject(f"field {f!r} has {len(arr)} readings, ts has {n}")
    if n < MIN_READINGS:
        raise _Reject(f"{n} readings, fewer than the {MIN_READINGS} an upload must carry")
    if n > MAX_READINGS:
        raise _Reject(f"{n} readings, more than the {MAX_READINGS} an upload may carry")
    ranges = {f: _numbers(f, event[f]) for f in ARRAY_FIELDS}
    ts = event["ts"]
    if not all(map(operator.lt, ts, ts[1:])):
        raise _Reject("timestamps not strictly increasing")
    _check_time(ts, *ranges["ts"], now)
    for f in ("x", "y"):
        lo, hi = ranges[f]
        if hi > COORD_LIMIT or lo < -COORD_LIMIT:
            raise _Reject(f"coordinate beyond {COORD_LIMIT:g} m ({f} = {hi if hi > COORD_LIMIT else lo:.6g})")
    lo, hi = ranges["acc"]
    if lo < ACC_RANGE[0] or hi > ACC_RANGE[1]:
        raise _Reject(f"acceleration {lo if lo < ACC_RANGE[0] else hi:.6g} m/s^2 outside "
                      f"{ACC_RANGE[0]:g}..{ACC_RANGE[1]:g} m/s^2 (-1 g..16 g)")
    hr = event.get("hr")
    if hr is None:
        event["hr"] = [None] * n
    elif not isinstance(hr, list) or len(hr) != n:
        raise _Reject("field 'hr' must be a list as long as ts (null where no reading)")
    else:
        kinds = set(map(type, hr))
        values = hr if type(None) not in kinds else list(filter(_not_none, hr))
        if values:
            lo, hi = _numbers("hr", values)
            if lo < HR_RANGE[0] or hi > HR_RANGE[1]:
                v = lo if lo < HR_RANGE[0] else hi
                raise _Reject(f"heart rate {v!r} outside {HR_RANGE[0]:g}..{HR_RANGE[1]:g} bpm")
    return event


def parse_sensor_event(raw: bytes | str | dict, now: float | None = None) -> tuple[Upload | None, str | None]:
    """Return (event, None) for a valid upload, or (None, reason) for a bad one; never raises.

    now: the clock (epoch seconds) the time bounds refer to; None = the wall clock, and then
    only the future bound applies (see the module docstring for why the age bound needs `now`).
    """
    try:
        return _validate(raw, now), None
    except _Reject as exc:
        return None, str(exc)
    except Exception as exc:  # noqa: BLE001 - a gap in the checks must still be a dead letter, not a crash
        return None, f"invalid upload: {exc.__class__.__name__}: {_show(str(exc), 80)}"


def _utf8_text(text: str) -> str:
    """Text that encodes as UTF-8 (a lone surrogate in str input becomes '?')."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")


def _event_id_of(raw) -> str | None:
    """The upload's event_id, if the payload is a JSON object with a valid one; never raises."""
    try:
        if isinstance(raw, dict):
            obj = raw
        else:
            if isinstance(raw, (bytes, bytearray, memoryview)):
                if len(raw) > MAX_UPLOAD_BYTES:
                    return None
                text = bytes(raw).decode("utf-8", errors="replace")
            elif isinstance(raw, str):
                if len(raw) > MAX_UPLOAD_BYTES:
                    return None
                text = raw
            else:
                return None
            obj = _loads(text)
        event_id = obj.get("event_id") if isinstance(obj, dict) else None
        return event_id if _id_problem("event_id", event_id) is None else None
    except Exception:  # noqa: BLE001 - not finding the id is fine, raising is not
        return None


def _payload_text(raw) -> str:
    if isinstance(raw, (bytes, bytearray, memoryview)):
        # 4 bytes per char at most, and each undecodable byte becomes one U+FFFD
        return bytes(raw[: 4 * MAX_PAYLOAD_CHARS]).decode("utf-8", errors="replace")[:MAX_PAYLOAD_CHARS]
    if isinstance(raw, str):
        return _utf8_text(raw[:MAX_PAYLOAD_CHARS])
    if isinstance(raw, dict):
        try:
            text = json.dumps(raw, ensure_ascii=False, allow_nan=True, default=repr)
        except Exception:  # noqa: BLE001 - deep nesting, huge ints, odd keys
            text = _show(raw, MAX_PAYLOAD_CHARS)
        return _utf8_text(text[:MAX_PAYLOAD_CHARS])
    return _utf8_text(_show(raw, MAX_PAYLOAD_CHARS))


def deadletter_record(raw: bytes | str | dict, reason: str, source: str) -> DeadLetter:
    """The message sent to the dead-letter topic: the reason, where it came from, and the payload as received.

    Never raises; the payload is UTF-8-safe text (undecodable bytes replaced) of at most
    MAX_PAYLOAD_CHARS characters, and event_id is kept only when it is a valid id.
    """
    return {"reason": _utf8_text(str(reason)), "source": _utf8_text(str(source)), "event_id": _event_id_of(raw),
            "payload": _payload_text(raw)}
