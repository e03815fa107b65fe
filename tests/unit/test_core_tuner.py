"""pipelines.online.tuner: rule precedence and the push decision (threshold, gap, cap, quiet hours and the
daily cap in the person's own time zone, opt-out, staleness), the recorded decision and its idempotency."""

from __future__ import annotations

import copy
from datetime import datetime, timezone

import pandas as pd
import pytest

from pipelines import contracts as C
from pipelines.online.tuner import (DEFAULT_DAILY_CAP, DEFAULT_RULES, SCOPE_ORDER, RuleBook, TunerStage, decide,
                                    decide_moment)

ALL_SCOPES = [
    ("user_item", "u1|i1", 0.9, 10.0),
    ("user", "u1", 0.8, 20.0),
    ("item", "i1", 0.7, 30.0),
    ("person_class", "loyal", 0.65, 35.0),
    ("class", "coffee", 0.6, 40.0),
    ("global", "*", 0.5, 50.0),
]


def rulebook(rows) -> RuleBook:
    return RuleBook(pd.DataFrame(rows, columns=["scope", "scope_key", "threshold", "min_gap_s"]))


def at(day: int, hour: int, minute: int = 0) -> float:
    return datetime(2026, 11, day, hour, minute, tzinfo=timezone.utc).timestamp()


def scored(ts: float, *cands, event_id: str = "ev1", user_id: str = "u1") -> dict:
    return {"event_id": event_id, "user_id": user_id, "ts": ts, "model_id": "m1",
            "scores": [{"item_id": i, "category": c, "osr_score": s, "preference": 0.5, "propensity": 0.1}
                       for i, c, s in cands]}


def test_documented_precedence():
    assert SCOPE_ORDER == ("user_item", "user", "item", "person_class", "class", "global")


@pytest.mark.parametrize("drop, expected", [
    (0, ("user_item", 0.9, 10.0)),
    (1, ("user", 0.8, 20.0)),
    (2, ("item", 0.7, 30.0)),
    (3, ("person_class", 0.65, 35.0)),
    (4, ("class", 0.6, 40.0)),
    (5, ("global", 0.5, 50.0)),
])
def test_most_specific_rule_wins(drop, expected):
    rb = rulebook(ALL_SCOPES[drop:])
    r = rb.resolve("u1", "i1", "coffee", "loyal")
    assert (r.scope, r.threshold, r.min_gap_s) == expected


@pytest.mark.parametrize("winner", range(len(ALL_SCOPES) - 1))
def test_each_scope_beats_every_less_specific_one_alone(winner):
    """Pairwise: the scope with only one less specific rule beside it (and the global one) still wins,
    whichever threshold is higher."""
    for loser in range(winner + 1, len(ALL_SCOPES)):
        rows = {ALL_SCOPES[winner], ALL_SCOPES[loser], ALL_SCOPES[-1]}
        r = rulebook(sorted(rows, key=lambda x: -x[2])).resolve("u1", "i1", "coffee", "loyal")
        assert r.scope == ALL_SCOPES[winner][0], (ALL_SCOPES[winner][0], ALL_SCOPES[loser][0])


def test_a_tie_in_threshold_is_still_reported_as_the_more_specific_scope():
    rb = rulebook([("user", "u1", 0.5, 60.0), ("class", "coffee", 0.5, 60.0), ("global", "*", 0.5, 60.0)])
    note, _, _ = decide(scored(at(16, 12), ("i1", "coffee", 0.6)), rb, None, None)
    assert note["rule_scope"] == "user"


def test_keys_match_within_their_scope_only():
    # an item rule keyed like the person, a person-class rule keyed like the category: neither applies
    rb = rulebook([("item", "u1", 0.9, 1.0), ("person_class", "coffee", 0.8, 1.0), ("global", "*", 0.5, 2.0)])
    assert rb.resolve("u1", "i1", "coffee", "regular").scope == "global"


