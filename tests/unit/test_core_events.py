"""pipelines.ingest.validation: valid uploads pass, every corruption the producer makes is refused with a reason."""

from __future__ import annotations

import json

import pytest

from pipelines.ingest.validation import deadletter_record, parse_sensor_event
from pipelines.synthetic.population import sensor_events
from pipelines.ingest.producer import CORRUPTIONS, corrupt


@pytest.fixture(scope="module")
def uploads(tiny_pop):
    """One phone and one watch upload of the streamed day."""
    events = [e for e, _ in sensor_events(tiny_pop, "stream")]
    phone = next(e for e in events if e["device_type"] == "phone")
    watch = next(e for e in events if e["device_type"] == "watch")
    return phone, watch


@pytest.mark.parametrize("device", ["phone", "watch"])
@pytest.mark.parametrize("as_type", [bytes, str, dict])
def test_valid_upload_is_accepted(uploads, device, as_type):
    upload = uploads[0] if device == "phone" else uploads[1]
    text = json.dumps(upload)
    raw = text.encode() if as_type is bytes else text if as_type is str else json.loads(text)
    event, reason = parse_sensor_event(raw)
    assert reason is None
    assert event["event_id"] == upload["event_id"]
    assert event["device_type"] == device
    assert event["ts"] == upload["ts"] and event["x"] == upload["x"]
    assert len(event["hr"]) == len(upload["ts"]) == 60
    if device == "phone":
        assert event["hr"] == [None] * 60
    else:
        assert any(v is not None for v in event["hr"])


def test_missing_hr_becomes_nulls(uploads):
    upload = {k: v for k, v in uploads[0].items() if k != "hr"}
    event, reason = parse_sensor_event(json.dumps(upload))
    assert reason is None
    assert event["hr"] == [None] * len(upload["ts"])


#: What each corruption's reason must mention (so the dead-letter table tells an operator what broke).
EXPECTED_REASON = {
    "not_json": "not JSON",
    "missing_field": "'x'",
    "length_mismatch": "'y' has 57 readings",
    "non_finite": "'acc' has a non-numeric or non-finite reading: Infinity",
    "hr_out_of_range": "heart rate 400.0 outside 25..250 bpm",
    "ts_not_increasing": "timestamps not strictly increasing",
    "wrong_device_type": "'toaster'",
    "json_array": "not a JSON object but list",
}


def test_every_corruption_has_an_expected_reason():
    assert set(EXPECTED_REASON) == set(CORRUPTIONS)


@pytest.mark.parametrize("kind", CORRUPTIONS)
@pytest.mark.parametrize("device", ["phone", "watch"])
def test_corruption_is_rejected_with_reason(uploads, kind, device):
    upload = uploads[0] if device == "phone" else uploads[1]
    raw = corrupt(upload, kind)
    assert isinstance(raw, bytes)
    event, reason = parse_sensor_event(raw)
    assert event is None
    assert EXPECTED_REASON[kind] in reason


@pytest.mark.parametrize(
    "mutate, fragment",
    [
        (lambda e: e.update(event_id=""), "field 'event_id' is empty"),
        (lambda e: e.update(user_id=7), "field 'user_id' is int, not a string"),
        (lambda e: e.update(device_id="d" * 201), "field 'device_id' is 201 chars long (limit 200)"),
        (lambda e: e.update(ts=e["ts"][:1], x=e["x"][:1], y=e["y"][:1], acc=e["acc"][:1], hr=None), "1 readings, fewer than the 2"),
        (lambda e: e["x"].__setitem__(3, 2e7), "coordinate beyond"),
        (lambda e: e["acc"].__setitem__(0, True), "'acc' has a non-numeric reading: boolean True"),
        (lambda e: e["acc"].__setitem__(0, "9.8"), "'acc' has a non-numeric reading: string '9.8'"),
        (lambda e: e["acc"].__setitem__(0, None), "'acc' has a non-numeric reading: null"),
        (lambda e: e["x"].__setitem__(3, 10**400), "'x' has a number too large"),
        (lambda e: e.update(x="1,2,3"), "'x' is not a list but str"),
        (lambda e: e.update(hr=e["hr"][:-1]), "'hr' must be a list as long as ts"),
        (lambda e: e["hr"].__setitem__(0, 20.0), "heart rate 20.0 outside"),
    ],
)
def test_other_invalid_uploads_get_reasons(uploads, mutate, fragment):
    upload = json.loads(json.dumps(uploads[1]))
    mutate(upload)
    event, reason = parse_sensor_event(json.dumps(upload))
    assert event is None
    assert fragment in reason


def test_timestamps_equal_are_not_increasing(uploads):
    upload = json.loads(json.dumps(uploads[0]))
    upload["ts"][10] = upload["ts"][9]
    assert parse_sensor_event(upload) == (None, "timestamps not strictly increasing")


@pytest.mark.parametrize("kind", [k for k in CORRUPTIONS if k not in ("not_json", "json_array")])
def test_deadletter_record_keeps_payload_and_event_id(uploads, kind):
    raw = corrupt(uploads[1], kind)
    rec = deadletter_record(raw, "some reason", "sensor.raw:2:41")
    assert rec == {"reason": "some reason", "source": "sensor.raw:2:41",
                   "event_id": uploads[1]["event_id"], "payload": raw.decode()}


def test_deadletter_record_of_undecodable_bytes():
    raw = b'{"event_id": "e1", \xff{{'
    rec = deadletter_record(raw, "not JSON", "sensor.raw:0:5")
    assert rec["event_id"] is None
    assert rec["payload"] == '{"event_id": "e1", \ufffd{{'
    assert rec["reason"] == "not JSON" and rec["source"] == "sensor.raw:0:5"


def test_deadletter_record_of_json_array_has_no_event_id(uploads):
    raw = corrupt(uploads[0], "json_array")
    rec = deadletter_record(raw, "r", "s")
    assert rec["event_id"] is None
    assert json.loads(rec["payload"])[0]["event_id"] == uploads[0]["event_id"]


def test_deadletter_payload_is_truncated():
    rec = deadletter_record("x" * 20_000, "r", "s")
    assert len(rec["payload"]) == 10_000
    rec = deadletter_record(b"\xff" * 20_000 + b"x" * 100_000, "r", "s")
    assert rec["payload"] == "\ufffd" * 10_000


def test_deadletter_record_survives_what_json_cannot_parse():
    """Deep nesting and huge integers: the dead letter is still made, just without an event_id."""
    for raw in (b'{"event_id": "e1", "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
                b'{"event_id": "e1", "x": [' + b"9" * 5000 + b"]}"):
        rec = deadletter_record(raw, "r", "s")
        assert rec["event_id"] is None and rec["payload"] == raw.decode()[:10_000]
    rec = deadletter_record(b'{"event_id": "e1", "x": [' + b"1" + b"0" * 400 + b"]}", "r", "s")
    assert rec["event_id"] == "e1"
