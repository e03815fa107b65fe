"""pipelines.ingest.hostile + validation: every hostile upload is refused with its own reason, nothing raises.

The validator runs once per upload in the stream; an exception there stops the agent, so
"never raises" is tested on every hostile kind and on 2,000 seeded random mutations.
"""

from __future__ import annotations

import json
import random
import time

import numpy as np
import pytest

from pipelines.contracts import DeadLetter, Upload, problem
from pipelines.ingest import validation as V
from pipelines.ingest.hostile import (HOSTILE_KINDS, NEEDS_NOW, STREAM_KINDS, expected_reason_fragment,
                                      make_hostile, reference_now)
from pipelines.ingest.producer import CORRUPTIONS
from pipelines.ingest.validation import deadletter_record, parse_sensor_event
from pipelines.synthetic.population import sensor_events

SEEDS = (0, 1, 2)
DEVICES = ("phone", "watch")


@pytest.fixture(scope="module")
def uploads(tiny_pop):
    """One phone and one watch upload of the streamed day, by device type."""
    events = [e for e, _ in sensor_events(tiny_pop, "stream")]
    return {d: next(e for e in events if e["device_type"] == d) for d in DEVICES}


def rng_for(seed: int):
    """Both kinds of rng make_hostile takes: numpy for odd seeds, random.Random for even ones."""
    return np.random.default_rng(seed) if seed % 2 else random.Random(seed)


def assert_safe_deadletter(rec, raw, reason: str):
    assert set(rec) == set(DeadLetter.__annotations__)
    assert problem(DeadLetter, rec) is None
    assert rec["reason"] == reason and rec["source"] == "sensor.raw:1:7"
    assert isinstance(rec["payload"], str) and len(rec["payload"]) <= V.MAX_PAYLOAD_CHARS
    wire = json.dumps(rec, ensure_ascii=False).encode("utf-8")  # what the dead-letter topic carries
    assert json.loads(wire) == rec
    if isinstance(raw, bytes):
        assert rec["payload"] == raw.decode("utf-8", "replace")[: V.MAX_PAYLOAD_CHARS]
    if rec["event_id"] is not None:
        assert V._id_problem("event_id", rec["event_id"]) is None


# --- the catalogue ---------------------------------------------------------------------------------

def test_every_producer_corruption_is_a_hostile_kind():
    assert set(CORRUPTIONS) <= set(HOSTILE_KINDS)
    assert len(HOSTILE_KINDS) == len(set(HOSTILE_KINDS))
    for kind in HOSTILE_KINDS:
        assert expected_reason_fragment(kind)
    assert set(STREAM_KINDS) == set(HOSTILE_KINDS) - NEEDS_NOW and NEEDS_NOW <= set(HOSTILE_KINDS)


def test_unknown_kind_is_an_error(uploads):
    with pytest.raises(KeyError):
        make_hostile(uploads["phone"], "no_such_kind", random.Random(0))


def test_each_kind_has_a_reason_of_its_own(uploads):
    """No kind's fragment shows up in another kind's reason, so the dead-letter table tells them apart.

    Two exceptions, both inherited from producer.CORRUPTIONS: its "not_json" expects only the
    generic "not JSON" every parse failure starts with, and its message is a cut upload followed
    by a 0xff byte, which the validator reports as what it meets first: not UTF-8.
    """
    up = uploads["watch"]
    reasons = {k: parse_sensor_event(make_hostile(up, k, rng_for(1)), now=reference_now(up))[1]
               for k in HOSTILE_KINDS}
    allowed = {("not_utf8", "not_json")}
    clashes = [(a, b, reasons[b]) for a in HOSTILE_KINDS for b in HOSTILE_KINDS
               if a != b and a != "not_json" and (a, b) not in allowed and expected_reason_fragment(a) in reasons[b]]
    assert not clashes
    assert len(set(reasons.values())) == len(reasons)


# --- each kind -------------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("kind", HOSTILE_KINDS)
def test_hostile_upload_is_rejected_with_its_reason(uploads, kind, device, seed):
    valid = uploads[device]
    before = json.dumps(valid)
    raw = make_hostile(valid, kind, rng_for(seed))
    assert isinstance(raw, bytes)
    assert json.dumps(valid) == before, "make_hostile must not modify the valid upload"

    event, reason = parse_sensor_event(raw, now=reference_now(valid))
    assert event is None
    assert isinstance(reason, str) and expected_reason_fragment(kind) in reason, reason

    # the upload it was made from passes, with the same clock and with the wall clock
    assert parse_sensor_event(json.dumps(valid).encode(), now=reference_now(valid))[1] is None
    assert parse_sensor_event(json.dumps(valid).encode())[1] is None


