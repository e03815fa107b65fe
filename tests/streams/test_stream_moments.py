"""streams.agents.moments.process: sensor.raw (+ stream.ticks) -> one micro-batch -> state.features,
osr.scores, tuner.decisions, push.approved | sensor.deadletter, each person's state in `person_states`.

Every test runs the real agent in Faust's test context, fed records with their own topic, partition
and offset (agent_harness.Record), one micro-batch at a time (agent_harness.run_batch), on the agent's
clock (conftest.Clock). People (conftest): known and opted_out report from a phone and a watch,
popular from a phone only, the stranger is unknown to the snapshot.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest
from agent_harness import on_the_wire, partition_of, run_batch, run_batches, sent, tick_record, upload_record

import streams.topics as topics
from pipelines.contracts import DeadLetter, FeatureRow, Notification, ScoredEvent, TunerDecision, problem
from pipelines.filtering.moment import moment_of
from pipelines.filtering.stage import Arrival
from pipelines.ingest.producer import CORRUPTIONS, corrupt
from pipelines.online.chain import Chain, HeldPeople
from pipelines.online.tuner import RULE_COLUMNS
from streams.agents import moments

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

#: Tuner rules that approve any candidate (threshold 0, no gap): what is refused then is refused by
#: the person's preferences, not by the model's scores.
APPROVE_ALL = pd.DataFrame([("global", "*", 0.0, 0.0)], columns=RULE_COLUMNS)


def moment(uploads, user_id: str, k: int = 0) -> list[dict]:
    """The uploads of a person's k-th streamed moment, one per device (phone first)."""
    mine = [u for u in uploads if u["user_id"] == user_id]
    names = list(dict.fromkeys(moment_of(u) for u in mine))
    return sorted((u for u in mine if moment_of(u) == names[k]), key=lambda u: u["device_type"])


def mid(upload: dict) -> str:
    """The fused moment's id: "<user_id>:<moment>"."""
    return f"{upload['user_id']}:{moment_of(upload)}"


def stored(user: str) -> dict:
    """The person's state as the table holds it (orjson bytes), decoded."""
    return moments.load_state(topics.person_states.data[user])


def values(outbox, name: str) -> list[dict]:
    return [on_the_wire(v) for _k, v in sent(outbox[name])]


def writes(changelog) -> list[tuple[int, str, dict]]:
    """The person states written (the partitions' offset watermarks logged with them left out)."""
    return [w for w in changelog[topics.person_states.name] if not w[1].startswith(moments.WATERMARK)]


def test_every_bad_kind_has_an_expected_reason():
    assert set(EXPECTED_REASON) == set(CORRUPTIONS) | {"key_mismatch"}


# --- a moment from all of a person's devices --------------------------------------------------------

@pytest.mark.parametrize("order", ["phone_first", "watch_first"])
async def test_phone_and_watch_become_one_moment_one_score_one_decision(order, outbox, changelog, live, uploads,
                                                                        people, monkeypatch):
    user = people["known"]
    phone, watch = moment(uploads, user)
    assert (phone["device_type"], watch["device_type"]) == ("phone", "watch")
    pair = [phone, watch] if order == "phone_first" else [watch, phone]
    out = await run_batch([upload_record(u, k) for k, u in enumerate(pair)], outbox, monkeypatch)

    assert sent(outbox["sensor_deadletter"]) == []
    [(key, row)] = sent(outbox["state_features"])
    assert key == user.encode() and problem(FeatureRow, row) is None
    row = on_the_wire(row)
    assert row["event_id"] == mid(phone) == f"{user}:{moment_of(watch)}"
    assert (row["user_id"], row["device_id"], row["device_type"]) == (
        user, f"{user}-phone+{user}-watch", "phone+watch")
    assert row["hr_pct_peak"] is not None  # the phone measures no heart rate: it came from the watch

    [(key, scored)] = sent(outbox["osr_scores"])
    assert key == user.encode() and problem(ScoredEvent, scored) is None
    assert (scored["event_id"], scored["model_id"], scored["ts"]) == (row["event_id"], live, row["ts"])
    [(key, decision)] = sent(outbox["tuner_decisions"])
    assert key == user.encode() and problem(TunerDecision, decision) is None
    assert decision["event_id"] == row["event_id"] and decision["reason"]

    # the person's state: nothing waits, the moment is remembered with both uploads' sources
    state = stored(user)
    assert state["pending"] == {}
    [(remembered, sources, _values, released_by)] = state["recent"]
    assert remembered == row["event_id"]
    assert sources == {u["event_id"]: upload_record(u, k).source for k, u in enumerate(pair)}
    assert released_by == upload_record(pair[1], 1).source  # the second device's upload completed it
    assert [(p, k) for p, k, _v in writes(changelog)] == [(partition_of(user), user)]
    assert on_the_wire(out.features) == [row]  # what the chain made is what was published