def test_person_class_rules_need_the_persons_class():
    rb = rulebook(ALL_SCOPES[3:])
    assert rb.resolve("u1", "i1", "coffee", None).scope == "class"  # no class known: skipped
    assert rb.resolve("u1", "i1", "coffee", "new").scope == "class"  # another class: does not apply
    assert rb.resolve("u1", "i1", "lunch", "loyal").scope == "person_class"
    note, _, _ = decide(scored(at(16, 12), ("i1", "lunch", 0.62)), rb, None, None, person_class="loyal")
    assert note is None  # 0.62 clears the global 0.5 but not loyal's 0.65
    note, _, _ = decide(scored(at(16, 12), ("i1", "lunch", 0.62)), rb, None, None, person_class="new")
    assert note["rule_scope"] == "global"


def test_unknown_scope_is_refused():
    with pytest.raises(ValueError, match="unknown tuner rule scope"):
        rulebook([("segment", "x", 0.5, 1.0), ("global", "*", 0.5, 1.0)])


def test_rules_of_other_people_items_and_classes_do_not_apply():
    rb = rulebook(ALL_SCOPES)
    assert rb.resolve("u2", "i2", "lunch").scope == "global"
    assert rb.resolve("u2", "i1", "lunch").scope == "item"
    assert rb.resolve("u2", "i2", "coffee").scope == "class"
    assert rb.resolve("u1", "i2", "lunch").scope == "user"  # u1's user rule, not u1|i1


def test_default_rules_make_electronics_stricter():
    rb = RuleBook(DEFAULT_RULES)
    electronics, coffee = rb.resolve("u1", "i1", "electronics"), rb.resolve("u1", "i1", "coffee")
    assert (electronics.scope, coffee.scope) == ("class", "global")
    assert electronics.threshold > coffee.threshold and electronics.min_gap_s > coffee.min_gap_s


def test_rulebook_needs_a_global_rule():
    with pytest.raises(ValueError, match="global rule"):
        rulebook(ALL_SCOPES[:4])
    with pytest.raises(ValueError):
        rulebook([])


def test_global_rule_with_other_key_is_refused_or_applies():
    try:
        rb = rulebook([("global", "default", 0.5, 60.0)])
    except ValueError:
        return  # refusing it up front is correct
    assert rb.resolve("u1", "i1", "coffee").threshold == 0.5  # ... or it must apply


# --- decide -----------------------------------------------------------------

RULES = rulebook([("global", "*", 0.5, 3600.0), ("class", "electronics", 0.8, 86400.0)])


def test_over_threshold_is_approved_with_the_rule_that_applied():
    note, reason, state = decide(scored(at(16, 12), ("i1", "coffee", 0.6)), RULES, None, None)
    assert reason == "approved"
    assert note == {"notification_id": "ev1:i1", "event_id": "ev1", "user_id": "u1", "item_id": "i1",
                    "category": "coffee", "ts": at(16, 12), "osr_score": 0.6, "threshold": 0.5,
                    "rule_scope": "global", "model_id": "m1"}
    assert {k: v for k, v in state.items() if k != "decided"} == {"day": "2026-11-16", "count": 1,
                                                                  "last_push": {"coffee": at(16, 12)}}
    assert state["decided"] == {"ev1": [at(16, 12), note, "approved", "global", 0.5, None]}


def test_under_threshold_is_refused():
    note, reason, state = decide(scored(at(16, 12), ("i1", "coffee", 0.49)), RULES, None, None)
    assert note is None
    assert reason == "best score 0.490 under threshold"
    assert state["count"] == 0 and state["last_push"] == {}


def test_threshold_is_inclusive():
    note, _, _ = decide(scored(at(16, 12), ("i1", "coffee", 0.5)), RULES, None, None)
    assert note is not None


def test_no_candidates():
    note, reason, _ = decide(scored(at(16, 12)), RULES, None, None)
    assert (note, reason) == (None, "no candidate")


def test_one_push_per_event_best_passing_candidate():
    ev = scored(at(16, 12), ("i1", "coffee", 0.6), ("i2", "electronics", 0.75), ("i3", "lunch", 0.7),
                ("i4", "grocery", 0.2))
    note, reason, state = decide(ev, RULES, None, None)
    # electronics scores highest but is under its class threshold 0.8; lunch is the best that passes
    assert reason == "approved"
    assert (note["item_id"], note["threshold"], note["rule_scope"]) == ("i3", 0.5, "global")
    assert state["count"] == 1 and state["last_push"] == {"lunch": at(16, 12)}


