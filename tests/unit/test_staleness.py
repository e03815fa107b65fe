"""pipelines.online.staleness: a push is stale when the person moved, changed speed band, heart-rate
band or activity level clearly since the scored moment; limits are overridable by tuner settings."""

from __future__ import annotations

import math

import pytest

from pipelines.online import staleness as S
from pipelines.online.staleness import StalenessLimits, limits_from, stale_reason

SCORED = {"event_id": "e1", "ts": 1000.0, "x_m": 100.0, "y_m": 100.0, "speed_mps": 1.2, "hr_pct_peak": 0.62,
          "activity": 0.8}


def later(**changes) -> dict:
    return {**SCORED, "event_id": "e2", "ts": 1060.0, **changes}


def test_same_state_later_is_not_stale():
    assert stale_reason(SCORED, later()) is None


def test_moved_beyond_the_limit():
    assert stale_reason(SCORED, later(x_m=100.0 + 144.0, y_m=100.0 + 192.0)) == \
        "stale: moved 240 m since the scored moment"
    assert stale_reason(SCORED, later(x_m=100.0 + 120.0, y_m=100.0 + 160.0)) is None  # 200 m: at the limit


def test_position_is_optional_until_the_feature_row_has_it():
    no_xy = {k: v for k, v in SCORED.items() if k not in ("x_m", "y_m")}
    assert stale_reason(no_xy, {**no_xy, "event_id": "e2", "ts": 1060.0}) is None
    assert stale_reason(SCORED, later(x_m=None, y_m=None)) is None
    assert stale_reason(SCORED, later(x_m=float("nan"))) is None


@pytest.mark.parametrize("speed, reason", [
    (1.5, None),  # same band (walking)
    (0.3, "stale: speed walking -> still (1.2 -> 0.3 m/s) since the scored moment"),
    (11.0, "stale: speed walking -> vehicle (1.2 -> 11.0 m/s) since the scored moment"),
])
def test_speed_band(speed, reason):
    assert stale_reason(SCORED, later(speed_mps=speed)) == reason


def test_a_band_edge_crossed_by_noise_is_not_stale():
    at_edge = {**SCORED, "speed_mps": 2.4, "hr_pct_peak": 0.59, "activity": 0.95}
    assert stale_reason(at_edge, {**at_edge, "event_id": "e2", "ts": 1060.0, "speed_mps": 2.6, "hr_pct_peak": 0.61,
                                  "activity": 1.05}) is None


def test_heart_rate_band_by_share_of_peak():
    assert stale_reason(SCORED, later(hr_pct_peak=0.85)) == \
        "stale: heart rate moderate -> vigorous (0.62 -> 0.85 of peak) since the scored moment"
    assert stale_reason(SCORED, later(hr_pct_peak=None)) is None  # the phone has no heart rate
    assert stale_reason({**SCORED, "hr_pct_peak": None}, later(hr_pct_peak=0.85)) is None


def test_activity_level():
    assert stale_reason(SCORED, later(activity=3.0)) == \
        "stale: activity light -> vigorous (0.80 -> 3.00) since the scored moment"
    assert stale_reason(SCORED, later(activity=0.1)).startswith("stale: activity light -> still")


def test_position_is_reported_first():
    assert stale_reason(SCORED, later(x_m=1000.0, speed_mps=11.0)).startswith("stale: moved")


@pytest.mark.parametrize("latest", [None, SCORED, {**SCORED, "speed_mps": 11.0},  # the scored moment itself
                                    {**SCORED, "event_id": "e0", "ts": 900.0, "speed_mps": 11.0}])  # older
def test_no_newer_state_is_never_stale(latest):
    assert stale_reason(SCORED, latest) is None


def test_limits_from_settings_override_and_switch_off():
    moved = later(x_m=400.0)  # 300 m
    assert stale_reason(SCORED, moved) is not None
    assert stale_reason(SCORED, moved, limits_from({"stale_move_m": 350.0})) is None
    assert stale_reason(SCORED, moved, limits_from({"stale_move_m": -1})) is None  # switched off
    assert limits_from({"stale_move_m": 50, "not_a_staleness_setting": 3.0, "stale_hr_margin": math.nan}) == \
        StalenessLimits(move_m=50.0)
    assert limits_from(None) == S.DEFAULT_LIMITS
    fast = later(speed_mps=2.6)  # walking -> running, 1.4 m/s apart
    assert stale_reason(SCORED, fast) is not None
    assert stale_reason(SCORED, fast, limits_from({"stale_speed_margin_mps": 2.0})) is None


def test_settings_names_are_the_limits():
    assert S.SETTINGS == {"stale_move_m": 200.0, "stale_speed_margin_mps": 0.5, "stale_hr_margin": 0.05,
                          "stale_activity_margin": 0.2}