async def test_both_orders_fuse_to_the_same_row(outbox, live, uploads, people, monkeypatch):
    """The fusion does not depend on which device's upload came first (the next person's first moment
    runs from an empty state, so the two rows are comparable)."""
    user = people["known"]
    phone, watch = moment(uploads, user)
    await run_batch([upload_record(phone, 0), upload_record(watch, 1)], outbox, monkeypatch)
    first = values(outbox, "state_features")
    topics.person_states.data.clear()
    await run_batch([upload_record(watch, 0), upload_record(phone, 1)], outbox, monkeypatch)
    second = values(outbox, "state_features")[1:]
    assert len(first) == 1 and second == first


async def test_a_person_with_one_registered_device_is_not_held(outbox, changelog, live, uploads, people,
                                                              snapshot_tables, snapshot_meta, monkeypatch):
    user = people["popular"]
    [phone] = moment(uploads, user)
    await run_batch([upload_record(phone, 0)], outbox, monkeypatch)

    [row] = values(outbox, "state_features")
    assert (row["event_id"], row["device_id"]) == (mid(phone), phone["device_id"])
    [scored] = values(outbox, "osr_scores")
    popular = snapshot_tables["items"].sort_values("popularity", ascending=False).head(snapshot_meta["top_n"])
    assert [s["item_id"] for s in scored["scores"]] == list(popular.item_id)  # no top-N: the popular items
    assert [d["event_id"] for d in values(outbox, "tuner_decisions")] == [mid(phone)]
    assert stored(user)["pending"] == {}
    assert [(p, k) for p, k, _v in writes(changelog)] == [(partition_of(user), user)]


# --- a device that does not report ---------------------------------------------------------------------

async def test_a_moment_missing_a_device_is_released_by_a_tick_and_the_late_device_dead_lettered(
        outbox, changelog, live, uploads, people, clock, monkeypatch):
    user = people["known"]
    part = partition_of(user)
    phone, watch = moment(uploads, user)
    hold = moments.chain.hold_s
    assert hold > 0

    t0 = clock.now
    await run_batch([upload_record(phone, 0)], outbox, monkeypatch)
    assert sent(outbox["state_features"]) == [] and sent(outbox["sensor_deadletter"]) == []
    assert list(stored(user)["pending"]) == [moment_of(phone)]  # waits for the watch
    assert [(p, k) for p, k, _v in writes(changelog)] == [(part, user)]

    clock.now = t0 + hold / 2  # a tick before the hold is up: still waiting, nothing written
    await run_batch([tick_record(part, 0)], outbox, monkeypatch)
    clock.now = t0 + hold  # the hold is up, but the tick is for another partition
    await run_batch([tick_record((part + 1) % topics.PARTITIONS, 0)], outbox, monkeypatch)
    assert sent(outbox["state_features"]) == [] and len(writes(changelog)) == 1

    await run_batch([tick_record(part, 1)], outbox, monkeypatch)  # the hold is up on the person's partition
    [row] = values(outbox, "state_features")
    assert (row["event_id"], row["device_id"], row["device_type"]) == (mid(phone), phone["device_id"], "phone")
    assert [s["event_id"] for s in values(outbox, "osr_scores")] == [mid(phone)]
    assert [d["event_id"] for d in values(outbox, "tuner_decisions")] == [mid(phone)]
    assert stored(user)["pending"] == {}
    assert [(p, k) for p, k, _v in writes(changelog)] == [(part, user), (part, user)]
    assert moments.held.due(part) == []

    # the watch's upload of that moment comes now: too late, dead-lettered; the next moment goes on
    late = upload_record(watch, 1)
    phone2, watch2 = moment(uploads, user, 1)
    await run_batch([late, upload_record(phone2, 2), upload_record(watch2, 3)], outbox, monkeypatch)
    [dead] = values(outbox, "sensor_deadletter")
    assert problem(DeadLetter, dead) is None
    assert "late device" in dead["reason"] and watch["device_id"] in dead["reason"], dead["reason"]
    assert (dead["source"], dead["event_id"]) == (late.source, watch["event_id"])
    assert [r["event_id"] for r in values(outbox, "state_features")] == [mid(phone), mid(phone2)]


