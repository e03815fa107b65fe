"""OSR interactions as profile updates, so people's purchase / push streams feed the same
partitioning machinery as the telco CDRs.

Why: a person's profile is the shares of their interactions by kind (purchase, push), item
category, state and 4-hour block of the day; clustering those profiles groups people who buy and
are pushed alike, which is what per-cluster models need. An interaction is
{"user_id", "ts" (epoch s), "category", "state", "kind"}; anything else is refused with its reason.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone

from pipelines.partitioning.profiles import Schema
from pipelines.synthetic.population import CATEGORIES, STATES

KINDS = ("purchase", "push")
HOUR_BLOCKS = tuple(f"h{h:02d}-{h + 4:02d}" for h in range(0, 24, 4))

OSR = Schema((
    ("kind", KINDS),
    ("category", tuple(CATEGORIES)),
    ("state", tuple(STATES)),
    ("hour", HOUR_BLOCKS),
))


def to_update(event: dict) -> tuple[str, float, list[int]]:
    """(profile key, time, value index per group) of one interaction; ValueError says what is wrong."""
    if not isinstance(event, dict):
        raise ValueError("interaction must be a dict")
    user = event.get("user_id")
    if not isinstance(user, str) or not user:
        raise ValueError("interaction without a user_id")
    ts = event.get("ts")
    if isinstance(ts, bool) or not isinstance(ts, (int, float)) or not math.isfinite(ts):
        raise ValueError(f"interaction ts must be a finite number of seconds, got {ts!r}")
    values = []
    for group, allowed in (("kind", KINDS), ("category", CATEGORIES), ("state", STATES)):
        v = event.get(group)
        if v not in allowed:
            raise ValueError(f"unknown {group} {v!r} (expected one of {list(allowed)})")
        values.append(list(allowed).index(v))
    hour = datetime.fromtimestamp(float(ts), tz=timezone.utc).hour
    values.append(hour // 4)
    return user, float(ts), values
