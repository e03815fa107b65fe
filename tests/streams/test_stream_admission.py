"""Admission control in the stream's chain (pipelines.online.chain with pipelines.capacity.deferral):
degraded mode scores the pre-rank's top_k candidates only, admission mode defers the scoring of the
lowest-priority people to a later batch without losing a moment (also across a crash), and no plan
or a normal one changes nothing."""

from __future__ import annotations

import itertools
import re

import orjson
import pandas as pd
import pytest
from agent_harness import on_the_wire, partition_of, run_batch, sent, tick_record, upload_record

import streams.topics as topics
from pipelines.capacity.admission import AdmissionPlan
from pipelines.capacity.deferral import NORMAL
from pipelines.filtering.stage import Arrival
from pipelines.online.chain import Chain, HeldPeople
from pipelines.online.tuner import RULE_COLUMNS
from streams.agents import moments

APPROVE_ALL = pd.DataFrame([("global", "*", 0.0, 0.0)], columns=RULE_COLUMNS)
NOW = 1_800_000_000.0
DEGRADED_2 = AdmissionPlan("degraded", 2, 1.0, "test: degraded")
#: everyone's priority is 0 before admission control has scored anyone: ties by id
ONE_IN_THREE = AdmissionPlan("admission", None, 0.34, "test: admit a third")


def later_moment(u: dict, k: int) -> dict:
    """The upload as the person's moment k: the same readings k * 700 s later, under a new moment name."""
    return {**u, "event_id": f"{u['device_id']}:m{k}", "ts": [t + 700.0 * k for t in u["ts"]]}


def first_moment_devices(uploads, user) -> list[dict]:
    """The uploads of the person's first streamed moment, one per device (phone first)."""
    from pipelines.filtering.moment import moment_of

    mine = [u for u in uploads if u["user_id"] == user]
    name = moment_of(mine[0])
    return sorted((u for u in mine if moment_of(u) == name), key=lambda u: u["device_type"])


class Feed:
    """A person's moment k (their first moment's readings, k * 700 s later) as sensor.raw records with
    increasing offsets, by person as the chain takes them."""

    def __init__(self, uploads):
        self.uploads = uploads
        self.offsets = itertools.count()

    def batch(self, users: list[str], k: int) -> dict[str, list[Arrival]]:
        by: dict[str, list[Arrival]] = {}
        for user in users:
            for u in first_moment_devices(self.uploads, user):
                rec = upload_record(later_moment(u, k), next(self.offsets))
                by.setdefault(user, []).append(Arrival(rec.value, rec.source, user, NOW + 700.0 * k))
        return by


@pytest.fixture
def feed(uploads):
    return Feed(uploads)


@pytest.fixture
def snap(publish):
    publish("m1", rules=APPROVE_ALL)
    return topics.live_snapshot.refresh()


def run(chain: Chain, by, states: dict, snapshot, plan, ticks=None):
    out = chain.run(by, states.get, snapshot, now=NOW + 1e6, ticks=ticks, admission=plan)
    states.update(out.states)
    return out


def wire(out) -> bytes:
    return orjson.dumps([out.features, out.scored, out.decisions, out.approved, out.dead, out.states],
                        option=orjson.OPT_SORT_KEYS)


# --- normal: nothing changes -----------------------------------------------------------------------------

def test_a_normal_plan_gives_the_same_output_as_no_plan(snap, feed, people):
    users = [people["known"], people["opted_out"], people["popular"]]
    outs = {}
    for name, plan in (("none", None), ("normal", NORMAL), ("normal_other_reason",
                                                            AdmissionPlan("normal", None, 1.0, "demand fell"))):
        chain, states, f = Chain(), {}, Feed(feed.uploads)
        batches = [run(chain, f.batch(users, k), states, snap, plan) for k in range(3)]
        batches.append(run(chain, {u: [] for u in users}, states, snap, plan))
        outs[name] = [wire(o) for o in batches]
        assert sum(len(o.scored) for o in batches) == 9 and all(o.deferred == o.degraded == 0 for o in batches)
    assert outs["normal"] == outs["none"] and outs["normal_other_reason"] == outs["none"]


# --- degraded: the top_k by the pre-rank ------------------------------------------------------------------