async def test_a_tick_releases_nothing_while_its_partition_has_a_backlog(outbox, live, uploads, people, clock,
                                                                         caught_up, monkeypatch):
    """Behind a backlog the partner upload may be next in the partition: no release by age until caught up."""
    user = people["known"]
    phone, watch = moment(uploads, user)
    await run_batch([upload_record(phone, 0)], outbox, monkeypatch)
    clock.now += 10 * moments.chain.hold_s
    caught_up["caught_up"] = False
    await run_batch([tick_record(partition_of(user), 0)], outbox, monkeypatch)
    assert sent(outbox["state_features"]) == []
    await run_batch([upload_record(watch, 1)], outbox, monkeypatch)  # the backlog reaches the partner
    assert [(r["event_id"], r["device_type"]) for r in values(outbox, "state_features")] == [
        (mid(phone), "phone+watch")]
    assert sent(outbox["sensor_deadletter"]) == []


async def test_the_hold_is_measured_in_record_time_not_by_the_workers_clock(outbox, live, uploads, people, clock,
                                                                            monkeypatch):
    """A worker down for a minute between the two uploads of a moment (records produced 10 ms apart)
    still fuses them: the wait is the records' time apart, not how long the worker was away."""
    user = people["known"]
    phone, watch = moment(uploads, user)
    t0 = clock.now
    await run_batch([upload_record(phone, 0)], outbox, monkeypatch)
    clock.now = t0 + 60.0
    await run_batch([upload_record(watch, 1, timestamp=t0 + 0.01)], outbox, monkeypatch)
    assert [(r["event_id"], r["device_type"]) for r in values(outbox, "state_features")] == [
        (mid(phone), "phone+watch")]
    assert sent(outbox["sensor_deadletter"]) == []


async def test_an_upload_overlapping_a_waiting_moment_is_out_of_order(outbox, live, uploads, people, monkeypatch):
    """A copy of a waiting window under a new moment name is refused as out of order (not fused, and
    not a filter error)."""
    user = people["known"]
    phone, _watch = moment(uploads, user)
    copy = {**phone, "event_id": f"{phone['device_id']}:replayed"}
    await run_batch([upload_record(phone, 0), upload_record(copy, 1)], outbox, monkeypatch)
    [dead] = values(outbox, "sensor_deadletter")
    assert dead["reason"].startswith("out of order") and "waiting" in dead["reason"], dead["reason"]


async def test_after_a_restart_a_tick_releases_a_moment_held_in_the_recovered_table(outbox, changelog, live, uploads,
                                                                                    people, clock, monkeypatch):
    """A restarted worker knows who waits only from the table it recovered: the first micro-batch
    seeds that from the table, so the tick on the person's partition still releases the moment."""
    user = people["known"]
    phone, _watch = moment(uploads, user)
    await run_batch([upload_record(phone, 0)], outbox, monkeypatch)
    monkeypatch.setattr(moments, "held", HeldPeople())  # the new process: its table recovered, nothing else
    clock.now += moments.chain.hold_s
    await run_batch([tick_record(partition_of(user), 0)], outbox, monkeypatch)
    assert [(r["event_id"], r["device_type"]) for r in values(outbox, "state_features")] == [(mid(phone), "phone")]
    assert [(p, k) for p, k, _v in writes(changelog)] == [(partition_of(user), user)] * 2


async def test_a_tick_releases_a_moment_held_on_a_partition_gained_after_start(outbox, live, uploads, people, clock,
                                                                               monkeypatch):
    """Worker A takes the phone upload and holds the moment, then A dies; worker B, running since before
    (its held set synced to partitions without waiting moments), gains the partition and recovers
    the table. B's ticks on that partition release the moment (found by a review of this test: the
    held set used to be seeded only at a worker's first micro-batch)."""
    user = people["known"]
    phone, _watch = moment(uploads, user)
    await run_batch([upload_record(phone, 0)], outbox, monkeypatch)  # worker A
    b_held = HeldPeople()
    others = set(range(topics.PARTITIONS)) - {partition_of(user)}
    b_held.sync(others, lambda: iter(()), partition_of)  # B's partitions before the rebalance
    monkeypatch.setattr(moments, "held", b_held)
    clock.now += moments.chain.hold_s
    await run_batch([tick_record(partition_of(user), 0)], outbox, monkeypatch)
    assert [r["event_id"] for r in values(outbox, "state_features")] == [mid(phone)]