@pytest.mark.parametrize("kind", HOSTILE_KINDS)
def test_hostile_upload_as_str_gets_the_same_reason(uploads, kind):
    valid = uploads["watch"]
    raw = make_hostile(valid, kind, rng_for(2))
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        pytest.skip("not UTF-8: has no str form")
    if b"\x00" in raw[:4]:
        pytest.skip("UTF-16/32 bytes: their str form is a different message")
    by_bytes = parse_sensor_event(raw, now=reference_now(valid))
    by_str = parse_sensor_event(text, now=reference_now(valid))
    assert by_str == by_bytes


@pytest.mark.parametrize("kind", STREAM_KINDS)
def test_hostile_upload_is_rejected_by_the_wall_clock_too(uploads, kind):
    """What the stream sees: filter_upload validates without `now`."""
    valid = uploads["phone"]
    event, reason = parse_sensor_event(make_hostile(valid, kind, rng_for(0)))
    assert event is None and expected_reason_fragment(kind) in reason, reason


def test_age_bound_applies_only_against_an_explicit_now(uploads):
    """The synthetic stream day is a fixed date: a wall-clock age bound would refuse every replay of it."""
    valid = uploads["phone"]
    raw = make_hostile(valid, "ts_too_old", rng_for(0))
    assert parse_sensor_event(raw)[1] is None
    assert "upload too old" in parse_sensor_event(raw, now=reference_now(valid))[1]


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("kind", HOSTILE_KINDS)
def test_deadletter_of_hostile_upload_is_safe(uploads, kind, device, seed):
    valid = uploads[device]
    raw = make_hostile(valid, kind, rng_for(seed))
    _event, reason = parse_sensor_event(raw, now=reference_now(valid))
    rec = deadletter_record(raw, reason, "sensor.raw:1:7")
    assert_safe_deadletter(rec, raw, reason)
    if kind not in ("not_json", "json_array", "utf16", "utf8_bom", "oversized", "deeply_nested", "empty_message",
                    "truncated_json", "malformed_json", "not_utf8", "huge_int_literal", "missing_id",
                    "lone_surrogate", "control_char_in_id", "id_not_string", "empty_id", "id_too_long"):
        assert rec["event_id"] == valid["event_id"]  # parsable with a valid event_id: the operator gets it


# --- bounds, one at a time -------------------------------------------------------------------------

def shifted(upload: dict, offset: float) -> dict:
    e = json.loads(json.dumps(upload))
    e["ts"] = [t + offset for t in e["ts"]]
    return e


def test_future_bound_uses_the_wall_clock_by_default(uploads):
    valid = uploads["phone"]
    end_in = lambda s: shifted(valid, time.time() + s - valid["ts"][-1])  # noqa: E731
    assert parse_sensor_event(end_in(V.MAX_FUTURE_SKEW_S / 2))[1] is None
    assert "upload is from the future" in parse_sensor_event(end_in(2 * V.MAX_FUTURE_SKEW_S + 60))[1]
    now = valid["ts"][-1]
    assert parse_sensor_event(valid, now=now)[1] is None
    assert "readings are in the future" in parse_sensor_event(valid, now=now - V.MAX_FUTURE_SKEW_S - 30)[1]
    assert parse_sensor_event(valid, now=now - V.MAX_FUTURE_SKEW_S + 1)[1] is None
    assert parse_sensor_event(valid, now=valid["ts"][0] + V.MAX_AGE_S - 1)[1] is None
    assert "too old" in parse_sensor_event(valid, now=valid["ts"][0] + V.MAX_AGE_S + 1)[1]


@pytest.mark.parametrize("start, fragment", [
    (-1.0, "before the platform epoch"),
    (0.0, "before the platform epoch"),
    (V.PLATFORM_EPOCH - 100.0, "before the platform epoch"),
    (1.7e12, "milliseconds?"),
    (1.7e15, "number too large"),  # microseconds
    (1.7e18, "number too large"),  # nanoseconds
])
def test_timestamps_in_the_wrong_unit_or_era(uploads, start, fragment):
    valid = uploads["phone"]
    e = shifted(valid, start - valid["ts"][0])
    if start > 1e11:  # keep them strictly increasing at that magnitude
        e["ts"] = [start * (1 + k * 1e-9) for k in range(len(e["ts"]))]
    event, reason = parse_sensor_event(e)
    assert event is None and fragment in reason, reason


def test_span_bound(uploads):
    valid = json.loads(json.dumps(uploads["phone"]))
    n = len(valid["ts"])
    valid["ts"] = [valid["ts"][0] + k * V.MAX_SPAN_S / (n - 1) for k in range(n)]
    assert parse_sensor_event(valid)[1] is None
    valid["ts"][-1] += 1.0
    assert "readings span" in parse_sensor_event(valid)[1]


