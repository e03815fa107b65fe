"""streams.agents.sensors: filter_uploads (sensor.raw -> sensor.filtered | sensor.deadletter, Kalman
states in a table) and build_features (sensor.filtered -> state.features), each in a test context."""

from __future__ import annotations

import json
import math

import pytest
from agent_harness import on_the_wire, sent, wait_until

import streams.topics as topics
from pipelines.contracts import DeadLetter, FeatureRow, FilteredUpload, problem
from pipelines.filtering.stage import filter_upload
from pipelines.ingest.producer import CORRUPTIONS, corrupt
from streams.agents import sensors

#: What each bad upload's dead-letter reason must say, so an operator can tell what broke.
EXPECTED_REASON = {
    "not_json": "not JSON",
    "missing_field": "'x'",
    "length_mismatch": "'y' has 57 readings",
    "non_finite": "'acc' has a non-numeric or non-finite",
    "hr_out_of_range": "heart rate 400",
    "ts_not_increasing": "timestamps not strictly increasing",
    "wrong_device_type": "'toaster'",
    "json_array": "not a JSON object but list",
    "key_mismatch": "is not the upload's user_id",
}


def test_every_bad_kind_has_an_expected_reason():
    assert set(EXPECTED_REASON) == set(CORRUPTIONS) | {"key_mismatch"}


def first_upload(uploads, user_id: str, device_type: str | None = None) -> dict:
    return next(u for u in uploads if u["user_id"] == user_id and device_type in (None, u["device_type"]))


def source_of(offset: int) -> str:
    return f"{topics.sensor_raw.get_topic_name()}:0:{offset}"


async def test_good_upload_is_filtered_then_featurised(outbox, changelog, live, uploads, people, snapshot_tables):
    user = people["known"]
    upload = first_upload(uploads, user)
    n = len(upload["ts"])

    async with sensors.filter_uploads.test_context() as agent:
        await agent.put(json.dumps(upload).encode(), key=user.encode())
        await wait_until(lambda: outbox["sensor_filtered"].await_count >= 1, what="a filtered upload")

    assert outbox["sensor_deadletter"].await_count == 0
    [(key, filtered)] = sent(outbox["sensor_filtered"])
    assert key == user.encode()
    assert problem(FilteredUpload, filtered) is None
    filtered = on_the_wire(filtered)
    assert (filtered["event_id"], filtered["user_id"], filtered["device_id"]) == (
        upload["event_id"], user, upload["device_id"])
    for field in ("ts", "x", "y", "vx", "vy", "hr", "acc", "rejected"):
        assert len(filtered[field]) == n, field
    assert filtered["ts"] == upload["ts"]

    # the person's Kalman states are in the table (what the filter stage returned), and were sent to its changelog
    _f, _d, expected_states = filter_upload(json.dumps(upload).encode(), {}, source_of(0), user)
    states = topics.kalman_states[user]
    assert set(states) == {upload["device_id"]}
    assert states == on_the_wire(expected_states)
    assert changelog["kalman_states"] == [(user, states)]

    async with sensors.build_features.test_context() as agent:
        await agent.put(filtered, key=user.encode())
        await wait_until(lambda: outbox["state_features"].await_count >= 1, what="a feature row")

    [(key, row)] = sent(outbox["state_features"])
    assert key == user.encode()
    assert problem(FeatureRow, row) is None
    on_the_wire(row)
    assert (row["event_id"], row["user_id"], row["device_type"]) == (upload["event_id"], user, upload["device_type"])
    assert row["source"] == "stream" and row["n_readings"] == n and row["ts"] == upload["ts"][-1]
    # the person's home came from the live snapshot
    home = snapshot_tables["users"].set_index("user_id").loc[user]
    assert row["dist_home_m"] == pytest.approx(math.hypot(filtered["x"][-1] - home.home_x,
                                                          filtered["y"][-1] - home.home_y))


async def test_states_carry_over_between_uploads_of_a_device(outbox, changelog, live, uploads, people):
    user = people["known"]
    device = first_upload(uploads, user)["device_id"]
    first, second = [u for u in uploads if u["device_id"] == device][:2]

    async with sensors.filter_uploads.test_context() as agent:
        await agent.put(json.dumps(first).encode(), key=user.encode())
        await agent.put(json.dumps(second).encode(), key=user.encode())
        await wait_until(lambda: outbox["sensor_filtered"].await_count >= 2, what="two filtered uploads")

    # what the filter stage gives when the second upload starts from the first one's states
    want1, _d, states1 = filter_upload(json.dumps(first).encode(), {}, source_of(0), user)
    want2, _d, states2 = filter_upload(json.dumps(second).encode(), states1, source_of(1), user)
    fresh2, _d, _s = filter_upload(json.dumps(second).encode(), {}, source_of(1), user)
    assert on_the_wire(fresh2) != on_the_wire(want2)  # so the comparison below can tell the two apart
    got = [on_the_wire(v) for _k, v in sent(outbox["sensor_filtered"])]
    assert got == [on_the_wire(want1), on_the_wire(want2)]
    assert topics.kalman_states[user] == on_the_wire(states2)
    assert [k for k, _v in changelog["kalman_states"]] == [user, user]