async def test_a_held_moment_is_released_by_the_persons_next_moment(outbox, live, uploads, people, monkeypatch):
    """No tick needed when the person's next moment arrives: the earlier one is fused with what it has."""
    user = people["known"]
    phone, _watch = moment(uploads, user)
    phone2, watch2 = moment(uploads, user, 1)
    await run_batch([upload_record(phone, 0)], outbox, monkeypatch)
    await run_batch([upload_record(phone2, 1), upload_record(watch2, 2)], outbox, monkeypatch)
    rows = values(outbox, "state_features")
    assert [(r["event_id"], r["device_type"]) for r in rows] == [(mid(phone), "phone"), (mid(phone2), "phone+watch")]


# --- redelivery and duplicates ---------------------------------------------------------------------------

async def test_a_redelivered_upload_re_emits_the_same_row_without_advancing_state(outbox, changelog, live, uploads,
                                                                                 people, monkeypatch):
    user = people["known"]
    phone, watch = moment(uploads, user)
    records = [upload_record(phone, 0), upload_record(watch, 1)]
    await run_batch(records, outbox, monkeypatch)
    [row] = values(outbox, "state_features")
    [decision] = values(outbox, "tuner_decisions")
    state = on_the_wire(stored(user))

    await run_batch(records, outbox, monkeypatch)  # both records again (a replay after a crash)
    await run_batch(records[1:], outbox, monkeypatch)  # and only the watch's
    assert values(outbox, "state_features") == [row, row, row]  # once per batch, not once per record
    assert values(outbox, "tuner_decisions") == [decision] * 3  # decided once, recalled since
    assert [s["event_id"] for s in values(outbox, "osr_scores")] == [row["event_id"]] * 3
    assert sent(outbox["sensor_deadletter"]) == []
    assert on_the_wire(stored(user)) == state  # filters, memory, tuner: unmoved
    assert all(moments.load_state(v) == state for _p, _k, v in writes(changelog))


@pytest.mark.parametrize("when", ["after_fusion", "while_held"])
async def test_the_same_event_id_from_another_offset_is_a_duplicate(when, outbox, changelog, live, uploads, people,
                                                                    monkeypatch):
    user = people["known"]
    phone, watch = moment(uploads, user)
    first = upload_record(phone, 0)
    await run_batch([first, upload_record(watch, 1)] if when == "after_fusion" else [first], outbox, monkeypatch)
    state = on_the_wire(stored(user))
    n_rows, n_writes = outbox["state_features"].await_count, len(writes(changelog))

    again = upload_record(phone, 7)  # the same upload as a new record
    await run_batch([again], outbox, monkeypatch)
    [dead] = values(outbox, "sensor_deadletter")
    assert "duplicate upload" in dead["reason"] and first.source in dead["reason"], dead["reason"]
    assert (dead["source"], dead["event_id"]) == (again.source, phone["event_id"])
    assert outbox["state_features"].await_count == n_rows and len(writes(changelog)) == n_writes
    assert on_the_wire(stored(user)) == state


# --- bad input ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", [*CORRUPTIONS, "key_mismatch"])
async def test_a_bad_upload_is_dead_lettered_and_the_rest_of_its_batch_processed(kind, outbox, changelog, live,
                                                                                uploads, people, monkeypatch):
    user = people["known"]
    phone, watch = moment(uploads, user)
    if kind == "key_mismatch":
        bad = upload_record(phone, 0, user_id=people["popular"])  # keyed (and partitioned) as someone else
    else:
        bad = upload_record(corrupt(watch, kind), 0, user_id=user)
    good = [upload_record(phone, 1), upload_record(watch, 2)]
    out = await run_batch([bad, *good], outbox, monkeypatch)

    [dead] = values(outbox, "sensor_deadletter")
    assert problem(DeadLetter, dead) is None
    assert EXPECTED_REASON[kind] in dead["reason"], dead["reason"]
    assert dead["source"] == bad.source
    assert dead["payload"] == bad.value.decode("utf-8", "replace")
    assert dead["event_id"] == (None if kind in ("not_json", "json_array") else
                                (phone if kind == "key_mismatch" else watch)["event_id"])

    # the good uploads are fused as if the bad one had not been there
    snapshot = topics.live_snapshot.refresh()
    alone = Chain(hold_s=moments.chain.hold_s).run(
        {user: [Arrival(r.value, r.source, user, moments.time.time()) for r in good]}, lambda _p: None, snapshot,
        now=moments.time.time())
    assert [r["event_id"] for r in out.features] == [mid(phone)]
    assert values(outbox, "state_features") == on_the_wire(alone.features)
    kept = stored(user)
    # the person's state also keeps what their batch dead-lettered, so a replay re-sends that letter
    assert kept.pop("dead") == ({} if kind == "key_mismatch" else {bad.source: dead["reason"]})
    assert on_the_wire({**kept, "dead": {}}) == on_the_wire(alone.states[user])
    assert [k for _p, k, _v in writes(changelog)] == [user]  # nothing stored for the bad record's key