def test_degraded_scores_exactly_top_k_candidates_the_pre_ranks_best(publish, feed, people):
    known = people["known"]
    # listed order is not the preference order: a "first k of the list" would pick i0, i1
    opted_out = people["opted_out"]
    topn = pd.DataFrame({"user_id": [known] * 5 + [opted_out] * 2, "rank": [1, 2, 3, 4, 5, 1, 2],
                         "item_id": ["i0", "i1", "i2", "i3", "i4", "i4", "i3"], "score": [1.0] * 7,
                         "preference": [0.2, 0.9, 0.5, 0.7, 0.1, 1.0, 0.5]})
    publish("m1", rules=APPROVE_ALL, topn=topn)
    snapshot = topics.live_snapshot.refresh()
    users = [known, people["popular"], people["opted_out"]]
    full = run(Chain(), feed.batch(users, 0), {}, snapshot, None)
    feed.offsets = itertools.count()
    deg = run(Chain(), feed.batch(users, 0), {}, snapshot, DEGRADED_2)

    assert [r["event_id"] for r in deg.features] == [r["event_id"] for r in full.features]  # all published
    by_user = {s["user_id"]: s for s in deg.scored}
    full_by_user = {s["user_id"]: s for s in full.scored}
    assert len(full_by_user[known]["scores"]) == 5
    assert [c["item_id"] for c in by_user[known]["scores"]] == ["i1", "i3"]
    # the popular items (no top-N): top 2 of 3 by popularity i2 (9), i5 (7), i0 (5)
    assert [c["item_id"] for c in by_user[people["popular"]]["scores"]] == ["i2", "i5"]
    for user in (known, people["popular"]):
        same = {c["item_id"]: c for c in full_by_user[user]["scores"]}
        for c in by_user[user]["scores"]:  # a degraded candidate scores as it does among all of them
            assert c == pytest.approx(same[c["item_id"]])
    reasons = {d["user_id"]: d["reason"] for d in deg.decisions}
    assert reasons[known].endswith("[degraded: top 2 of 5 candidates scored]"), reasons[known]
    assert reasons[people["popular"]].endswith("[degraded: top 2 of 3 candidates scored]")
    # opted_out has 2 candidates: nothing left out, so the reason is the tuner's own
    assert reasons[people["opted_out"]] == "opted out"
    assert deg.degraded == 2


# --- admission: deferred, then scored, nothing lost ------------------------------------------------------------

def test_deferred_people_get_no_score_now_and_one_in_the_next_admitted_batch(snap, feed, people):
    users = [people["known"], people["opted_out"], people["popular"]]
    first_in = min(users)
    states: dict = {}
    chain = Chain()
    out = run(chain, feed.batch(users, 0), states, snap, ONE_IN_THREE)
    assert len(out.features) == 3  # everyone's feature rows are published at once
    assert [s["user_id"] for s in out.scored] == [first_in] and len(out.decisions) == 1
    waiting = sorted(set(users) - {first_in})
    assert out.deferred == 2 and all(len(states[u]["deferred"]) == 1 for u in waiting)
    assert "deferred" not in states[first_in]

    held = HeldPeople()  # the worker finds them again: a caught-up tick looks at them
    for u in users:
        held.update(u, partition_of(u), states[u])
    due = {u for u in users if u in held.due(partition_of(u))}
    assert due == set(waiting)

    ticks = {u: f"{moments.TICKS}:{partition_of(u)}:0" for u in waiting}
    later = run(chain, {u: [] for u in waiting}, states, snap, NORMAL, ticks=ticks)
    assert sorted(s["user_id"] for s in later.scored) == waiting and later.late == 2
    rows = {r["event_id"]: r for r in out.features}
    for s in later.scored:  # the moment deferred, scored from the row published then
        assert rows[s["event_id"]]["user_id"] == s["user_id"]
    for d in later.decisions:
        assert d["reason"].endswith("[deferred 1 batch by admission control]"), d["reason"]
        assert states[d["user_id"]]["tuner"]["decided"][d["event_id"]][2] == d["reason"]  # explain shows it
    assert all("deferred" not in states[u] for u in users) and later.features == []

    # the same moments scored without admission control: the same scores
    alone_states: dict = {}
    feed.offsets = itertools.count()
    alone = run(Chain(), feed.batch(users, 0), alone_states, snap, None)
    expect = {s["event_id"]: s for s in alone.scored}
    for s in [*out.scored, *later.scored]:
        assert s == expect[s["event_id"]]
    for u in users:
        held.update(u, partition_of(u), states[u])
        assert u not in held.due(partition_of(u))