@pytest.mark.parametrize("field, value, fragment", [
    ("x", V.COORD_LIMIT, None), ("x", -V.COORD_LIMIT * 1.01, "coordinate beyond"),
    ("y", V.COORD_LIMIT * 1.01, "coordinate beyond"),
    ("acc", 0.0, None), ("acc", V.ACC_RANGE[1], None),
    ("acc", -9.9, "acceleration -9.9 m/s^2 outside -9.81..157"),
    ("acc", 158.0, "acceleration 158 m/s^2 outside -9.81..157"),
    ("hr", 25.0, None), ("hr", 250.0, None), ("hr", 24.9, "heart rate 24.9 outside"),
    ("hr", 250.1, "heart rate 250.1 outside"), ("hr", 72, None),
])
def test_physical_ranges(uploads, field, value, fragment):
    e = json.loads(json.dumps(uploads["watch"]))
    e[field][7] = value
    event, reason = parse_sensor_event(json.dumps(e))
    if fragment is None:
        assert reason is None
    else:
        assert event is None and fragment in reason, reason


@pytest.mark.parametrize("field", ["ts", "x", "y", "acc", "hr"])
@pytest.mark.parametrize("huge", [10**400, -(10**400), 10**16, 2**1000])
def test_huge_integers_are_compared_never_converted(uploads, field, huge):
    """With floats around it (float + int overflows) or alone among ints (an exact int sum)."""
    for mix in ("floats", "ints"):
        e = json.loads(json.dumps(uploads["watch"]))
        if mix == "ints":
            e[field] = [int(v) if v is not None else None for v in e[field]]
        e[field][3] = huge
        for raw in (e, json.dumps(e), json.dumps(e).encode()):
            event, reason = parse_sensor_event(raw)
            assert event is None and f"field {field!r} has a number too large" in reason, reason


def test_integer_readings_are_fine(uploads):
    e = json.loads(json.dumps(uploads["watch"]))
    e["x"] = [int(v) for v in e["x"]]
    e["hr"] = [int(v) if v is not None else None for v in e["hr"]]
    assert parse_sensor_event(json.dumps(e))[1] is None


@pytest.mark.parametrize("literal, fragment", [
    ("NaN", "non-finite reading: NaN"), ("Infinity", "non-finite reading: Infinity"),
    ("-Infinity", "non-finite reading: -Infinity"), ("1e400", "non-finite reading: Infinity"),
])
@pytest.mark.parametrize("field", ["ts", "x", "acc", "hr"])
def test_non_finite_literals(uploads, literal, fragment, field):
    text = json.dumps(uploads["watch"])
    e = json.loads(text)
    e[field][5] = "__HERE__"
    raw = json.dumps(e).replace('"__HERE__"', literal).encode()
    event, reason = parse_sensor_event(raw)
    assert event is None and f"field {field!r}" in reason and fragment in reason, reason


def test_message_size_bound_comes_before_parsing(uploads):
    valid = uploads["phone"]
    pad = V.MAX_UPLOAD_BYTES - len(json.dumps(valid).encode()) - len(', "pad": ""')
    ok = json.dumps({**valid, "pad": "p" * pad}).encode()
    assert len(ok) == V.MAX_UPLOAD_BYTES and parse_sensor_event(ok)[1] is None
    too_big = json.dumps({**valid, "pad": "p" * (pad + 1)}).encode()
    assert "message too large" in parse_sensor_event(too_big)[1]
    assert "message too large" in parse_sensor_event(too_big.decode())[1]


def test_brackets_inside_strings_are_not_nesting(uploads):
    e = {**uploads["phone"], "note": "[" * 10_000 + '\\"{' * 100}
    assert parse_sensor_event(json.dumps(e))[1] is None


def test_modest_nesting_in_extra_fields_is_fine(uploads):
    e = {**uploads["phone"], "meta": json.loads("[" * (V.MAX_JSON_DEPTH - 1) + "]" * (V.MAX_JSON_DEPTH - 1))}
    assert parse_sensor_event(json.dumps(e))[1] is None
    e["meta"] = [e["meta"]] * 2  # one level more
    assert "nested deeper than" in parse_sensor_event(json.dumps(e))[1]


def test_every_cut_of_a_valid_upload_is_truncated(uploads):
    text = json.dumps(uploads["watch"]).encode()
    for k in range(1, len(text)):
        event, reason = parse_sensor_event(text[:k])
        assert event is None and "not JSON: truncated" in reason, (k, text[:k][-20:], reason)