async def test_unknown_person_and_unregistered_devices_are_quarantined(outbox, changelog, live, uploads, people,
                                                                      monkeypatch):
    user, stranger = people["known"], people["stranger"]
    phone, watch = moment(uploads, user)
    [s_phone, _s_watch] = moment(uploads, stranger)
    spare = {**phone, "device_id": f"{user}-spare", "event_id": f"{user}-spare:{moment_of(phone)}"}
    borrowed = {**phone, "device_id": f"{people['popular']}-phone",  # registered, but to someone else
                "event_id": f"{people['popular']}-phone:{moment_of(phone)}"}
    records = [upload_record(s_phone, 0), upload_record(spare, 1), upload_record(borrowed, 2),
               upload_record(phone, 3), upload_record(watch, 4)]
    await run_batch(records, outbox, monkeypatch)

    dead = values(outbox, "sensor_deadletter")
    assert [d["source"] for d in dead] == [r.source for r in records[:3]]
    assert "unknown person" in dead[0]["reason"] and "quarantined" in dead[0]["reason"], dead[0]["reason"]
    for d, device in zip(dead[1:], (spare, borrowed)):
        assert f"{device['device_id']!r} is not registered to {user!r}" in d["reason"], d["reason"]
        assert "quarantined" in d["reason"]
    # the person's own two devices still make their moment, and only theirs
    [row] = values(outbox, "state_features")
    assert (row["event_id"], row["device_id"]) == (mid(phone), f"{user}-phone+{user}-watch")
    assert stranger not in topics.person_states.data
    assert [k for _p, k, _v in writes(changelog)] == [user]
    assert all(v["user_id"] != stranger for v in values(outbox, "osr_scores") + values(outbox, "push_approved"))


# --- the tuner ------------------------------------------------------------------------------------------

async def test_every_scored_moment_gets_a_decision_and_approved_ones_a_push(outbox, publish, uploads, people,
                                                                           monkeypatch):
    publish("m1", rules=APPROVE_ALL)
    known, opted_out, popular = people["known"], people["opted_out"], people["popular"]
    records = [upload_record(u, k) for k, u in enumerate(
        moment(uploads, known) + moment(uploads, opted_out) + moment(uploads, popular))]
    await run_batch(records, outbox, monkeypatch)

    scored = values(outbox, "osr_scores")
    decisions = values(outbox, "tuner_decisions")
    assert sorted(s["event_id"] for s in scored) == sorted(d["event_id"] for d in decisions)
    assert len(decisions) == 3
    for d in decisions:
        assert problem(TunerDecision, d) is None and d["model_id"] == "m1"
    by_user = {d["user_id"]: d for d in decisions}
    assert by_user[opted_out]["reason"] == "opted out" and not by_user[opted_out]["approved"]
    for user in (known, popular):
        assert (by_user[user]["reason"], by_user[user]["approved"]) == ("approved", True), by_user[user]
        assert (by_user[user]["rule_scope"], by_user[user]["threshold"]) == ("global", 0.0)

    pushes = sent(outbox["push_approved"])
    assert sorted(k for k, _v in pushes) == sorted([known.encode(), popular.encode()])
    for _k, note in pushes:
        assert problem(Notification, note) is None
        decision = by_user[note["user_id"]]
        assert (note["event_id"], note["item_id"]) == (decision["event_id"], decision["item_id"])
        assert note["notification_id"] == f"{note['event_id']}:{note['item_id']}"


async def test_a_moment_under_the_threshold_is_refused_with_its_reason(outbox, publish, uploads, people,
                                                                      monkeypatch):
    publish("m1", rules=pd.DataFrame([("global", "*", 1.01, 0.0)], columns=RULE_COLUMNS))
    user = people["known"]
    await run_batch([upload_record(u, k) for k, u in enumerate(moment(uploads, user))], outbox, monkeypatch)
    [decision] = values(outbox, "tuner_decisions")
    assert not decision["approved"] and "under threshold" in decision["reason"], decision["reason"]
    assert sent(outbox["push_approved"]) == []


# --- the person's state in the table -----------------------------------------------------------------------