async def test_person_unknown_to_the_snapshot_gets_a_row_without_destinations(outbox, live, uploads, people):
    user = people["stranger"]
    upload = first_upload(uploads, user)
    filtered, dead, _states = filter_upload(json.dumps(upload).encode(), {}, "test:0:0", user)
    assert dead is None

    async with sensors.build_features.test_context() as agent:
        await agent.put(on_the_wire(filtered), key=user.encode())
        await wait_until(lambda: outbox["state_features"].await_count >= 1, what="a feature row")

    [(key, row)] = sent(outbox["state_features"])
    assert key == user.encode() and problem(FeatureRow, row) is None
    assert row["dist_home_m"] is None and row["dist_work_m"] is None
    assert row["dist_store_m"] is not None


@pytest.mark.parametrize("kind", [*CORRUPTIONS, "key_mismatch"])
async def test_bad_upload_is_dead_lettered_and_the_agent_goes_on(kind, outbox, changelog, live, uploads, people):
    user = people["known"]
    upload = first_upload(uploads, user, "watch") if kind == "hr_out_of_range" else first_upload(uploads, user)
    if kind == "key_mismatch":
        raw, key = json.dumps(upload).encode(), people["popular"].encode()
    else:
        raw, key = corrupt(upload, kind), user.encode()

    async with sensors.filter_uploads.test_context() as agent:
        await agent.put(raw, key=key)
        await wait_until(lambda: outbox["sensor_deadletter"].await_count >= 1, what="a dead letter")
        await agent.put(json.dumps(upload).encode(), key=user.encode())  # a good one after the bad one
        await wait_until(lambda: outbox["sensor_filtered"].await_count >= 1, what="the next good upload")

    [(dl_key, dead)] = sent(outbox["sensor_deadletter"])
    assert dl_key == key
    assert problem(DeadLetter, dead) is None
    on_the_wire(dead)
    assert dead["reason"] and EXPECTED_REASON[kind] in dead["reason"], dead["reason"]
    assert dead["source"] == source_of(0)
    assert dead["payload"] == raw.decode("utf-8", "replace")
    assert dead["event_id"] == (None if kind in ("not_json", "json_array") else upload["event_id"])

    [(f_key, filtered)] = sent(outbox["sensor_filtered"])  # only the good upload
    assert f_key == user.encode() and filtered["event_id"] == upload["event_id"]
    assert problem(FilteredUpload, filtered) is None
    # the bad upload left no state behind: the only states are the good upload's, as if it came alone
    _f, _d, expected_states = filter_upload(json.dumps(upload).encode(), {}, source_of(1), user)
    assert set(topics.kalman_states.keys()) == {user}
    assert topics.kalman_states[user] == on_the_wire(expected_states)
    assert [k for k, _v in changelog["kalman_states"]] == [user]


async def test_unknown_person_is_quarantined_not_served(outbox, changelog, live, uploads, people):
    """A person the live snapshot does not know gets no filtered upload (hence no score, no push)."""
    user = people["stranger"]
    upload = first_upload(uploads, user)
    async with sensors.filter_uploads.test_context() as agent:
        await agent.put(json.dumps(upload).encode(), key=user.encode())
        await wait_until(lambda: outbox["sensor_deadletter"].await_count >= 1, what="a quarantine letter")
        known = first_upload(uploads, people["known"])
        await agent.put(json.dumps(known).encode(), key=people["known"].encode())
        await wait_until(lambda: outbox["sensor_filtered"].await_count >= 1, what="the known person's upload")
    [(_k, dead)] = sent(outbox["sensor_deadletter"])
    assert "unknown person" in dead["reason"] and "quarantined" in dead["reason"]
    assert [v["user_id"] for _k, v in sent(outbox["sensor_filtered"])] == [people["known"]]
    assert user not in set(topics.kalman_states.keys())


async def test_redelivered_upload_is_filtered_once(outbox, changelog, live, uploads, people):
    """The same record again (a replay after a crash): identical output, the device state does not move;
    the same event id from another record: a duplicate, dead-lettered."""
    user = people["known"]
    upload = first_upload(uploads, user)
    raw = json.dumps(upload).encode()
    async with sensors.filter_uploads.test_context() as agent:
        await agent.put(raw, key=user.encode())
        await wait_until(lambda: outbox["sensor_filtered"].await_count >= 1, what="the first filtering")
        state_after_first = on_the_wire(topics.kalman_states[user])
    first = sent(outbox["sensor_filtered"])[0][1]
    # the agent's test channel numbers records from 0 again: the replayed record has the same source
    async with sensors.filter_uploads.test_context() as agent:
        await agent.put(raw, key=user.encode())
        await wait_until(lambda: outbox["sensor_filtered"].await_count >= 2, what="the redelivery")
        await agent.put(raw, key=user.encode())  # the same upload as a new record: a duplicate
        await wait_until(lambda: outbox["sensor_deadletter"].await_count >= 1, what="the duplicate's letter")
    again = sent(outbox["sensor_filtered"])[1][1]
    assert on_the_wire(again) == on_the_wire(first)
    assert on_the_wire(topics.kalman_states[user]) == state_after_first
    dev = state_after_first[upload["device_id"]]
    assert dev["state"]["readings"] == len(upload["ts"])  # counted once, not twice
    assert "duplicate upload" in sent(outbox["sensor_deadletter"])[0][1]["reason"]
