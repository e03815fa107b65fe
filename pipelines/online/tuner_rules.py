"""Tuner rules people manage in the store, versioned, and followed by running workers.

Why in the store and not only in the snapshot: a rule change ("stop pushing electronics to u00042",
"raise the bar for new people") must reach the stream in seconds, not at the next nightly. Every
change goes through `set_rule` / `delete_rule` / `set_setting` / `delete_setting` (the `osr tuner`
commands), which write tuner.rules or tuner.settings and a row per change in tuner.rule_changes,
all in one transaction under the store's writer lock; the rules' version is max(version) there.

A worker holds a `RulesFollower`: `refresh()` (blocking; the stream calls it from an executor every
OSR_TUNER_RULES_POLL_S seconds) reads the version through its own read-only connection, which never
takes the writer lock, and re-reads the rules only when the version moved; `current()` (what the
tuner calls per event) returns the last rules it read without touching the store. While the store
cannot be read the follower keeps what it last read, and a worker that never read any falls back
to the snapshot's rules (`TunerStage`); either way it logs once per outage, not per poll.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime, timezone

import pandas as pd

from pipelines import config
from pipelines.online import staleness
from pipelines.online.tuner import RULE_COLUMNS, SCOPE_NAMES, SCOPE_ORDER, RuleBook, zone
from pipelines.store.db import connect, replace_rows, scalar, transaction, upsert_ignore
from pipelines.store.kept_connection import KeptConnection

log = logging.getLogger(__name__)

#: The pseudo-scope of the global settings (tuner.settings) in `osr tuner` and in the change log.
SETTING = "setting"
#: Every name a scope is known by -> the stored scope.
SCOPE_ALIASES = {**{s: s for s in SCOPE_ORDER}, **{n: s for s, n in SCOPE_NAMES.items()},
                 "person_item": "user_item", "category": "class", "person_class": "person_class",
                 "person-class": "person_class", "segment": "person_class", SETTING: SETTING}
CHANGE_COLUMNS = ["version", "changed_at", "action", "scope", "scope_key", "threshold", "min_gap_s", "value",
                  "changed_by"]


def canonical_scope(name: str) -> str:
    try:
        return SCOPE_ALIASES[name.strip().lower()]
    except KeyError:
        raise ValueError(f"unknown scope {name!r}; use one of {', '.join(SCOPE_NAMES.values())} "
                         f"(or {', '.join(SCOPE_ORDER)}), or {SETTING!r}") from None


# --- reading ------------------------------------------------------------------------------------

def rules_version(con) -> int:
    """The rules' version: the number of the last change (0: never changed through the log)."""
    return int(scalar(con, "SELECT coalesce(max(version), 0) FROM tuner.rule_changes"))


def read_rules(con) -> pd.DataFrame:
    """tuner.rules, most specific scope first."""
    df = con.execute(f"SELECT {', '.join(RULE_COLUMNS)} FROM tuner.rules").df()
    order = {s: k for k, s in enumerate(SCOPE_ORDER)}
    return (df.assign(_o=df.scope.map(order)).sort_values(["_o", "scope_key"]).drop(columns="_o")
            .reset_index(drop=True))


def read_settings(con) -> dict[str, float]:
    return {n: float(v) for n, v in con.execute("SELECT name, value FROM tuner.settings ORDER BY name").fetchall()}


def rules_at(con, version: int) -> pd.DataFrame | None:
    """The rules as they were at `version`, replayed from the change log; None when the log does not
    reach back that far (rules written around it) or the replay has no global rule."""
    rows = con.execute("SELECT action, scope, scope_key, threshold, min_gap_s FROM tuner.rule_changes "
                       "WHERE version <= ? AND scope <> ? ORDER BY version", [int(version), SETTING]).fetchall()
    book: dict[tuple[str, str], tuple[float, float]] = {}
    for action, scope, key, threshold, gap in rows:
        if action == "set":
            book[(scope, key)] = (threshold, gap)
        else:
            book.pop((scope, key), None)
    if ("global", "*") not in book:
        return None
    return pd.DataFrame([(s, k, t, g) for (s, k), (t, g) in book.items()], columns=RULE_COLUMNS)


# --- writing ------------------------------------------------------------------------------------

def log_changes(con, action: str, rows: pd.DataFrame, by: str | None = None) -> int:
    """Record `rows` (scope, scope_key[, threshold, min_gap_s, value]) as one new version, inside the
    caller's transaction (which holds the writer lock, so the number is not taken twice); returns it."""
    version = rules_version(con) + 1
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    log_df = pd.DataFrame({c: rows[c] if c in rows else None for c in CHANGE_COLUMNS[3:8]})
    log_df.insert(0, "action", action)
    log_df.insert(0, "changed_at", now)
    log_df.insert(0, "version", version)
    log_df["changed_by"] = by
    for c in ("threshold", "min_gap_s", "value"):
        log_df[c] = pd.to_numeric(log_df[c], errors="coerce").astype("float64")
    upsert_ignore(con, "tuner.rule_changes", log_df[CHANGE_COLUMNS])
    return version