async def test_one_changelog_write_per_person_per_batch_on_the_persons_partition(outbox, changelog, live, uploads,
                                                                                  people, monkeypatch):
    """Two moments each of two people in one micro-batch: one table write per person, each to the
    partition of that person's records. The batch ends with the other person's records, so a write
    to the partition of the batch's last event (Faust's default for a table write) would be caught."""
    known, popular = people["known"], people["popular"]
    assert partition_of(known) != partition_of(popular)
    ups = moment(uploads, known) + moment(uploads, known, 1) + moment(uploads, popular) + moment(uploads, popular, 1)
    await run_batch([upload_record(u, k) for k, u in enumerate(ups)], outbox, monkeypatch)

    assert len(values(outbox, "state_features")) == 4
    log = writes(changelog)
    assert sorted((k, p) for p, k, _v in log) == sorted([(known, partition_of(known)),
                                                         (popular, partition_of(popular))])
    for _p, key, value in log:
        assert value is topics.person_states.data[key]  # what the table holds is what was logged
        assert [m for m, *_rest in moments.load_state(value)["recent"]] == [mid(moment(uploads, key, k)[0]) for k in (0, 1)]


# --- the agent never stops -------------------------------------------------------------------------------------

async def test_the_agent_never_dies_on_bad_input_between_good_input(outbox, live, uploads, people, monkeypatch):
    """One record per micro-batch, in one running agent: garbage of every sort, each followed by a good
    moment of the one-device person, and ticks in between."""
    user = people["popular"]
    phone, phone2 = moment(uploads, user)[0], moment(uploads, user, 1)[0]
    part = partition_of(user)
    bad = [
        upload_record(b"", 0, user_id=user),
        upload_record(b"null", 1, user_id=user),
        upload_record(b"\xff\xfe" * 50, 2, user_id=user),
        upload_record(phone, 3, user_id=user, key=b"\xff\xfe"),  # undecodable key
        upload_record(json.dumps({**phone, "ts": "soon"}).encode(), 4, user_id=user),
        upload_record(json.dumps({**phone, "event_id": 17}).encode(), 5, user_id=user),
    ]
    records = [*bad[:3], upload_record(phone, 6), tick_record(part, 0), *bad[3:], upload_record(phone2, 7)]
    outs = await run_batches(records, 1, outbox, monkeypatch)

    assert len(outs) == len(records)
    dead = values(outbox, "sensor_deadletter")
    assert [d["source"] for d in dead] == [r.source for r in bad]
    assert all(d["reason"] and problem(DeadLetter, d) is None for d in dead)
    assert [r["event_id"] for r in values(outbox, "state_features")] == [mid(phone), mid(phone2)]


async def test_results_are_published_only_after_the_persons_state_is_logged(
        outbox, changelog, live, uploads, people, monkeypatch):
    """State first, results after: until the broker acknowledged the person's new state, none of the
    batch's results is sent (a crash then replays the records onto the logged state, which re-emits)."""
    import asyncio

    from agent_harness import _put, wait_until

    user = people["known"]
    phone, watch = moment(uploads, user)
    pending: list[asyncio.Future] = []

    def unacked(partition, key, value, key_serializer=None, value_serializer=None):
        changelog[topics.person_states.name].append((partition, key, value))
        fut = asyncio.get_running_loop().create_future()
        pending.append(fut)
        return fut

    monkeypatch.setattr(topics.person_states, "send_changelog", unacked)
    monkeypatch.setattr(moments, "BATCH", 2)
    monkeypatch.setattr(moments, "WITHIN_S", 3600.0)
    async with moments.process.test_context() as agent:
        for rec in (upload_record(phone, 0), upload_record(watch, 1)):
            await _put(agent, rec)
        await wait_until(lambda: pending, what="the state logged")
        await asyncio.sleep(0.05)
        assert sum(m.await_count for m in outbox.values()) == 0  # nothing published before the ack
        for fut in pending:
            fut.set_result(None)
        await wait_until(lambda: outbox["tuner_decisions"].await_count == 1, what="the results after the ack")
    assert [r["event_id"] for r in values(outbox, "state_features")] == [mid(phone)]


async def test_a_redelivered_tick_re_emits_the_moment_it_released(outbox, changelog, live, uploads, people, clock,
                                                                  monkeypatch):
    """A moment released by a tick (its other device never came) is re-emitted when that tick record is
    delivered again after a crash: the state was logged, the results may not have been published."""
    user = people["known"]
    phone, _watch = moment(uploads, user)
    await run_batch([upload_record(phone, 0)], outbox, monkeypatch)
    clock.now += moments.chain.hold_s
    tick = tick_record(partition_of(user), 7)
    await run_batch([tick], outbox, monkeypatch)
    [row] = values(outbox, "state_features")
    [decision] = values(outbox, "tuner_decisions")
    state = stored(user)
    monkeypatch.setattr(moments, "held", HeldPeople())  # the restarted worker: only the table survived
    await run_batch([tick], outbox, monkeypatch)  # the same tick record again
    assert values(outbox, "state_features") == [row, row]
    assert values(outbox, "tuner_decisions") == [decision, decision]  # recalled, not decided again
    assert stored(user) == state