def test_class_rule_approves_above_its_threshold():
    note, _, _ = decide(scored(at(16, 12), ("i2", "electronics", 0.85)), RULES, None, None)
    assert (note["rule_scope"], note["threshold"]) == ("class", 0.8)


def test_min_gap_blocks_same_category_only():
    _, _, s1 = decide(scored(at(16, 8), ("i1", "coffee", 0.9), event_id="e1"), RULES, None, None)
    note, reason, s2 = decide(scored(at(16, 8, 30), ("i5", "coffee", 0.9), event_id="e2"), RULES, None, s1)
    assert note is None and reason == "similar item (coffee) pushed 1800s ago"
    assert {k: v for k, v in s2.items() if k != "decided"} == {k: v for k, v in s1.items() if k != "decided"}
    assert s2["decided"]["e2"] == [at(16, 8, 30), None, reason, "global", 0.5, None]
    # a different category in the same moment is allowed; the coffee candidate scoring higher is skipped
    note, reason, s3 = decide(scored(at(16, 8, 30), ("i5", "coffee", 0.9), ("i6", "lunch", 0.6), event_id="e3"),
                              RULES, None, s1)
    assert reason == "approved" and note["item_id"] == "i6"
    assert s3["last_push"] == {"coffee": at(16, 8), "lunch": at(16, 8, 30)} and s3["count"] == 2
    # once the gap has passed, coffee is allowed again
    note, reason, _ = decide(scored(at(16, 9), ("i5", "coffee", 0.9), event_id="e4"), RULES, None, s3)
    assert reason == "approved" and note["item_id"] == "i5"


def test_decide_does_not_mutate_the_state_it_is_given():
    _, _, s1 = decide(scored(at(16, 8), ("i1", "coffee", 0.9)), RULES, None, None)
    before = copy.deepcopy(s1)
    decide(scored(at(16, 12), ("i2", "lunch", 0.9), event_id="e2"), RULES, None, s1)
    assert s1 == before


def test_daily_cap_then_reset_on_a_new_day():
    prefs = {"opted_out": False, "quiet_start_hour": None, "quiet_end_hour": None, "daily_cap": 2}
    state = None
    for k, cat in enumerate(["coffee", "lunch"]):
        note, reason, state = decide(scored(at(16, 10 + k), (f"i{k}", cat, 0.9), event_id=f"e{k}"),
                                     RULES, prefs, state)
        assert reason == "approved"
    note, reason, state = decide(scored(at(16, 15), ("i9", "grocery", 0.9), event_id="e9"), RULES, prefs, state)
    assert (note, reason) == (None, "daily cap 2 reached")
    assert state["count"] == 2
    note, reason, state = decide(scored(at(17, 10), ("i9", "grocery", 0.9), event_id="e10"), RULES, prefs, state)
    assert reason == "approved"
    assert state["day"] == "2026-11-17" and state["count"] == 1


def test_default_daily_cap_applies_without_preferences():
    state = None
    cats = ["coffee", "lunch", "grocery", "apparel", "streaming"]
    approved = 0
    for k, cat in enumerate(cats):
        note, _, state = decide(scored(at(16, 9 + k), (f"i{k}", cat, 0.9), event_id=f"e{k}"), RULES,
                                {"daily_cap": float("nan")}, state)
        approved += note is not None
    assert approved == DEFAULT_DAILY_CAP == 3


def test_late_event_from_yesterday_does_not_reset_todays_cap():
    prefs = {"daily_cap": 2}
    state = None
    for k, cat in enumerate(["coffee", "lunch"]):
        _, _, state = decide(scored(at(17, 10 + k), (f"i{k}", cat, 0.9), event_id=f"e{k}"), RULES, prefs, state)
    assert state["count"] == 2
    _, _, state = decide(scored(at(16, 23, 59), ("i7", "apparel", 0.1), event_id="late"), RULES, prefs, state)
    note, reason, _ = decide(scored(at(17, 14), ("i8", "grocery", 0.9), event_id="e3"), RULES, prefs, state)
    assert note is None, "third push on 2026-11-17 with a daily cap of 2"