def test_a_deferred_moment_survives_a_crash_before_and_after_its_late_scoring(snap, feed, people):
    users = [people["known"], people["opted_out"], people["popular"]]
    chain = Chain()
    by = feed.batch(users, 0)
    states: dict = {}
    out1 = run(chain, by, states, snap, ONE_IN_THREE)
    moments_published = {r["event_id"] for r in out1.features}
    assert len(moments_published) == 3 and out1.deferred == 2
    logged = orjson.loads(orjson.dumps(states))  # what the changelog holds; out1 was never published

    # crash 1: the batch's records come again onto the logged state. Priorities moved (the deferred
    # waited a batch), so someone else may be admitted now: what is not scored must be waiting.
    again = run(chain, by, logged, snap, ONE_IN_THREE)
    assert {r["event_id"] for r in again.features} == moments_published
    waiting = {v[0][0] for u in users for v in logged[u].get("deferred") or ()}  # event_id is the first column
    assert len(again.decisions) == 1 and waiting | {d["event_id"] for d in again.decisions} == moments_published
    assert all(len(logged[u].get("deferred") or ()) <= 1 for u in users)  # waiting once, not twice

    # the restarted worker: only the table survived; a caught-up tick releases the deferred people
    held = HeldPeople()
    held.sync({partition_of(u) for u in users}, lambda: logged.items(), partition_of)
    tick = {u: f"{moments.TICKS}:{partition_of(u)}:5" for u in users}
    due = sorted(u for u in users if u in held.due(partition_of(u)))
    assert len(due) == 2
    out2 = run(chain, {u: [] for u in due}, logged, snap, NORMAL, ticks={u: tick[u] for u in due})
    assert sorted(s["user_id"] for s in out2.scored) == due
    published = {d["event_id"] for d in again.decisions} | {d["event_id"] for d in out2.decisions}
    assert published == moments_published  # every moment decided, none twice
    assert len(again.decisions) + len(out2.decisions) == 3
    logged2 = orjson.loads(orjson.dumps(logged))

    # crash 2: after the late scoring's state was logged, before its results were published
    held2 = HeldPeople()
    held2.sync({partition_of(u) for u in users}, lambda: logged2.items(), partition_of)
    again_people = sorted(u for u in users if u in held2.released_by(tick[u]))
    assert again_people == due  # the redelivered tick finds them
    assert all(u not in held2.due(partition_of(u)) for u in users)  # nothing waits any more
    out3 = run(chain, {u: [] for u in again_people}, logged2, snap, NORMAL,
               ticks={u: tick[u] for u in again_people})
    assert sorted(s["event_id"] for s in out3.scored) == sorted(s["event_id"] for s in out2.scored)
    assert [d["reason"] for d in out3.decisions] == [d["reason"] for d in out2.decisions]
    first = {d["event_id"]: d["reason"] for d in out1.decisions}  # decided before the crash, recalled since
    for d in [*again.decisions, *out2.decisions, *out3.decisions]:
        if d["event_id"] in first:
            assert d["reason"] == first[d["event_id"]]
        else:  # a moment deferred in the batch that crashed
            assert re.search(r" \[deferred [12] batch(es)? by admission control\]$", d["reason"]), d["reason"]
    # another tick does not score them again
    other = run(chain, {u: [] for u in due}, logged2, snap, NORMAL,
                ticks={u: f"{moments.TICKS}:{partition_of(u)}:6" for u in due})
    assert other.scored == []


def test_priority_is_the_last_best_score_and_a_deferred_person_is_admitted_before_fresher_ones(snap, feed, people):
    known, popular = people["known"], people["popular"]
    states: dict = {}
    chain = Chain()
    run(chain, feed.batch([known, popular], 0), states, snap, DEGRADED_2)  # records each one's best score
    hi, lo = sorted((known, popular), key=lambda u: -states[u]["best"])
    assert states[hi]["best"] > states[lo]["best"]
    half = AdmissionPlan("admission", 2, 0.5, "test: admit half")
    out = run(chain, feed.batch([known, popular], 1), states, snap, half)
    assert [s["user_id"] for s in out.scored] == [hi]  # the better last score first
    out = run(chain, feed.batch([known, popular], 2), states, snap, half)
    # lo waited a batch: now before hi, although hi's last score is higher
    assert [s["user_id"] for s in out.scored] == [lo, lo] and out.late == 1  # its waiting moment, then the new one
    waited, fresh = [d["reason"] for d in out.decisions]
    assert waited.endswith("[deferred 1 batch by admission control; degraded: top 2 of 3 candidates scored]")
    assert fresh.endswith(" [degraded: top 2 of 3 candidates scored]") and "deferred" not in fresh
    assert len(states[hi]["deferred"]) == 1


# --- in the worker ---------------------------------------------------------------------------------------------

async def test_the_worker_defers_by_the_followed_plan_and_a_tick_scores_the_deferred_later(
        outbox, changelog, publish, uploads, people, clock, monkeypatch):
    publish("m1", rules=APPROVE_ALL)
    users = [people["known"], people["opted_out"], people["popular"]]
    first_in = min(users)
    monkeypatch.setattr(moments.admission_plan, "_plan", ONE_IN_THREE)  # as refresh() would have read it
    devices = [d for user in users for d in first_moment_devices(uploads, user)]
    records = [upload_record(u, k) for k, u in enumerate(devices)]
    out = await run_batch(records, outbox, monkeypatch)
    assert out.deferred == 2
    assert len(sent(outbox["state_features"])) == 3
    assert [on_the_wire(v)["user_id"] for _k, v in sent(outbox["osr_scores"])] == [first_in]
    line = moments.timing.report()
    assert line is not None and line.endswith("admission: 2 deferred, 0 degraded")

    monkeypatch.setattr(moments.admission_plan, "_plan", NORMAL)  # demand fell
    waiting = sorted(set(users) - {first_in})
    parts = sorted({partition_of(u) for u in waiting})
    out = await run_batch([tick_record(p, 100 + p) for p in parts], outbox, monkeypatch)
    assert sorted(s["user_id"] for s in out.scored) == waiting
    decisions = [on_the_wire(v) for _k, v in sent(outbox["tuner_decisions"])]
    assert len(decisions) == 3 and sum("[deferred 1 batch" in d["reason"] for d in decisions) == 2
    assert all("deferred" not in moments.load_state(topics.person_states.data[u]) for u in users)
