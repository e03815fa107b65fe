"""Hostile uploads: every way one message can be broken, made from a valid upload, seeded.

For tests and integration runs: `make_hostile(valid, kind, rng)` is the raw message (bytes, as
it would arrive on sensor.raw) of one HOSTILE_KIND, and `expected_reason_fragment(kind)` a
substring that `validation.parse_sensor_event`'s reason for it must contain, so each kind is
refused with a reason of its own. The producer's eight CORRUPTIONS are included (made by
`producer.corrupt`, so there is one definition of each).

`rng` is a `numpy.random.Generator` or a `random.Random`; it picks where and how (which reading,
which bad byte, how deep), never whether the message is bad.

Time-relative kinds: "ts_too_old" is refused only against an explicit `now` (the validator
applies the age bound only then, see its docstring); pass `now=reference_now(valid)`.
"ts_far_future" / "ts_one_far_future" shift by 10-50 years, so they are refused by the wall
clock as well as by `reference_now`.

Handled by the stream, not by the validator (they need knowledge of other messages, so no
kind here makes them): a person or device unknown to the snapshot, a reused event id, a
duplicate (redelivered) upload, uploads of a device out of order or overlapping in time,
and a message key that is not the upload's user_id (the filter stage checks the key).
"""

from __future__ import annotations

import json

from pipelines.ingest import validation as V
from pipelines.ingest.producer import CORRUPTIONS, corrupt

_YEAR_S = 365.25 * 86400.0

#: Reason fragment of each kind (the producer's eight first).
_FRAGMENTS: dict[str, str] = {
    # producer.CORRUPTIONS
    "not_json": "not JSON",
    "missing_field": "field 'x' missing",
    "length_mismatch": "'y' has 57 readings",
    "non_finite": "'acc' has a non-numeric or non-finite reading: Infinity",
    "hr_out_of_range": "heart rate 400",
    "ts_not_increasing": "timestamps not strictly increasing",
    "wrong_device_type": "'toaster'",
    "json_array": "not a JSON object but list",
    # encoding and syntax
    "malformed_json": "not JSON: malformed",
    "truncated_json": "not JSON: truncated",
    "empty_message": "not JSON: empty message",
    "not_utf8": "not UTF-8 text",
    "utf16": "UTF-16",
    "utf8_bom": "UTF-8 byte-order mark",
    "deeply_nested": "nested deeper than",
    "oversized": "message too large",
    # ids
    "lone_surrogate": "lone surrogate",
    "control_char_in_id": "NUL or control character",
    "id_not_string": "not a string",
    "missing_id": "field 'user_id' missing",
    "empty_id": "field 'event_id' is empty",
    "id_too_long": "chars long (limit 200)",
    # types and numbers
    "array_not_list": "is not a list but",
    "number_as_string": "non-numeric reading: string",
    "bool_as_number": "non-numeric reading: boolean",
    "null_in_array": "non-numeric reading: null",
    "huge_int": "number too large to be a reading",
    "huge_int_literal": "integer literal with too many digits",
    "nan": "non-finite reading: NaN",
    # sizes
    "too_many_readings": f"more than the {V.MAX_READINGS}",
    "too_few_readings": f"fewer than the {V.MIN_READINGS}",
    # ranges
    "coord_out_of_range": "coordinate beyond",
    "acc_out_of_range": "acceleration",
    "hr_too_low": "heart rate 12.5 outside",
    # time
    "ts_milliseconds": "milliseconds?",
    "ts_before_epoch": "before the platform epoch",
    "ts_far_future": "upload is from the future",
    "ts_one_far_future": "readings are in the future",
    "ts_too_old": "upload too old",
    "ts_implausible_span": "readings span",
}

HOSTILE_KINDS: tuple[str, ...] = tuple(_FRAGMENTS)
assert set(CORRUPTIONS) <= set(HOSTILE_KINDS)

#: Kinds refused only when the validator is given `now` (see the module docstring).
NEEDS_NOW: frozenset[str] = frozenset({"ts_too_old"})
#: The kinds the stream refuses as it runs (filter_upload validates without `now`): what to mix
#: into an integration run, e.g. produce_population(kinds=STREAM_KINDS, make_bad=make_hostile).
STREAM_KINDS: tuple[str, ...] = tuple(k for k in HOSTILE_KINDS if k not in NEEDS_NOW)

_ARRAYS = ("ts", "x", "y", "acc")


