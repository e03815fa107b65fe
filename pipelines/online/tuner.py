"""Notification Frequency Tuner: decides whether a scored event becomes a push, and records why.

A push goes out only when the OSR score clears the threshold of the most specific rule, the last
push of a similar item (same category) to the person is at least the rule's `min_gap_s` ago, the
person's preferences allow it (opt-out; quiet hours and the daily cap, both in the person's own
time zone, DST-correct), and the person's state has not moved on since the scored moment
(`staleness`). At most one push per event: the best-scoring candidate that passes. State is a
small dict per person, kept by the stream in a Faust table and passed in and out here.

Rule precedence, most specific first (`SCOPE_ORDER`): person-item (`user_item`, key
"user_id|item_id") > person (`user`) > item (`item`) > person class (`person_class`, the person's
segment) > category (`class`, the item's category) > global (`global`, key "*"). Why person class
above category: a segment rule says how much a kind of person wants pushes at all, a category
rule how pushy a kind of item may be; the person's own wishes beat the product's defaults.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pandas as pd

from pipelines.contracts import Notification, ScoredEvent, TunerDecision
from pipelines.online.staleness import DEFAULT_LIMITS, limits_from, stale_reason

SCOPE_ORDER = ("user_item", "user", "item", "person_class", "class", "global")
#: What people call each scope (`osr tuner` accepts either name).
SCOPE_NAMES = {"user_item": "person-item", "user": "person", "item": "item", "person_class": "person-class",
               "class": "category", "global": "global"}
RULE_COLUMNS = ["scope", "scope_key", "threshold", "min_gap_s"]

#: Product defaults, loaded into tuner.rules with a population. OSR scores are min-max scaled
#: over the snapshot, so a few extreme moments set the top of the scale: on the default
#: population the best candidate of a moment scores 0.05-0.21 at its 90th percentile
#: (by true state), and 0.15 lets through roughly the best tenth of moments.
DEFAULT_RULES = pd.DataFrame(
    [
        ("global", "*", 0.15, 4 * 3600.0),
        ("class", "electronics", 0.25, 24 * 3600.0),  # expensive items: higher bar, once a day at most
    ],
    columns=RULE_COLUMNS,
)
DEFAULT_DAILY_CAP = 3


@dataclass(frozen=True)
class Rule:
    scope: str
    threshold: float
    min_gap_s: float
    key: str = "*"


class RuleBook:
    """Tuner rules indexed by (scope, key) for constant-time lookups; `version` is the store's rules
    version they came from (None: from a snapshot)."""

    def __init__(self, rules: pd.DataFrame, version: int | None = None):
        if not ((rules.scope == "global") & (rules.scope_key == "*")).any():
            raise ValueError("tuner rules need a global rule (scope='global', scope_key='*')")
        unknown = sorted(set(rules.scope) - set(SCOPE_ORDER))
        if unknown:
            raise ValueError(f"unknown tuner rule scope(s) {unknown}; known: {list(SCOPE_ORDER)}")
        self.version = version
        self._by = {(r.scope, r.scope_key): Rule(r.scope, float(r.threshold), float(r.min_gap_s), r.scope_key)
                    for r in rules.itertuples(index=False)}

    def resolve(self, user_id: str, item_id: str, category: str, person_class: str | None = None) -> Rule:
        for scope, key in (("user_item", f"{user_id}|{item_id}"), ("user", user_id), ("item", item_id),
                           ("person_class", person_class), ("class", category), ("global", "*")):
            rule = self._by.get((scope, key)) if key is not None else None
            if rule is not None:
                return rule
        raise AssertionError("unreachable: a global rule always exists")


def _missing(v) -> bool:
    return v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v))


@lru_cache(maxsize=1024)
def zone(name: str | None) -> ZoneInfo | timezone:
    """The IANA time zone `name` (None / empty: UTC); a clear error for a name zoneinfo does not know."""
    if _missing(name) or name == "" or name == "UTC":
        return timezone.utc
    try:
        return ZoneInfo(str(name))
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {str(name)[:60]!r} (an IANA name like Europe/Berlin)") from exc


def local_time(ts: float, tz: str | None) -> datetime:
    """The wall-clock time at `ts` (epoch seconds) in time zone `tz`."""
    return datetime.fromtimestamp(float(ts), tz=timezone.utc).astimezone(zone(tz))


def _in_quiet_hours(hour: int, start, end) -> bool:
    if _missing(start) or _missing(end) or start == end:
        return False
    start, end = int(start), int(end)
    return start <= hour < end if start < end else (hour >= start or hour < end)


#: How long the tuner remembers what it decided for a moment (by event time), and at most how many
#: moments per person: longer than any replay after a crash or a redelivery can reach back. A
#: moment reaches the tuner again only if the filter stage re-emits it, which it does for the moments
#: the person's last batch released (at least REMEMBER = 4; older redelivered uploads are dropped as
#: processed), so 16 covers that unless one batch released more than 16 of one person's moments (then
#: the oldest are decided again from the later state; the push gateway still pushes a moment once);
#: it was 500, which made a busy person's state ~25 kB of changelog per write and most of the memory.
MEMORY_S = 2 * 86400.0
MEMORY_MAX = 16


def decide(scored: ScoredEvent, rules: RuleBook, prefs: dict | None, state: dict | None, *,
           tz: str | None = None, person_class: str | None = None,
           stale: str | None = None) -> tuple[Notification | None, str, dict]:
    """(notification or None, reason, new state) for one scored event: `decide_moment` without the
    decision record."""
    note, dec, new_state = decide_moment(scored, rules, prefs, state, tz=tz, person_class=person_class, stale=stale)
    return note, dec["reason"], new_state


def decide_moment(scored: ScoredEvent, rules: RuleBook, prefs: dict | None, state: dict | None, *,
                  tz: str | None = None, person_class: str | None = None,
                  stale: str | None = None) -> tuple[Notification | None, TunerDecision, dict]:
    """(notification or None, the decision with its reason, new state) for one scored event.

    tz: the person's IANA time zone (quiet hours and the daily cap's day are local; None = UTC);
    person_class: the person's segment, for person-class rules; stale: why the person's state has
    moved on since the scored moment (`staleness.stale_reason`), which refuses a push that would
    otherwise go out.

    Idempotent by event id: a moment decided before (a redelivery, or a replay after a crash that
    kept the state) gets the same decision again and leaves the state as it was, so it can never
    approve a second item. Decided from the same state, the same moment gets the same answer, so a
    replay after a crash that lost the state is deterministic too (the push gateway drops the copy).

    state: {"day": "YYYY-MM-DD" (the person's local day), "count": int, "last_push": {category: ts},
            "decided": {event_id: [ts, notification or None, reason, rule_scope, threshold, rules_version]}}
    """
    state = {"day": None, "count": 0, "last_push": {}, "decided": {}, **(state or {})}
    eid = scored["event_id"]
    before = state["decided"].get(eid)
    if before is not None:
        return before[1], _recorded(scored, before), state
    note, reason, rule, new_state = _outcome(scored, rules, prefs or {}, state, tz, person_class, stale)
    entry = [float(scored["ts"]), note, reason, rule.scope if rule else None, rule.threshold if rule else None,
             rules.version]
    new_state["decided"] = _remember(state["decided"], eid, entry)
    return note, _recorded(scored, entry), new_state


def _recorded(scored: ScoredEvent, entry: list) -> TunerDecision:
    """The TunerDecision of a remembered entry (entries from before the decision record have 3 fields)."""
    note, reason = entry[1], entry[2]
    scope, threshold, version = (entry[3:6] if len(entry) >= 6 else
                                 ((note["rule_scope"], note["threshold"], None) if note else (None, None, None)))
    return {"event_id": scored["event_id"], "user_id": scored["user_id"], "ts": float(scored["ts"]),
            "approved": note is not None, "item_id": note["item_id"] if note else None, "reason": reason,
            "rule_scope": scope, "threshold": threshold, "rules_version": version, "model_id": scored["model_id"]}


def _remember(decided: dict, event_id: str, entry: list) -> dict:
    """Add one decision; forget by age and count. A person's moments arrive roughly in time order, so
    the first entry is (about) the oldest: the full prune runs only when it is due, not per decision."""
    ts = entry[0]
    out = {**decided, event_id: entry}
    first_ts = next(iter(out.values()))[0]
    if len(out) <= MEMORY_MAX and first_ts >= ts - MEMORY_S:
        return out
    newest = max(ts, max(v[0] for v in out.values()))
    keep = sorted((v[0], k) for k, v in out.items() if v[0] >= newest - MEMORY_S)[-MEMORY_MAX:]
    return {k: out[k] for _ts, k in keep}


def _decide_new(scored: ScoredEvent, rules: RuleBook, prefs: dict, state: dict, tz: str | None = None
                ) -> tuple[Notification | None, str, dict]:
    """The decision without the memory (bench/exactly_once.py times the memory against it)."""
    note, reason, _rule, new_state = _outcome(scored, rules, prefs, state, tz, None, None)
    return note, reason, new_state


def _outcome(scored: ScoredEvent, rules: RuleBook, prefs: dict, state: dict, tz, person_class, stale
             ) -> tuple[Notification | None, str, Rule | None, dict]:
    """(notification, reason, the rule that decided or None, new state) for a moment not seen before."""
    ts = float(scored["ts"])
    when = local_time(ts, tz)
    day = when.date().isoformat()
    if state["day"] is not None and day < state["day"]:
        # a moment from a day already closed arrives late: pushing about it now is pointless,
        # and it must not reset today's count
        return None, "late event from an earlier day", None, state
    if state["day"] != day:
        state = {**state, "day": day, "count": 0}
    if not _missing(prefs.get("opted_out")) and bool(prefs.get("opted_out")):
        return None, "opted out", None, state
    if _in_quiet_hours(when.hour, prefs.get("quiet_start_hour"), prefs.get("quiet_end_hour")):
        return None, "quiet hours", None, state
    cap = prefs.get("daily_cap")
    cap = DEFAULT_DAILY_CAP if _missing(cap) else int(cap)
    if state["count"] >= cap:
        return None, f"daily cap {cap} reached", None, state
    reason, decided_by = "no candidate", None
    for s in sorted(scored["scores"], key=lambda s: -s["osr_score"]):
        rule = rules.resolve(scored["user_id"], s["item_id"], s["category"], person_class)
        if s["osr_score"] < rule.threshold:
            if decided_by is None:
                reason, decided_by = f"best score {s['osr_score']:.3f} under threshold", rule
            continue
        last = state["last_push"].get(s["category"])
        if last is not None and ts - float(last) < rule.min_gap_s:
            reason, decided_by = f"similar item ({s['category']}) pushed {ts - float(last):.0f}s ago", rule
            continue
        if stale:
            return None, stale, rule, state
        note: Notification = {
            "notification_id": f"{scored['event_id']}:{s['item_id']}",
            "event_id": scored["event_id"], "user_id": scored["user_id"], "item_id": s["item_id"],
            "category": s["category"], "ts": ts, "osr_score": s["osr_score"], "threshold": rule.threshold,
            "rule_scope": rule.scope, "model_id": scored["model_id"],
        }
        new_state = {**state, "count": state["count"] + 1,
                     "last_push": {**state["last_push"], s["category"]: ts}}
        return note, "approved", rule, new_state
    return None, reason, decided_by, state


class TunerStage:
    """The tuner as the stream runs it: one decision per scored event, never raising.

    Rules come from `rules` (a `tuner_rules.RulesFollower` the worker refreshes in the background, so
    `osr tuner set` reaches it without a restart) when it holds any, else from the live snapshot
    (rule books built once per snapshot). The person's time zone and class come from the snapshot.
    The worker wiring (streams/, the lead's):

        follower = RulesFollower()
        tuner = TunerStage(rules=follower)

        @app.timer(interval=follower.poll_s)
        async def follow_tuner_rules():
            await asyncio.get_running_loop().run_in_executor(None, follower.refresh)

    `refresh()` blocks on the store (it reads the rules' version, and the rules when it changed);
    `current()`, which the tuner calls per event, never does.
    """

    def __init__(self, rules=None):
        self.follower = rules
        self._rulebooks: dict[str, RuleBook] = {}
        self._limits = (None, DEFAULT_LIMITS)  # (the rules view they came from, limits)

    def rules_for(self, snapshot) -> RuleBook:
        view = self.follower.current() if self.follower is not None else None
        if view is not None:
            return view.rulebook
        rules = self._rulebooks.get(snapshot.model_id)
        if rules is None:
            rules = self._rulebooks[snapshot.model_id] = RuleBook(snapshot.rules)
        return rules

    def staleness_limits(self):
        """The staleness limits: the documented defaults with the store's global settings applied."""
        view = self.follower.current() if self.follower is not None else None
        if view is None:
            return DEFAULT_LIMITS
        if self._limits[0] is not view:
            self._limits = (view, limits_from(view.settings))
        return self._limits[1]

    def decision(self, scored: ScoredEvent, snapshot, state: dict | None, *, scored_state: dict | None = None,
                 latest_state: dict | None = None) -> tuple[Notification | None, TunerDecision, dict]:
        """(notification or None, the decision with its reason, new state); a scored event it cannot
        take is refused with the reason (the state is left as it was), so the tuner agent never stops.

        scored_state / latest_state: the FeatureRow that was scored and the person's latest one, when
        the caller has them: a push the person's state has moved away from is refused as stale."""
        try:
            uid = scored["user_id"]
            stale = (stale_reason(scored_state, latest_state, self.staleness_limits())
                     if scored_state is not None else None)
            return decide_moment(scored, self.rules_for(snapshot), snapshot.preferences.get(uid), state,
                                 tz=snapshot.person_tz(uid), person_class=snapshot.person_class(uid), stale=stale)
        except Exception as exc:  # noqa: BLE001
            return None, _error_decision(scored, snapshot, exc), dict(state or {})

    def decide(self, scored: ScoredEvent, snapshot, state: dict | None) -> tuple[Notification | None, str, dict]:
        """`decision()` with the reason only (what the stream called before decisions were recorded)."""
        note, dec, new_state = self.decision(scored, snapshot, state)
        return note, dec["reason"], new_state


def _error_decision(scored, snapshot, exc: Exception) -> TunerDecision:
    def get(name, default=None):
        return scored.get(name, default) if isinstance(scored, dict) else default

    ts = get("ts")
    return {"event_id": str(get("event_id", "")), "user_id": str(get("user_id", "")),
            "ts": float(ts) if isinstance(ts, (int, float)) and not isinstance(ts, bool) else 0.0,
            "approved": False, "item_id": None, "reason": f"tuner error: {exc.__class__.__name__}: {exc}",
            "rule_scope": None, "threshold": None, "rules_version": None,
            "model_id": str(get("model_id") or getattr(snapshot, "model_id", ""))}
