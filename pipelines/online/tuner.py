"""Notification Frequency Tuner: decides whether a scored event becomes a push.

A push goes out only when the OSR score clears the threshold of the most specific
rule (user-item > user > item > class > global), the last push of a similar item
(same category) to the person is long enough ago, and the person's preferences
(opt-out, quiet hours, daily cap) allow it. At most one push per event: the
best-scoring candidate that passes. State is a small dict per person, kept by the
stream in a Faust table and passed in and out here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

import pandas as pd

from pipelines.contracts import Notification, ScoredEvent

SCOPE_ORDER = ("user_item", "user", "item", "class", "global")

#: Product defaults, loaded into tuner.rules with a population. OSR scores are min-max scaled
#: over the snapshot, so a few extreme moments set the top of the scale: on the default
#: population the best candidate of a moment scores 0.05-0.21 at its 90th percentile
#: (by true state), and 0.15 lets through roughly the best tenth of moments.
DEFAULT_RULES = pd.DataFrame(
    [
        ("global", "*", 0.15, 4 * 3600.0),
        ("class", "electronics", 0.25, 24 * 3600.0),  # expensive items: higher bar, once a day at most
    ],
    columns=["scope", "scope_key", "threshold", "min_gap_s"],
)
DEFAULT_DAILY_CAP = 3


@dataclass(frozen=True)
class Rule:
    scope: str
    threshold: float
    min_gap_s: float


class RuleBook:
    """Tuner rules indexed by (scope, key) for constant-time lookups."""

    def __init__(self, rules: pd.DataFrame):
        if not ((rules.scope == "global") & (rules.scope_key == "*")).any():
            raise ValueError("tuner rules need a global rule (scope='global', scope_key='*')")
        self._by = {(r.scope, r.scope_key): Rule(r.scope, float(r.threshold), float(r.min_gap_s))
                    for r in rules.itertuples(index=False)}

    def resolve(self, user_id: str, item_id: str, category: str) -> Rule:
        for scope, key in (("user_item", f"{user_id}|{item_id}"), ("user", user_id), ("item", item_id),
                           ("class", category), ("global", "*")):
            rule = self._by.get((scope, key))
            if rule is not None:
                return rule
        raise AssertionError("unreachable: a global rule always exists")


def _in_quiet_hours(hour: int, start, end) -> bool:
    if start is None or end is None or pd.isna(start) or pd.isna(end) or start == end:
        return False
    start, end = int(start), int(end)
    return start <= hour < end if start < end else (hour >= start or hour < end)


#: How long the tuner remembers what it decided for a moment (by event time), and at most how many
#: moments per person: longer than any replay after a crash or a redelivery can reach back.
MEMORY_S = 2 * 86400.0
MEMORY_MAX = 500


def decide(scored: ScoredEvent, rules: RuleBook, prefs: dict | None,
           state: dict | None) -> tuple[Notification | None, str, dict]:
    """(notification or None, reason, new state) for one scored event.

    Idempotent by event id: a moment decided before (a redelivery, or a replay after a crash that
    kept the state) gets the same answer again and leaves the state as it was, so it can never
    approve a second item. Decided from the same state, the same moment gets the same answer, so a
    replay after a crash that lost the state is deterministic too (the push gateway drops the copy).

    state: {"day": "YYYY-MM-DD", "count": int, "last_push": {category: ts},
            "decided": {event_id: [ts, notification or None, reason]}}
    """
    state = {"day": None, "count": 0, "last_push": {}, "decided": {}, **(state or {})}
    eid = scored["event_id"]
    before = state["decided"].get(eid)
    if before is not None:
        return before[1], before[2], state
    note, reason, new_state = _decide_new(scored, rules, prefs or {}, state)
    new_state["decided"] = _remember(state["decided"], eid, float(scored["ts"]), note, reason)
    return note, reason, new_state


def _remember(decided: dict, event_id: str, ts: float, note, reason: str) -> dict:
    """Add one decision; forget by age and count. A person's moments arrive roughly in time order, so
    the first entry is (about) the oldest: the full prune runs only when it is due, not per decision."""
    out = {**decided, event_id: [ts, note, reason]}
    first_ts = next(iter(out.values()))[0]
    if len(out) <= MEMORY_MAX and first_ts >= ts - MEMORY_S:
        return out
    newest = max(ts, max(v[0] for v in out.values()))
    keep = sorted((v[0], k) for k, v in out.items() if v[0] >= newest - MEMORY_S)[-MEMORY_MAX:]
    return {k: out[k] for _ts, k in keep}


def _decide_new(scored: ScoredEvent, rules: RuleBook, prefs: dict, state: dict
                ) -> tuple[Notification | None, str, dict]:
    ts = float(scored["ts"])
    when = datetime.fromtimestamp(ts, tz=timezone.utc)
    day = when.date().isoformat()
    if state["day"] is not None and day < state["day"]:
        # a moment from a day already closed arrives late: pushing about it now is pointless,
        # and it must not reset today's count
        return None, "late event from an earlier day", state
    if state["day"] != day:
        state = {**state, "day": day, "count": 0}
    if prefs.get("opted_out"):
        return None, "opted out", state
    if _in_quiet_hours(when.hour, prefs.get("quiet_start_hour"), prefs.get("quiet_end_hour")):
        return None, "quiet hours", state
    cap = prefs.get("daily_cap")
    cap = DEFAULT_DAILY_CAP if cap is None or pd.isna(cap) else int(cap)
    if state["count"] >= cap:
        return None, f"daily cap {cap} reached", state
    reason = "no candidate"
    for s in sorted(scored["scores"], key=lambda s: -s["osr_score"]):
        rule = rules.resolve(scored["user_id"], s["item_id"], s["category"])
        if s["osr_score"] < rule.threshold:
            reason = f"best score {s['osr_score']:.3f} under threshold" if reason == "no candidate" else reason
            continue
        last = state["last_push"].get(s["category"])
        if last is not None and ts - float(last) < rule.min_gap_s:
            reason = f"similar item ({s['category']}) pushed {ts - float(last):.0f}s ago"
            continue
        note: Notification = {
            "notification_id": f"{scored['event_id']}:{s['item_id']}",
            "event_id": scored["event_id"], "user_id": scored["user_id"], "item_id": s["item_id"],
            "category": s["category"], "ts": ts, "osr_score": s["osr_score"], "threshold": rule.threshold,
            "rule_scope": rule.scope, "model_id": scored["model_id"],
        }
        new_state = {**state, "count": state["count"] + 1,
                     "last_push": {**state["last_push"], s["category"]: ts}}
        return note, "approved", new_state
    return None, reason, state


class TunerStage:
    """The tuner as the stream runs it: rule books built once per snapshot, one decision per scored event."""

    def __init__(self):
        self._rulebooks: dict[str, RuleBook] = {}

    def rules_for(self, snapshot) -> RuleBook:
        rules = self._rulebooks.get(snapshot.model_id)
        if rules is None:
            rules = self._rulebooks[snapshot.model_id] = RuleBook(snapshot.rules)
        return rules

    def decide(self, scored: ScoredEvent, snapshot, state: dict | None) -> tuple[Notification | None, str, dict]:
        """decide() that never raises: a scored event it cannot take is refused with the reason
        (the state is left as it was), so the tuner agent never stops."""
        try:
            uid = scored["user_id"]
            return decide(scored, self.rules_for(snapshot), snapshot.preferences.get(uid), state)
        except Exception as exc:  # noqa: BLE001
            return None, f"tuner error: {exc.__class__.__name__}: {exc}", dict(state or {})