def expected_reason_fragment(kind: str) -> str:
    """A substring the validator's reason for `kind` must contain."""
    return _FRAGMENTS[kind]


def reference_now(valid_upload: dict) -> float:
    """The clock the hostile kinds are made against: one minute after the valid upload's last reading."""
    return float(valid_upload["ts"][-1]) + 60.0


# --- rng helpers: numpy Generator or random.Random --------------------------------------------------

def _int(rng, lo: int, hi: int) -> int:
    """An int in [lo, hi)."""
    return int(rng.integers(lo, hi)) if hasattr(rng, "integers") else rng.randrange(lo, hi)


def _uniform(rng, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


def _pick(rng, seq):
    return seq[_int(rng, 0, len(seq))]


def _dumps(e: dict) -> bytes:
    return json.dumps(e).encode()


def _with_literal(e: dict, field: str, index: int, literal: str) -> bytes:
    """The upload as JSON with e[field][index] written as `literal` (text json.dumps cannot make)."""
    marker = "__HOSTILE_LITERAL__"
    e[field][index] = marker
    return json.dumps(e).replace(f'"{marker}"', literal, 1).encode()


def _shift_ts(e: dict, offset: float) -> None:
    e["ts"] = [round(t + offset, 3) for t in e["ts"]]


def make_hostile(valid_upload: dict, kind: str, rng) -> bytes:
    """The raw message of one hostile `kind`, made from a valid upload (which is not modified)."""
    if kind in CORRUPTIONS:
        return corrupt(valid_upload, kind)
    if kind not in _FRAGMENTS:
        raise KeyError(f"unknown hostile kind {kind!r}; known: {', '.join(HOSTILE_KINDS)}")
    e = json.loads(json.dumps(valid_upload))
    n = len(e["ts"])
    if e.get("hr") is None:
        e["hr"] = [None] * n
    i = _int(rng, 0, n)
    text = _dumps(e)

    # encoding and syntax
    if kind == "malformed_json":
        # break a key/value separator in the first half of the message (far from the end)
        colons = [k for k in range(len(text) // 2) if text[k: k + 3] == b'": ']
        k = _pick(rng, colons)
        return text[: k + 1] + _pick(rng, [b"=", b";", b" ", b"]"]) + text[k + 2:]
    if kind == "truncated_json":
        return text[: _int(rng, 1, len(text) - 1)]
    if kind == "empty_message":
        return _pick(rng, [b"", b" ", b"\n", b"\r\n\t "])
    if kind == "not_utf8":
        # a bad sequence inside the event_id string, the rest intact
        start = text.index(b'"event_id": "') + len(b'"event_id": "')
        k = start + _int(rng, 0, len(e["event_id"]) + 1)
        bad = _pick(rng, [b"\xff", b"\xfe", b"\xc3\x28", b"\x80", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80"])
        return text[:k] + bad + text[k:]
    if kind == "utf16":
        return json.dumps(e).encode(_pick(rng, ["utf-16", "utf-16-le", "utf-16-be", "utf-32"]))
    if kind == "utf8_bom":
        return b"\xef\xbb\xbf" + text
    if kind == "deeply_nested":
        depth = _int(rng, V.MAX_JSON_DEPTH + 1, 60_000)  # deep enough for RecursionError, within MAX_UPLOAD_BYTES
        opener, closer = _pick(rng, [("[", "]"), ('{"a":', "}")])
        return text[:-1] + (', "extra": ' + opener * depth + "1" + closer * depth + "}").encode()
    if kind == "oversized":
        pad = "p" * (V.MAX_UPLOAD_BYTES + _int(rng, 1, 100_000))
        return text[:-1] + f', "padding": "{pad}"}}'.encode()

    # ids
    if kind == "lone_surrogate":
        f = _pick(rng, V.ID_FIELDS)
        bad = _pick(rng, ["\ud800", "\udfff", "\udc00x", "\ud83d"])  # \ud83d: half a pair (an emoji's first half)
        k = _int(rng, 0, len(e[f]) + 1)
        e[f] = e[f][:k] + bad + e[f][k:]
        return _dumps(e)  # ensure_ascii: the surrogate travels as a \\udXXX escape
    if kind == "control_char_in_id":
        f = _pick(rng, V.ID_FIELDS)
        k = _int(rng, 0, len(e[f]) + 1)
        e[f] = e[f][:k] + _pick(rng, ["\x00", "\x01", "\x07", "\x1b", "\n", "\x7f"]) + e[f][k:]
        return _dumps(e)
    if kind == "id_not_string":
        e[_pick(rng, V.ID_FIELDS)] = _pick(rng, [12345, 1.5, True, ["u00001"], {"id": "u00001"}])
        return _dumps(e)
    if kind == "missing_id":
        e.pop("user_id")
        return _dumps(e)
    if kind == "empty_id":
        e["event_id"] = ""
        return _dumps(e)
    if kind == "id_too_long":
        f = _pick(rng, V.ID_FIELDS)
        e[f] = e[f] + "x" * (V.MAX_ID_CHARS + _int(rng, 1, 5000))
        return _dumps(e)

    # types and numbers
    if kind == "array_not_list":
        f = _pick(rng, _ARRAYS)
        e[f] = _pick(rng, [",".join(map(str, e[f])), {"0": e[f][0]}, e[f][0]])
        return _dumps(e)
    if kind == "number_as_string":
        f = _pick(rng, _ARRAYS)
        e[f][i] = str(e[f][i])
        return _dumps(e)
    if kind == "bool_as_number":
        f = _pick(rng, _ARRAYS)
        e[f][i] = _pick(rng, [True, False])
        return _dumps(e)
    if kind == "null_in_array":
        e[_pick(rng, _ARRAYS)][i] = None
        return _dumps(e)
    if kind == "huge_int":
        f = _pick(rng, (*_ARRAYS, "hr"))
        return _with_literal(e, f, i, _pick(rng, ["", "-"]) + "1" + "0" * _int(rng, 100, 4000))
    if kind == "huge_int_literal":
        f = _pick(rng, (*_ARRAYS, "hr"))
        return _with_literal(e, f, i, "9" * _int(rng, 4301, 100_000))
    if kind == "nan":
        return _with_literal(e, _pick(rng, (*_ARRAYS, "hr")), i, "NaN")

    # sizes
    if kind == "too_many_readings":
        extra = V.MAX_READINGS + 1 - n
        last = e["ts"][-1]
        e["ts"] += [round(last + k + 1.0, 3) for k in range(extra)]
        for f in ("x", "y", "acc", "hr"):
            e[f] += [e[f][-1]] * extra
        return _dumps(e)
    if kind == "too_few_readings":
        keep = _int(rng, 0, V.MIN_READINGS)
        for f in (*_ARRAYS, "hr"):
            e[f] = e[f][:keep]
        return _dumps(e)

    # ranges
    if kind == "coord_out_of_range":
        e[_pick(rng, ["x", "y"])][i] = _pick(rng, [1.0, -1.0]) * _uniform(rng, 1.01 * V.COORD_LIMIT, 1e12)
        return _dumps(e)
    if kind == "acc_out_of_range":
        e["acc"][i] = _pick(rng, [_uniform(rng, V.ACC_RANGE[1] + 0.5, 1e4), V.ACC_RANGE[0] - _uniform(rng, 0.01, 100.0)])
        return _dumps(e)
    if kind == "hr_too_low":
        e["hr"][i] = 12.5
        return _dumps(e)

    # time
    if kind == "ts_milliseconds":
        e["ts"] = [round(t * 1000.0, 3) for t in e["ts"]]
        return _dumps(e)
    if kind == "ts_before_epoch":
        start = _uniform(rng, -2e9, V.PLATFORM_EPOCH - 86400.0)  # 1906 .. 1999, or a clock counting from 0
        _shift_ts(e, start - e["ts"][0])
        return _dumps(e)
    if kind == "ts_far_future":
        _shift_ts(e, _uniform(rng, 10, 50) * _YEAR_S)
        return _dumps(e)
    if kind == "ts_one_far_future":
        e["ts"][-1] = round(e["ts"][-1] + _uniform(rng, 10, 50) * _YEAR_S, 3)
        return _dumps(e)
    if kind == "ts_too_old":
        _shift_ts(e, -(V.MAX_AGE_S + _uniform(rng, 86400.0, 60 * 86400.0)))
        return _dumps(e)
    if kind == "ts_implausible_span":
        gap = V.MAX_SPAN_S * _uniform(rng, 1.2, 5.0) / (n - 1)
        last = e["ts"][-1]
        e["ts"] = [round(last - (n - 1 - k) * gap, 3) for k in range(n)]
        return _dumps(e)
    raise AssertionError(f"no maker for hostile kind {kind!r}")  # pragma: no cover - _FRAGMENTS and makers agree