@pytest.mark.parametrize("hour, quiet", [(21, False), (22, True), (23, True), (0, True), (3, True), (6, True),
                                         (7, False), (12, False)])
def test_quiet_hours_across_midnight(hour, quiet):
    prefs = {"opted_out": False, "quiet_start_hour": 22, "quiet_end_hour": 7, "daily_cap": 3}
    note, reason, _ = decide(scored(at(16, hour, 30), ("i1", "coffee", 0.9)), RULES, prefs, None)
    if quiet:
        assert (note, reason) == (None, "quiet hours")
    else:
        assert reason == "approved"


@pytest.mark.parametrize("hour, quiet", [(12, False), (13, True), (14, True), (15, False)])
def test_quiet_hours_within_a_day(hour, quiet):
    prefs = {"quiet_start_hour": 13, "quiet_end_hour": 15}
    _, reason, _ = decide(scored(at(16, hour, 5), ("i1", "coffee", 0.9)), RULES, prefs, None)
    assert (reason == "quiet hours") is quiet


@pytest.mark.parametrize("start, end", [(None, None), (float("nan"), float("nan")), (pd.NA, 7), (22, 22)])
def test_no_quiet_hours(start, end):
    prefs = {"quiet_start_hour": start, "quiet_end_hour": end}
    _, reason, _ = decide(scored(at(16, 23), ("i1", "coffee", 0.9)), RULES, prefs, None)
    assert reason == "approved"


def test_opted_out_gets_nothing():
    prefs = {"opted_out": True, "quiet_start_hour": None, "quiet_end_hour": None, "daily_cap": 5}
    note, reason, state = decide(scored(at(16, 12), ("i1", "coffee", 0.99)), RULES, prefs, None)
    assert (note, reason) == (None, "opted out")
    assert state["count"] == 0 and state["last_push"] == {}


# --- idempotence by event id ---------------------------------------------------------------------

def test_redelivered_event_gets_the_same_answer_and_never_a_second_item():
    """Before: feeding e1 again approved the next-best item of another category (e1:iA, e1:iB, ...)."""
    ev = scored(at(16, 8), ("iA", "coffee", 0.9), ("iB", "lunch", 0.8), ("iC", "grocery", 0.7), event_id="e1")
    first, reason, state = decide(ev, RULES, None, None)
    assert reason == "approved" and first["item_id"] == "iA"
    for _ in range(3):
        again, reason2, state2 = decide(ev, RULES, None, state)
        assert again == first and reason2 == reason
        assert state2 == state  # no count, gap or memory change


def test_refusal_is_remembered_too():
    ev = scored(at(16, 8), ("iA", "coffee", 0.01), event_id="e1")
    note, reason, state = decide(ev, RULES, None, None)
    assert note is None
    # a lower threshold later must not turn an old refusal into a push on replay
    note2, reason2, _ = decide(ev, RuleBook(pd.DataFrame([("global", "*", 0.0, 0.0)],
                                                         columns=["scope", "scope_key", "threshold", "min_gap_s"])),
                               None, state)
    assert note2 is None and reason2 == reason


def test_same_state_same_answer():
    """A replay after a crash that lost the state decides from the same older state: same push."""
    ev = scored(at(16, 8), ("iA", "coffee", 0.9), ("iB", "lunch", 0.8), event_id="e1")
    _, _, s0 = decide(scored(at(16, 7, 30), ("iZ", "coffee", 0.9), event_id="e0"), RULES, None, None)
    a = decide(ev, RULES, None, s0)
    b = decide(ev, RULES, None, s0)
    assert a == b and a[0]["item_id"] == "iB"


def test_memory_is_bounded():
    from pipelines.online import tuner as T

    state = None
    for k in range(T.MEMORY_MAX + 50):
        _, _, state = decide(scored(at(16, 0) + k, ("iA", "coffee", 0.01), event_id=f"e{k}"), RULES, None, state)
    assert len(state["decided"]) == T.MEMORY_MAX and f"e{T.MEMORY_MAX + 49}" in state["decided"]
    _, _, state = decide(scored(at(19, 0), ("iA", "coffee", 0.01), event_id="late"), RULES, None, state)
    assert set(state["decided"]) == {"late"}  # everything older than MEMORY_S is forgotten


