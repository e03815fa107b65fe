"""The staleness rule: is the moment that was scored still the person's moment at push time?

Why: a push is scored on one state vector and goes out a little later. If the person has since
walked off, got into a car or stopped running, the push answers a moment that is gone (a sports
drink offered to someone now sitting on a bus). So at push time the tuner compares the person's
latest state with the scored one and drops the push, with the reason, when they differ clearly.

Pure: two FeatureRow-like dicts and the limits in, a reason or None out. What counts as "clearly":

- position: moved more than `move_m` (default 200 m) between the two (`x_m`, `y_m`, the last
  position; optional until FeatureRow carries them: no position, no position check);
- speed band: still < 0.5 m/s <= walking < 2.5 <= running < 6 <= vehicle; a band change counts only
  when the speed also moved by at least `speed_margin_mps` (default 0.5), so noise at a band edge
  does not make every moment stale;
- heart-rate band by share of peak: rest < 0.6 <= moderate < 0.75 <= vigorous, margin
  `hr_margin` (default 0.05 of peak); skipped when either side has no heart rate (phones);
- activity level (std of acceleration magnitude): still < 0.3 <= light < 1.0 <= moderate < 2.0 <=
  vigorous, margin `activity_margin` (default 0.2).

Every limit is overridable by a global tuner setting of the same name with the prefix `stale_`
(tuner.settings, `osr tuner set setting stale_move_m --value 300`); a limit set to a negative value
switches that check off.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace

#: (upper bound, name) per band, in order; the last band has no upper bound.
SPEED_BANDS = ((0.5, "still"), (2.5, "walking"), (6.0, "running"), (math.inf, "vehicle"))
HR_BANDS = ((0.6, "rest"), (0.75, "moderate"), (math.inf, "vigorous"))
ACTIVITY_BANDS = ((0.3, "still"), (1.0, "light"), (2.0, "moderate"), (math.inf, "vigorous"))

SETTING_PREFIX = "stale_"


@dataclass(frozen=True)
class StalenessLimits:
    """How far the latest state may be from the scored one before a push is stale (< 0: check off)."""

    move_m: float = 200.0
    speed_margin_mps: float = 0.5
    hr_margin: float = 0.05
    activity_margin: float = 0.2


DEFAULT_LIMITS = StalenessLimits()
#: The tuner settings that override the limits (name -> default).
SETTINGS: dict[str, float] = {SETTING_PREFIX + f.name: getattr(DEFAULT_LIMITS, f.name)
                              for f in fields(StalenessLimits)}


def limits_from(settings: dict | None) -> StalenessLimits:
    """The limits with the `stale_*` entries of the global tuner settings applied (others ignored)."""
    over = {name[len(SETTING_PREFIX):]: float(v) for name, v in (settings or {}).items()
            if name in SETTINGS and v is not None and not _missing(v)}
    return replace(DEFAULT_LIMITS, **over)


def _missing(v) -> bool:
    try:
        return v is None or math.isnan(float(v))
    except (TypeError, ValueError):
        return True


def _num(row: dict, name: str) -> float | None:
    v = row.get(name)
    return None if _missing(v) else float(v)


def band(value: float, bands) -> str:
    return next(name for upper, name in bands if value < upper)


def _band_change(what: str, unit: str, old, new, bands, margin: float, fmt: str) -> str | None:
    if old is None or new is None or margin < 0:
        return None
    b_old, b_new = band(old, bands), band(new, bands)
    if b_old != b_new and abs(new - old) >= margin:
        return f"stale: {what} {b_old} -> {b_new} ({old:{fmt}} -> {new:{fmt}}{unit}) since the scored moment"
    return None


def stale_reason(scored: dict, latest: dict | None, limits: StalenessLimits = DEFAULT_LIMITS) -> str | None:
    """Why the scored state no longer holds at push time ("stale: moved 240 m since the scored
    moment"), or None when it still does. `latest` None, or not newer than the scored state (the
    scored moment is the latest one known), is never stale."""
    if latest is None or latest is scored:
        return None
    if latest.get("event_id") is not None and latest.get("event_id") == scored.get("event_id"):
        return None
    t_old, t_new = _num(scored, "ts"), _num(latest, "ts")
    if t_old is not None and t_new is not None and t_new <= t_old:
        return None
    if limits.move_m >= 0:
        xy = [_num(r, k) for r in (scored, latest) for k in ("x_m", "y_m")]
        if None not in xy:
            moved = math.hypot(xy[2] - xy[0], xy[3] - xy[1])
            if moved > limits.move_m:
                return f"stale: moved {moved:.0f} m since the scored moment"
    return (_band_change("speed", " m/s", _num(scored, "speed_mps"), _num(latest, "speed_mps"), SPEED_BANDS,
                         limits.speed_margin_mps, ".1f")
            or _band_change("heart rate", " of peak", _num(scored, "hr_pct_peak"), _num(latest, "hr_pct_peak"),
                            HR_BANDS, limits.hr_margin, ".2f")
            or _band_change("activity", "", _num(scored, "activity"), _num(latest, "activity"), ACTIVITY_BANDS,
                            limits.activity_margin, ".2f"))
