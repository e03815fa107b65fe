"""`osr tuner list|set|delete|explain`: the Notification Frequency Tuner's rules, managed in the store.

The logic (store reads and writes, versions, the explanation) is pipelines.online.tuner_rules; this
module parses and prints. A change bumps the rules' version, which running workers pick up within
OSR_TUNER_RULES_POLL_S seconds.
"""

from __future__ import annotations

import argparse
import getpass
import json
import math
import re

from pipelines.online import staleness
from pipelines.online.tuner import SCOPE_NAMES, SCOPE_ORDER

_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([smhd]?)\s*$")
_UNIT_S = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def duration_s(text: str) -> float:
    """'90', '90s', '30m', '4h', '1d' -> seconds."""
    m = _DURATION.match(str(text))
    if not m:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (seconds, or a number with s/m/h/d)")
    return float(m.group(1)) * _UNIT_S[m.group(2)]


def _who() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001
        return "unknown"


def _gap(s) -> str:
    if s is None or (isinstance(s, float) and math.isnan(s)):
        return "-"
    s = float(s)
    for unit, n in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= n and s % n == 0:
            return f"{s / n:g}{unit}"
    return f"{s:g}s"


def _num(v, fmt: str = ".3f") -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:{fmt}}"


def cmd_list(args) -> int:
    from pipelines.online.tuner_rules import read_rules, read_settings, rules_version
    from pipelines.store.db import connect

    con = connect(read_only=True)
    try:
        version, rules, settings = rules_version(con), read_rules(con), read_settings(con)
    finally:
        con.close()
    if args.scope:
        from pipelines.online.tuner_rules import canonical_scope

        rules = rules[rules.scope == canonical_scope(args.scope)]
    if args.json:
        print(json.dumps({"version": version, "rules": rules.to_dict("records"),
                          "settings": {**staleness.SETTINGS, **settings}}))
        return 0
    print(f"tuner rules, version {version} (most specific first: "
          f"{' > '.join(SCOPE_NAMES[s] for s in SCOPE_ORDER)})")
    print(f"  {'scope':13s} {'key':24s} {'threshold':>9s} {'min gap':>8s}")
    for r in rules.itertuples(index=False):
        print(f"  {SCOPE_NAMES.get(r.scope, r.scope):13s} {r.scope_key:24s} {r.threshold:9.3f} {_gap(r.min_gap_s):>8s}")
    if rules.empty:
        print("  (none: run `osr populate`, or `osr tuner set global '*' --threshold T --min-gap G`)")
    print("settings:")
    for name, default in staleness.SETTINGS.items():
        mark = f"{settings[name]:g} (default {default:g})" if name in settings else f"{default:g} (default)"
        print(f"  {name:28s} {mark}")
    return 0


def cmd_set(args) -> int:
    from pipelines.online.tuner_rules import SETTING, canonical_scope, set_rule, set_setting
    from pipelines.store.db import connect

    scope = canonical_scope(args.scope)
    con = connect()
    try:
        if scope == SETTING:
            if args.value is None:
                raise ValueError("a setting needs --value")
            version = set_setting(con, args.key, args.value, by=_who())
            print(f"setting {args.key} = {args.value:g}; tuner rules version {version}")
            return 0
        if args.value is not None:
            raise ValueError("--value is for settings; a rule takes --threshold and --min-gap")
        if args.threshold is None and args.min_gap is None:
            raise ValueError("give --threshold and/or --min-gap")
        version, rule = set_rule(con, scope, args.key, args.threshold, args.min_gap, by=_who(), force=args.force)
    finally:
        con.close()
    print(f"{SCOPE_NAMES[scope]} rule {args.key}: threshold {rule['threshold']:.3f}, min gap "
          f"{_gap(rule['min_gap_s'])}; tuner rules version {version}")
    return 0


def cmd_delete(args) -> int:
    from pipelines.online.tuner_rules import SETTING, canonical_scope, delete_rule, delete_setting
    from pipelines.store.db import connect

    scope = canonical_scope(args.scope)
    con = connect()
    try:
        if scope == SETTING:
            version = delete_setting(con, args.key, by=_who())
            print(f"setting {args.key} back to its default {staleness.SETTINGS[args.key]:g}; "
                  f"tuner rules version {version}")
        else:
            version = delete_rule(con, scope, args.key, by=_who())
            print(f"{SCOPE_NAMES[scope]} rule {args.key} deleted; tuner rules version {version}")
    finally:
        con.close()
    return 0