# --- the person's own time zone -----------------------------------------------------------------

NIGHTS = {"opted_out": False, "quiet_start_hour": 22, "quiet_end_hour": 7, "daily_cap": 3}


def utc(y, mo, d, h, mi=0) -> float:
    return datetime(y, mo, d, h, mi, tzinfo=timezone.utc).timestamp()


def reason_at(ts: float, tz: str, prefs=NIGHTS) -> str:
    return decide(scored(ts, ("i1", "coffee", 0.9)), RULES, prefs, None, tz=tz)[1]


def test_same_instant_is_night_in_tokyo_and_morning_in_new_york():
    ts = utc(2026, 11, 16, 13, 30)  # 22:30 in Tokyo (UTC+9), 08:30 in New York (UTC-5)
    assert reason_at(ts, "Asia/Tokyo") == "quiet hours"
    assert reason_at(ts, "America/New_York") == "approved"
    assert reason_at(ts, None) == "approved"  # no zone: UTC, 13:30


@pytest.mark.parametrize("utc_hour, quiet", [(12, False), (13, True), (15, True), (21, True), (22, False)])
def test_quiet_window_across_midnight_in_local_time(utc_hour, quiet):
    # Tokyo 21:00, 22:00, 00:00 (next day), 06:00, 07:00
    assert (reason_at(utc(2026, 11, 16, utc_hour, 0), "Asia/Tokyo") == "quiet hours") is quiet


@pytest.mark.parametrize("when, quiet", [
    # spring forward in New York, 2026-03-08 02:00 EST -> 03:00 EDT: UTC-5 before, UTC-4 after
    (utc(2026, 3, 8, 6, 30), True),  # 01:30 EST
    (utc(2026, 3, 8, 10, 30), True),  # 06:30 EDT
    (utc(2026, 3, 8, 11, 30), False),  # 07:30 EDT (a fixed UTC-5 would say 06:30: quiet)
    (utc(2026, 3, 7, 11, 30), True),  # the day before: 06:30 EST
    # fall back, 2026-11-01 02:00 EDT -> 01:00 EST
    (utc(2026, 11, 1, 11, 30), True),  # 06:30 EST (a fixed UTC-4 would say 07:30: not quiet)
    (utc(2026, 10, 31, 11, 30), False),  # the day before: 07:30 EDT
])
def test_quiet_hours_follow_daylight_saving_time(when, quiet):
    assert (reason_at(when, "America/New_York") == "quiet hours") is quiet


def test_daily_cap_counts_the_persons_local_day():
    prefs = {"daily_cap": 1}
    # Tokyo: 23:00 on the 16th, then 00:30 on the 17th; the same UTC day, two local days
    _, r1, st = decide(scored(utc(2026, 11, 16, 14), ("i1", "coffee", 0.9), event_id="t1"), RULES, prefs, None,
                       tz="Asia/Tokyo")
    _, r2, st = decide(scored(utc(2026, 11, 16, 15, 30), ("i2", "lunch", 0.9), event_id="t2"), RULES, prefs, st,
                       tz="Asia/Tokyo")
    assert (r1, r2) == ("approved", "approved") and st["day"] == "2026-11-17"
    # New York: 15:00 and 21:00 on the 16th; two UTC days, one local day
    _, r1, st = decide(scored(utc(2026, 11, 16, 20), ("i1", "coffee", 0.9), event_id="n1"), RULES, prefs, None,
                       tz="America/New_York")
    _, r2, st = decide(scored(utc(2026, 11, 17, 2), ("i2", "lunch", 0.9), event_id="n2"), RULES, prefs, st,
                       tz="America/New_York")
    assert (r1, r2) == ("approved", "daily cap 1 reached") and st["day"] == "2026-11-16"


def test_unknown_time_zone_is_a_clear_refusal(snapshot_stage):
    stage, snap = snapshot_stage(tz=["Mars/Olympus", None])
    note, dec, state = stage.decision(scored(at(16, 12), ("i0", "coffee", 0.9)), snap, None)
    assert note is None and "unknown time zone 'Mars/Olympus'" in dec["reason"] and state == {}


# --- the recorded decision (TunerStage.decision) -------------------------------------------------