async def test_a_redelivered_upload_re_emits_the_earlier_moment_it_released(outbox, live, uploads, people,
                                                                            monkeypatch):
    """The person's next upload released a held moment; delivered again, it re-emits that moment too."""
    user = people["known"]
    phone, _watch = moment(uploads, user)
    phone2, _watch2 = moment(uploads, user, 1)
    await run_batch([upload_record(phone, 0)], outbox, monkeypatch)
    nxt = upload_record(phone2, 1)
    await run_batch([nxt], outbox, monkeypatch)
    assert [r["event_id"] for r in values(outbox, "state_features")] == [mid(phone)]  # phone2 now waits
    await run_batch([nxt], outbox, monkeypatch)  # redelivered
    assert [r["event_id"] for r in values(outbox, "state_features")] == [mid(phone), mid(phone)]
    assert sent(outbox["sensor_deadletter"]) == []


async def test_a_redelivered_upload_older_than_the_memory_is_dropped_not_dead_lettered(outbox, live, uploads, people,
                                                                                       monkeypatch):
    """After a crash the replay can reach back past the moments a state remembers: a record at or below
    the highest offset already taken from its partition was processed, so it is neither fused again
    nor dead-lettered as out of order; a genuinely new upload that is out of order still is."""
    from pipelines.filtering.stage import REMEMBER

    user = people["known"]

    def shifted(u: dict, k: int) -> dict:  # the person's moment k: the first moment's readings k * 700 s later
        return {**u, "event_id": f"{u['device_id']}:m{k}", "ts": [t + 700.0 * k for t in u["ts"]]}

    ups = [shifted(u, k) for k in range(REMEMBER + 2) for u in moment(uploads, user)]
    records = [upload_record(u, k) for k, u in enumerate(ups)]
    for rec in records:
        await run_batch([rec], outbox, monkeypatch)
    n_rows = len(values(outbox, "state_features"))
    await run_batch([records[0]], outbox, monkeypatch)  # the first upload again, long forgotten
    assert len(values(outbox, "state_features")) == n_rows and sent(outbox["sensor_deadletter"]) == []
    late_copy = upload_record({**ups[0], "event_id": f"{ups[0]['device_id']}:copied"}, len(records) + 5)
    await run_batch([late_copy], outbox, monkeypatch)  # a new record with old readings: out of order
    [dead] = values(outbox, "sensor_deadletter")
    assert dead["reason"].startswith("out of order"), dead["reason"]


def later_moment(u: dict, k: int) -> dict:
    """The upload as the person's moment k: the same readings k * 700 s later, under a new moment name."""
    return {**u, "event_id": f"{u['device_id']}:m{k}", "ts": [t + 700.0 * k for t in u["ts"]]}


async def test_a_replayed_backlog_batch_re_emits_every_moment_it_released(outbox, live, uploads, people, monkeypatch):
    """A backlog batch can release more of a person's moments than REMEMBER (a producer sending them
    back to back). A crash after the state was logged and before the results were published replays
    the batch onto that state: every moment it released comes out again, none dropped as "processed
    before" and none dead-lettered."""
    from pipelines.filtering.stage import REMEMBER

    user = people["known"]
    n = REMEMBER + 3
    records = [upload_record(later_moment(u, k), i)
               for i, (k, u) in enumerate((k, u) for k in range(n) for u in moment(uploads, user))]
    first = await run_batch(records, outbox, monkeypatch)
    assert len(first.features) == n
    again = await run_batch(records, outbox, monkeypatch)  # the same records onto the logged state
    assert sorted(r["event_id"] for r in again.features) == sorted(r["event_id"] for r in first.features)
    assert sent(outbox["sensor_deadletter"]) == []
    assert [d["reason"] for d in again.decisions] == [d["reason"] for d in first.decisions]  # recalled