def test_hostile_dicts_never_raise_and_deadletter_safely(uploads):
    """Dict input skips parsing: deep nesting, huge ints and odd objects must be handled there too."""
    deep: list = []
    for _ in range(100_000):
        deep = [deep]
    base = uploads["watch"]
    cases = [
        {**base, "x": deep}, {**base, "x": [deep] * len(base["x"])}, {**base, "device_type": deep},
        {**base, "event_id": deep}, {**base, "acc": [10**5000] * len(base["acc"])},
        {**base, "device_type": 10**5000}, {**base, "user_id": "u\ud800"},
        {**base, "ts": [object()] * len(base["ts"])}, {**base, "hr": {"a": 1}},
    ]
    for case in cases:
        event, reason = parse_sensor_event(case)
        assert event is None and isinstance(reason, str)
        rec = deadletter_record(case, reason, "sensor.raw:1:7")
        assert_safe_deadletter(rec, case, reason)
    assert parse_sensor_event({**base, 1: 2, None: 3})[1] is None  # extra keys are allowed (forward compatible)


def test_other_payload_types_are_refused(uploads):
    for raw in (None, 42, 1.5, ["a"], object()):
        event, reason = parse_sensor_event(raw)
        assert event is None and "not JSON" in reason
        assert_safe_deadletter(deadletter_record(raw, reason, "sensor.raw:1:7"), raw, reason)
    text = json.dumps(uploads["phone"])
    assert parse_sensor_event(bytearray(text.encode()))[1] is None
    assert parse_sensor_event(memoryview(text.encode()))[1] is None


def test_deadletter_of_str_with_lone_surrogate_is_utf8(uploads):
    raw = json.dumps(uploads["phone"])[:-1] + ', "note": "\ud800"}'
    rec = deadletter_record(raw, "r\udfff", "sensor.raw:1:7")
    json.dumps(rec, ensure_ascii=False).encode("utf-8")
    assert rec["event_id"] == uploads["phone"]["event_id"]
    assert rec["reason"] == "r?"


# --- property: random damage never raises ---------------------------------------------------------

_TOKENS = [b"[", b"]", b"{", b"}", b'"', b"\\", b",", b":", b"NaN", b"-Infinity", b"1e999", b"1" * 500,
           b"\\u0000", b"\\ud800", b"\\udfff", b"\x00", b"\xff", b"\xc3", b"\xed\xa0\x80", b"null", b"true",
           b"[" * 5000, b"-", b".", b"e", b"0" * 30, b"\t", b"\xf0\x9f\x98"]


def mutate(raw: bytes, rng: random.Random) -> bytes:
    """One to three random edits: cut, flip a byte, insert a token or random bytes, delete or repeat a slice."""
    b = bytearray(raw)
    for _ in range(rng.randint(1, 3)):
        if not b:
            b = bytearray(rng.choice(_TOKENS))
        op = rng.randrange(7)
        k = rng.randrange(len(b))
        if op == 0:
            del b[k:]
        elif op == 1:
            b[k] = rng.randrange(256)
        elif op == 2:
            b[k:k] = rng.choice(_TOKENS)
        elif op == 3:
            b[k:k] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        elif op == 4:
            del b[k: k + rng.randint(1, 50)]
        elif op == 5:
            b[k:k] = b[k: k + rng.randint(1, 200)] * rng.randint(1, 5)
        else:
            b[k: k + 1] = rng.choice([b"0", b"9", b"-", b"1e308", b"\"", b"null", b"[]", b"{}"])
    return bytes(b)


def test_random_mutations_never_raise(uploads):
    rng = random.Random(20261201)
    sources = [json.dumps(u).encode() for u in uploads.values()]
    now = reference_now(uploads["phone"])
    accepted = 0
    for i in range(2000):
        raw = mutate(rng.choice(sources), rng)
        inputs = [raw, raw.decode("utf-8", "surrogateescape")] if i % 4 == 0 else [raw]
        for value in inputs:
            result = parse_sensor_event(value, now=now if i % 2 else None)
            assert isinstance(result, tuple) and len(result) == 2
            event, reason = result
            if reason is None:
                accepted += 1
                assert problem(Upload, event) is None  # whatever passes is a valid Upload
            else:
                assert event is None and isinstance(reason, str) and reason
                rec = deadletter_record(value, reason, "sensor.raw:1:7")
                json.dumps(rec, ensure_ascii=False).encode("utf-8")
                assert len(rec["payload"]) <= V.MAX_PAYLOAD_CHARS
    assert accepted < 2000  # the mutations do damage; some (a changed digit) are still valid uploads