@pytest.fixture
def snapshot_stage(tmp_path, snapshot_tables, snapshot_meta, propensity_model_str):
    """stage, snapshot with u1 / u2 given time zones and classes (u1: quiet 22-7, cap 3; u2: opted out)."""
    from pipelines.online.snapshot import load_snapshot, write_snapshot

    def make(tz=("Asia/Tokyo", "America/New_York"), person_class=("loyal", "new"), rules=None, follower=None):
        tables = dict(snapshot_tables)
        tables["users"] = tables["users"].assign(tz=list(tz), person_class=list(person_class))
        if rules is not None:
            tables["rules"] = pd.DataFrame(rules, columns=["scope", "scope_key", "threshold", "min_gap_s"])
        mid = f"m{len(list(tmp_path.iterdir()))}"
        write_snapshot(mid, tables, propensity_model_str, snapshot_meta, root=tmp_path)
        return TunerStage(rules=follower), load_snapshot(mid, root=tmp_path)

    return make


def test_decision_records_reason_rule_and_version(snapshot_stage):
    stage, snap = snapshot_stage(rules=[("global", "*", 0.5, 3600.0), ("person_class", "loyal", 0.7, 7200.0)])
    ev = scored(utc(2026, 11, 16, 3), ("i0", "coffee", 0.75), ("i1", "lunch", 0.6))  # 12:00 in Tokyo
    note, dec, state = stage.decision(ev, snap, None)
    assert C.problem(C.TunerDecision, dec) is None and list(dec) == C.fields(C.TunerDecision)
    assert dec == {"event_id": "ev1", "user_id": "u1", "ts": ev["ts"], "approved": True, "item_id": "i0",
                   "reason": "approved", "rule_scope": "person_class", "threshold": 0.7, "rules_version": None,
                   "model_id": "m1"}
    assert note["rule_scope"] == "person_class" and state["count"] == 1
    # a refusal names the rule that refused
    ev2 = scored(utc(2026, 11, 16, 4), ("i0", "coffee", 0.65), event_id="ev2")
    _, dec2, _ = stage.decision(ev2, snap, state)
    assert (dec2["approved"], dec2["reason"], dec2["rule_scope"], dec2["threshold"]) == \
        (False, "best score 0.650 under threshold", "person_class", 0.7)


def test_redelivered_moment_same_decision_state_unchanged(snapshot_stage):
    stage, snap = snapshot_stage()
    ev = scored(utc(2026, 11, 16, 3), ("i0", "coffee", 0.9), ("i1", "lunch", 0.8))
    note, dec, state = stage.decision(ev, snap, None)
    frozen = copy.deepcopy(state)
    for _ in range(2):
        n2, d2, s2 = stage.decision(ev, snap, state)
        assert (n2, d2, s2) == (note, dec, frozen)
    assert stage.decide(ev, snap, state) == (note, dec["reason"], frozen)


def test_opted_out_and_quiet_hours_decisions_have_no_rule(snapshot_stage):
    stage, snap = snapshot_stage()
    _, dec, _ = stage.decision(scored(at(16, 12), ("i0", "coffee", 0.99), user_id="u2"), snap, None)
    assert (dec["approved"], dec["reason"], dec["rule_scope"]) == (False, "opted out", None)
    _, dec, _ = stage.decision(scored(utc(2026, 11, 16, 14), ("i0", "coffee", 0.99)), snap, None)  # 23:00 Tokyo
    assert (dec["reason"], dec["rule_scope"]) == ("quiet hours", None)


def test_similar_item_gap_comes_from_the_rule_that_applies(snapshot_stage):
    stage, snap = snapshot_stage(rules=[("global", "*", 0.5, 600.0), ("user_item", "u1|i9", 0.5, 7200.0)])
    t0 = utc(2026, 11, 16, 2)
    _, d, st = stage.decision(scored(t0, ("i0", "coffee", 0.9), event_id="a"), snap, None)
    _, d1, _ = stage.decision(scored(t0 + 1800, ("i1", "coffee", 0.9), event_id="b"), snap, st)
    _, d2, _ = stage.decision(scored(t0 + 1800, ("i9", "coffee", 0.9), event_id="c"), snap, st)
    assert d["approved"] and d1["approved"]  # global gap 10 min passed
    assert (d2["approved"], d2["reason"], d2["rule_scope"]) == (False, "similar item (coffee) pushed 1800s ago",
                                                                "user_item")