async def test_a_redelivered_old_upload_behind_a_waiting_moment_is_dropped_not_dead_lettered(
        outbox, live, uploads, people, monkeypatch):
    """The replay reaches back past the remembered moments while a later moment waits for a device: the
    old upload overlaps nothing new (its moment was fused and published), so it is not "out of order"."""
    from pipelines.filtering.stage import REMEMBER

    user = people["known"]
    ups = [later_moment(u, k) for k in range(REMEMBER + 2) for u in moment(uploads, user)]
    records = [upload_record(u, i) for i, u in enumerate(ups)]
    for rec in records:
        await run_batch([rec], outbox, monkeypatch)
    phone_next = later_moment(moment(uploads, user)[0], REMEMBER + 2)
    await run_batch([upload_record(phone_next, len(records))], outbox, monkeypatch)  # waits for its watch
    assert stored(user)["pending"]
    n_rows = len(values(outbox, "state_features"))
    await run_batch([records[0]], outbox, monkeypatch)
    assert len(values(outbox, "state_features")) == n_rows and sent(outbox["sensor_deadletter"]) == []


async def test_a_replayed_batch_re_sends_the_dead_letters_its_state_made(outbox, live, uploads, people, monkeypatch):
    """An upload dead-lettered for what the person's state held (out of order) in a batch whose later
    records were taken: replayed onto the logged state, the offsets rule alone would drop it silently;
    the state keeps the batch's dead letters, so it is dead-lettered again with the same reason."""
    user = people["known"]
    phone, watch = moment(uploads, user)
    old_copy = {**phone, "event_id": f"{phone['device_id']}:copied"}
    batch = [upload_record(phone, 0), upload_record(watch, 1), upload_record(old_copy, 2),
             *(upload_record(later_moment(u, 1), 3 + i) for i, u in enumerate(moment(uploads, user)))]
    await run_batch(batch, outbox, monkeypatch)
    [dead] = values(outbox, "sensor_deadletter")
    assert dead["reason"].startswith("out of order") and dead["source"] == batch[2].source
    await run_batch(batch, outbox, monkeypatch)
    assert values(outbox, "sensor_deadletter") == [dead, dead]
    await run_batch([upload_record(later_moment(phone, 2), 10), upload_record(later_moment(watch, 2), 11)],
                    outbox, monkeypatch)
    assert stored(user)["dead"] == {}  # the next written batch forgets it (its letter was acknowledged)


async def test_caught_up_says_yes_only_at_the_high_watermark_or_after_an_idle_spell(clock, caught_up, monkeypatch):
    """The real check behind ticks (the other tests patch it): a partition this worker has seen no
    offset of is not caught up until no record has come for IDLE_S, e.g. one gained in a rebalance
    at the end of a stream, whose recovered held moments must still be released."""
    real = caught_up["real"]
    monkeypatch.setattr(moments, "last_record_at", {})
    monkeypatch.setattr(moments, "last_tick_at", {})
    monkeypatch.setattr(moments, "last_offset", {})
    assert await real(3) is False  # first tick: the idle clock starts now, no offset seen, no consumer here
    for _ in range(4):  # ticks keep coming, no record
        clock.now += moments.IDLE_S / 3
        await real(3)
    assert await real(3) is True
    clock.now += 10 * moments.IDLE_S  # no tick for a long time (the broker was away): start over
    assert await real(3) is False
    moments.last_record_at[3] = clock.now  # a record just came: busy again, and no high watermark known here
    moments.last_offset[3] = 41
    assert await real(3) is False


async def test_after_a_gap_in_the_ticks_a_partition_at_its_high_watermark_waits_before_it_is_caught_up(
        clock, caught_up, monkeypatch):
    """The broker was away: the worker has taken everything up to the high watermark it knows, but the
    producers are still delivering what they buffered (a held moment's partner may be in it), so a
    tick releases nothing by age until the ticks have flowed again for IDLE_S."""
    class AtHighWatermark:
        def highwater(self, tp):
            return 42  # the worker took offset 41: caught up, as far as the watermark shows

    real = caught_up["real"]
    monkeypatch.setattr(moments, "last_record_at", {})
    monkeypatch.setattr(moments, "last_tick_at", {})
    monkeypatch.setattr(moments, "resumed_at", {})
    monkeypatch.setattr(moments, "last_offset", {3: 41})
    monkeypatch.setattr(moments.app, "_consumer", AtHighWatermark())
    assert await real(3) is True  # ticking along, nothing behind
    clock.now += 10 * moments.IDLE_S  # no tick meanwhile: an outage
    moments.last_record_at[3] = clock.now
    assert await real(3) is False
    clock.now += moments.IDLE_S / 2
    assert await real(3) is False
    clock.now += moments.IDLE_S / 2
    assert await real(3) is True