def _check_key(con, scope: str, key: str) -> None:
    """A clear error for a rule that could never apply: a malformed key, or one naming nobody."""
    if scope == "global":
        if key != "*":
            raise ValueError("the global rule's key is '*'")
        return
    if scope == "user_item":
        parts = key.split("|")
        if len(parts) != 2 or not all(parts):
            raise ValueError(f"a person-item rule's key is USER_ID|ITEM_ID, not {key!r}")
        _check_key(con, "user", parts[0])
        _check_key(con, "item", parts[1])
        return
    sql = {"user": "SELECT count(*) FROM ref.users WHERE user_id = ?",
           "item": "SELECT count(*) FROM ref.items WHERE item_id = ?",
           "class": "SELECT count(*) FROM ref.items WHERE category = ?",
           "person_class": "SELECT count(*) FROM ref.users WHERE person_class = ?"}[scope]
    if not scalar(con, sql, [key]):
        what = {"user": "person", "item": "item", "class": "category", "person_class": "person class"}[scope]
        raise ValueError(f"no {what} {key!r} in the store (ref.users / ref.items): a rule for it would never "
                         f"apply; check the spelling, or pass --force to set it anyway")


def set_rule(con, scope: str, key: str, threshold: float | None = None, min_gap_s: float | None = None, *,
             by: str | None = None, force: bool = False) -> tuple[int, dict]:
    """Create or change one rule; returns (new version, the rule as stored). A value not given keeps
    the rule's current one, or, for a new rule, the global rule's."""
    scope = canonical_scope(scope)
    if scope == SETTING:
        raise ValueError("use set_setting for settings")
    if not force:
        _check_key(con, scope, key)
    elif scope == "global" and key != "*":
        raise ValueError("the global rule's key is '*'")
    for name, v, ok in (("threshold", threshold, lambda x: 0.0 <= x <= 1.0), ("min gap", min_gap_s,
                                                                              lambda x: x >= 0.0)):
        if v is not None and not ok(float(v)):
            raise ValueError(f"{name} {v} out of range (threshold in [0, 1], min gap >= 0 s)")

    def work(c):
        cur = c.execute("SELECT scope, scope_key, threshold, min_gap_s FROM tuner.rules WHERE (scope = ? AND "
                        "scope_key = ?) OR (scope = 'global' AND scope_key = '*') ORDER BY scope = 'global'",
                        [scope, key]).fetchall()
        base = cur[0] if cur else None
        if base is None and (threshold is None or min_gap_s is None):
            raise ValueError("no global rule to take the missing values from: give --threshold and --min-gap")
        rule = {"scope": scope, "scope_key": key,
                "threshold": float(threshold if threshold is not None else base[2]),
                "min_gap_s": float(min_gap_s if min_gap_s is not None else base[3])}
        df = pd.DataFrame([rule], columns=RULE_COLUMNS)
        replace_rows(c, "tuner.rules", df)
        return log_changes(c, "set", df, by), rule

    return transaction(con, work)


def delete_rule(con, scope: str, key: str, *, by: str | None = None) -> int:
    """Remove one rule (never the global one: every moment needs a rule); returns the new version."""
    scope = canonical_scope(scope)
    if scope == "global":
        raise ValueError("the global rule cannot be deleted (every moment needs a rule); change it with set")

    def work(c):
        if not scalar(c, "SELECT count(*) FROM tuner.rules WHERE scope = ? AND scope_key = ?", [scope, key]):
            raise ValueError(f"no {SCOPE_NAMES[scope]} rule {key!r} (osr tuner list shows the rules)")
        c.execute("DELETE FROM tuner.rules WHERE scope = ? AND scope_key = ?", [scope, key])
        return log_changes(c, "delete", pd.DataFrame({"scope": [scope], "scope_key": [key]}), by)

    return transaction(con, work)


def _check_setting(name: str) -> None:
    if name not in staleness.SETTINGS:
        raise ValueError(f"unknown tuner setting {name!r}; known: {', '.join(sorted(staleness.SETTINGS))}")


def set_setting(con, name: str, value: float, *, by: str | None = None) -> int:
    _check_setting(name)

    def work(c):
        replace_rows(c, "tuner.settings", pd.DataFrame({"name": [name], "value": [float(value)]}))
        return log_changes(c, "set", pd.DataFrame({"scope": [SETTING], "scope_key": [name],
                                                   "value": [float(value)]}), by)

    return transaction(con, work)


def delete_setting(con, name: str, *, by: str | None = None) -> int:
    """Back to the documented default."""
    _check_setting(name)

    def work(c):
        if not scalar(c, "SELECT count(*) FROM tuner.settings WHERE name = ?", [name]):
            raise ValueError(f"setting {name!r} is not set (its default {staleness.SETTINGS[name]} applies)")
        c.execute("DELETE FROM tuner.settings WHERE name = ?", [name])
        return log_changes(c, "delete", pd.DataFrame({"scope": [SETTING], "scope_key": [name]}), by)

    return transaction(con, work)