def cmd_explain(args) -> int:
    from pipelines.online.tuner_rules import explain_event
    from pipelines.store.db import connect

    con = connect(read_only=True)
    try:
        ex = explain_event(con, args.event, top=args.top)
    finally:
        con.close()
    if ex is None:
        print(f"no tuner decision and no scores for moment {args.event!r} in the store "
              f"(stream.tuner_decisions, stream.osr_scores)")
        return 1
    if args.json:
        print(json.dumps(ex, default=str))
        return 0
    d = ex["decision"]
    print(f"moment {ex['event_id']} of {ex['user_id']} at {ex['utc']} (local {ex['local']}, {ex['tz']}"
          f"{', class ' + ex['person_class'] if ex['person_class'] else ''})")
    if d is None:
        print("  decision: none recorded (the tuner has not decided it yet, or the sink has not stored it)")
    else:
        verdict = f"PUSHED {d['item_id']}" if d["approved"] else "NOT PUSHED"
        print(f"  decision: {verdict} - {d['reason']}")
        if d.get("rule_scope") is not None and not (isinstance(d["rule_scope"], float)):
            print(f"  rule that applied: {SCOPE_NAMES.get(d['rule_scope'], d['rule_scope'])}, threshold "
                  f"{_num(d['threshold'])}")
        ver = d.get("rules_version")
        print(f"  rules version: {'-' if ver is None or (isinstance(ver, float) and math.isnan(ver)) else int(ver)}"
              f", model {d['model_id']}")
    p = ex["preferences"]
    if p:
        quiet = ("none" if p.get("quiet_start_hour") is None or _isnan(p.get("quiet_start_hour"))
                 else f"{int(p['quiet_start_hour']):02d}-{int(p['quiet_end_hour']):02d} local")
        print(f"  preferences: opted out {bool(p['opted_out'])}, quiet hours {quiet}, daily cap {p['daily_cap']}")
    print(f"  top candidates of {ex['n_candidates']} vs their thresholds ({ex['rules_from']}):")
    for c in ex["candidates"]:
        rule = f"{SCOPE_NAMES.get(c['rule_scope'], c['rule_scope'])} {c['rule_key']}" if c["rule_scope"] else "-"
        print(f"    {c['item_id']:10s} {c['category']:14s} score {c['osr_score']:.3f} "
              f"{'>=' if c['clears'] else '< '} {_num(c['threshold'])}  ({rule}, gap {_gap(c['min_gap_s'])})")
    if not ex["candidates"]:
        print("    (no scores stored for this moment)")
    return 0


def _isnan(v) -> bool:
    return isinstance(v, float) and math.isnan(v)


def register(sub) -> None:
    scopes = ", ".join(f"{SCOPE_NAMES[s]} ({s})" for s in SCOPE_ORDER)
    p = sub.add_parser("tuner", help="the Notification Frequency Tuner's rules in the store: list, set, delete, "
                                     "explain a decision")
    tsub = p.add_subparsers(dest="tuner_command", metavar="ACTION", required=True)

    q = tsub.add_parser("list", help="every rule (most specific scope first), the rules' version and the settings")
    q.add_argument("--scope", default=None, help="only this scope")
    q.add_argument("--json", action="store_true", help="print JSON")
    q.set_defaults(func=cmd_list)

    q = tsub.add_parser("set", help="create or change a rule, or a global setting (bumps the rules' version)",
                        description=f"Scopes: {scopes}; most specific wins. Keys: '*' for global, a user id, an "
                                    f"item id, USER_ID|ITEM_ID, a person class, a category. Scope 'setting' sets a "
                                    f"global setting: {', '.join(staleness.SETTINGS)}.")
    q.add_argument("scope", help="person-item, person, item, person-class, category, global, or setting")
    q.add_argument("key", help="the rule's key (see above), or the setting's name")
    q.add_argument("--threshold", type=float, default=None, help="OSR score a candidate must reach, in [0, 1]")
    q.add_argument("--min-gap", type=duration_s, default=None,
                   help="least time since the last push of the same category: seconds or 30m / 4h / 1d")
    q.add_argument("--value", type=float, default=None, help="a setting's value")
    q.add_argument("--force", action="store_true", help="set a rule for a person / item / class the store "
                                                        "does not know (yet)")
    q.set_defaults(func=cmd_set)

    q = tsub.add_parser("delete", help="remove a rule, or reset a setting to its default (bumps the version)")
    q.add_argument("scope", help="person-item, person, item, person-class, category, or setting")
    q.add_argument("key", help="the rule's key, or the setting's name")
    q.set_defaults(func=cmd_delete)

    q = tsub.add_parser("explain", help="why a moment was or was not pushed: the decision, its reason, the rule, "
                                        "the top candidates vs their thresholds")
    q.add_argument("event", help="the moment's event id")
    q.add_argument("--top", type=int, default=5, help="candidates to show (default 5)")
    q.add_argument("--json", action="store_true", help="print JSON")
    q.set_defaults(func=cmd_explain)