def test_stale_moment_is_refused_and_remembered(snapshot_stage):
    stage, snap = snapshot_stage()
    ev = scored(utc(2026, 11, 16, 3), ("i0", "coffee", 0.9))
    then = {"event_id": "ev1", "ts": ev["ts"], "x_m": 0.0, "y_m": 0.0, "speed_mps": 1.2, "activity": 0.8}
    now = {**then, "event_id": "ev9", "ts": ev["ts"] + 90, "x_m": 240.0}
    note, dec, state = stage.decision(ev, snap, None, scored_state=then, latest_state=now)
    assert note is None and dec["reason"] == "stale: moved 240 m since the scored moment"
    assert dec["rule_scope"] == "global" and state["count"] == 0 and state["last_push"] == {}
    # redelivered without the latest state: still the same refusal, never a late push
    assert stage.decision(ev, snap, state)[:2] == (None, dec)
    # the same moment with a person who stayed put is pushed
    _, fresh, _ = stage.decision(ev, snap, None, scored_state=then, latest_state={**now, "x_m": 20.0})
    assert fresh["approved"]


def test_a_moment_the_tuner_cannot_take_is_refused_with_the_reason(snapshot_stage):
    stage, snap = snapshot_stage()
    bad = {"event_id": "e1", "user_id": "u1", "ts": at(16, 12), "model_id": "m1"}  # no scores
    note, dec, state = stage.decision(bad, snap, {"count": 1})
    assert note is None and dec["reason"].startswith("tuner error: KeyError") and state == {"count": 1}
    assert C.problem(C.TunerDecision, dec) is None


def test_old_memory_entries_still_answer():
    """States in the Faust table from before the decision record keep [ts, note, reason]."""
    ev = scored(at(16, 8), ("iA", "coffee", 0.9), event_id="e1")
    note, _, state = decide(ev, RULES, None, None)
    old = {**state, "decided": {"e1": state["decided"]["e1"][:3]}}
    n2, dec, s2 = decide_moment(ev, RULES, None, old)
    assert n2 == note and s2 == old
    assert (dec["approved"], dec["rule_scope"], dec["threshold"], dec["rules_version"]) == (True, "global", 0.5, None)


# --- the population's time zones and classes ----------------------------------------------------

def test_population_time_zones_and_classes_are_valid_and_seeded(tiny_params):
    from zoneinfo import ZoneInfo

    from pipelines.synthetic import population as P

    a, b = P.generate(tiny_params), P.generate(tiny_params)
    assert a.users.tz.tolist() == b.users.tz.tolist() and a.users.person_class.tolist() == b.users.person_class.tolist()
    assert set(a.users.tz) <= set(P.TIME_ZONES) and set(a.users.person_class) <= set(P.PERSON_CLASSES)
    for name in P.TIME_ZONES:
        ZoneInfo(name)
    big = P.generate(P.PopulationParams(n_users=300, n_items=16, history_contexts_per_user=1,
                                        stream_contexts_per_user=1))
    assert set(big.users.tz) == set(P.TIME_ZONES) and set(big.users.person_class) == set(P.PERSON_CLASSES)


def test_population_time_zones_draw_from_their_own_generator(tiny_params, monkeypatch):
    """Every other draw stays as it was whatever the zones are (they come from a separate generator)."""
    from pipelines.synthetic import population as P

    a = P.generate(tiny_params)
    monkeypatch.setattr(P, "TIME_ZONES", {"UTC": 0.5, "Asia/Kolkata": 0.25, "Europe/Paris": 0.25})
    monkeypatch.setattr(P, "PERSON_CLASSES", {"x": 1.0})
    b = P.generate(tiny_params)
    pd.testing.assert_frame_equal(a.users.drop(columns=["tz", "person_class"]),
                                  b.users.drop(columns=["tz", "person_class"]))
    for t in ("devices", "items", "stores", "interactions", "contexts"):
        pd.testing.assert_frame_equal(getattr(a, t), getattr(b, t))
    assert set(b.users.person_class) == {"x"}