# --- explaining a decision ----------------------------------------------------------------------

def explain_event(con, event_id: str, top: int = 5) -> dict | None:
    """Everything `osr tuner explain` prints about one moment: the decision and its reason, the rule
    that applied, the person's preferences, and the top candidates against the thresholds of the
    rules the decision saw (replayed from the change log at its rules version, else today's).
    None when the store knows neither a decision nor scores for `event_id`."""
    dec = con.execute("SELECT * FROM stream.tuner_decisions WHERE event_id = ?", [event_id]).df()
    scores = con.execute("SELECT item_id, category, osr_score, preference, propensity, user_id, ts, model_id "
                         "FROM stream.osr_scores WHERE event_id = ? ORDER BY osr_score DESC, item_id",
                         [event_id]).df()
    if dec.empty and scores.empty:
        return None
    decision = dec.iloc[0].to_dict() if not dec.empty else None
    user_id = decision["user_id"] if decision else scores.user_id.iloc[0]
    ts = decision["ts"] if decision else scores.ts.iloc[0]
    person = con.execute("SELECT tz, person_class FROM ref.users WHERE user_id = ?", [user_id]).fetchall()
    tz, pclass = person[0] if person else (None, None)
    prefs = con.execute("SELECT * FROM tuner.preferences WHERE user_id = ?", [user_id]).df()
    version = decision.get("rules_version") if decision else None
    rules, rules_from = None, f"the current rules (version {rules_version(con)})"
    if version is not None and not pd.isna(version):
        rules = rules_at(con, int(version))
        if rules is not None:
            rules_from = f"the rules at version {int(version)}, as the decision saw them"
    if rules is None:
        rules = read_rules(con)
    book = RuleBook(rules) if ((rules.scope == "global") & (rules.scope_key == "*")).any() else None
    cands = []
    for s in scores.head(top).itertuples(index=False):
        rule = book.resolve(user_id, s.item_id, s.category, pclass) if book else None
        cands.append({"item_id": s.item_id, "category": s.category, "osr_score": float(s.osr_score),
                      "rule_scope": rule.scope if rule else None, "rule_key": rule.key if rule else None,
                      "threshold": rule.threshold if rule else None, "min_gap_s": rule.min_gap_s if rule else None,
                      "clears": bool(rule and s.osr_score >= rule.threshold)})
    when = pd.Timestamp(ts).tz_localize("UTC") if pd.Timestamp(ts).tzinfo is None else pd.Timestamp(ts)
    local = when.tz_convert(zone(tz)) if tz else when
    return {"event_id": event_id, "user_id": user_id, "decision": decision, "tz": tz or "UTC",
            "person_class": pclass, "utc": when.isoformat(), "local": local.isoformat(),
            "preferences": prefs.iloc[0].to_dict() if not prefs.empty else None,
            "n_candidates": len(scores), "candidates": cands, "rules_from": rules_from}


# --- following the rules from a worker ----------------------------------------------------------

@dataclass(frozen=True)
class RulesView:
    """One consistent read of the rules: what `RulesFollower.current()` hands the tuner."""

    version: int
    rules: pd.DataFrame
    rulebook: RuleBook
    settings: dict[str, float]


class RulesFollower(KeptConnection):
    """The store's tuner rules for a long-running worker (see the module docstring)."""

    def __init__(self, store=None, poll_s: float | None = None):
        self.store = store
        self.poll_s = float(config.get("OSR_TUNER_RULES_POLL_S")) if poll_s is None else float(poll_s)
        self._view: RulesView | None = None
        self._con = None
        self._lock = threading.Lock()
        self._failing: str | None = None

    def current(self) -> RulesView | None:
        """The rules last read (None until a read succeeded). Never touches the store."""
        return self._view

    def refresh(self) -> RulesView | None:
        """Read the rules' version and, when it moved, the rules and settings, in one read-only
        transaction (one consistent snapshot of the lake). Blocks on the store; never raises."""
        with self._lock:
            ok, view = self._read_kept(self._read, "tuner rules", lambda: f"version {self._view.version}"
                                       if self._view else "the snapshot's rules", log)
            if not ok:
                return self._view
            if self._view is None or view.version != self._view.version:
                log.info("tuner rules: version %d (%d rules)", view.version, len(view.rules))
            self._view = view
            return view

    def _read(self) -> RulesView:
        con = self._connection()
        con.execute("BEGIN")
        try:
            version = rules_version(con)
            same = self._view is not None and version == self._view.version
            rules, settings = (None, None) if same else (read_rules(con), read_settings(con))
        except BaseException:
            try:
                con.execute("ROLLBACK")
            except Exception:  # noqa: BLE001 - the read's own error is the one to report
                pass
            raise
        con.execute("COMMIT")
        return self._view if same else RulesView(version, rules, RuleBook(rules, version), settings)
