"""pipelines.online.features: the state vector from a filtered upload, checked against hand-computed values."""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone

import numpy as np
import pytest

from pipelines.ingest.validation import parse_sensor_event
from pipelines.online.features import FEATURE_COLUMNS, NUMERIC_FEATURES, UNKNOWN_USER, state_features
from pipelines.filtering.kalman import filter_event
from pipelines.synthetic.population import sensor_events

#: Monday 2026-11-16 08:00:00 UTC
T0 = datetime(2026, 11, 16, 8, 0, tzinfo=timezone.utc).timestamp()
USER = {"home_x": 0.0, "home_y": 0.0, "work_x": 300.0, "work_y": 100.0, "peak_hr": 200.0}
STORES = np.array([[1000.0, 1000.0], [300.0, 430.0], [-50.0, -50.0]])


def filtered_event(**over):
    """Three readings a minute apart, moving at (3, 4) m/s, ending at (300, 400)."""
    e = {
        "event_id": "e1", "user_id": "u1", "device_id": "u1-watch", "device_type": "watch",
        "ts": [T0 - 120.0, T0 - 60.0, T0 + 59.5],
        "x": [100.0, 200.0, 300.0], "y": [200.0, 300.0, 400.0],
        "vx": [3.0, 3.0, 3.0], "vy": [4.0, 4.0, 4.0],
        "hr": [90.0, 100.0, 110.0],
        "acc": [9.0, 10.0, 11.0],
        "spikes_rejected": 2,
    }
    e.update(over)
    return e


def test_hand_made_event_gives_exact_features():
    f = state_features(filtered_event(), USER, STORES, source="history")
    assert list(f) == FEATURE_COLUMNS
    assert set(NUMERIC_FEATURES) <= set(f)
    assert f["event_id"] == "e1" and f["user_id"] == "u1" and f["device_id"] == "u1-watch"
    assert f["device_type"] == "watch" and f["source"] == "history"
    assert f["ts"] == T0 + 59.5
    assert f["speed_mps"] == pytest.approx(5.0)
    assert f["heading_deg"] == pytest.approx(math.degrees(math.atan2(4, 3)))  # 53.13°, counter-clockwise from +x
    assert f["dist_home_m"] == pytest.approx(500.0)
    assert f["dist_work_m"] == pytest.approx(300.0)
    assert f["dist_store_m"] == pytest.approx(30.0)
    assert f["hr_pct_peak"] == pytest.approx(50.0)  # mean 100 of peak 200
    # least-squares slope over unevenly spaced readings, in bpm per minute
    t = np.array([-120.0, -60.0, 59.5]) / 60.0
    v = np.array([90.0, 100.0, 110.0])
    expected_slope = ((t - t.mean()) * (v - v.mean())).sum() / ((t - t.mean()) ** 2).sum()
    assert f["hr_rate_bpm_per_min"] == pytest.approx(expected_slope)
    assert 6.0 < f["hr_rate_bpm_per_min"] < 7.0
    assert f["activity"] == pytest.approx(math.sqrt(2.0 / 3.0))
    assert f["hour_of_day"] == 8 and f["day_of_week"] == 0
    assert f["n_readings"] == 3 and f["spikes_rejected"] == 2
    # the paper's transformations: a 5 m/s pace with a shaky acceleration is a run (a workout moment)
    assert f["min_since_workout"] == 0.0
    assert f["activity_level"] == 3  # acceleration and speed vigorous, heart rate (50 %) sedentary
    # closing speed to home (origin): -(3x + 4y) / |(x, y)| at (100, 200), (200, 300), (300, 400)
    home = [-(3 * 100 + 4 * 200) / math.hypot(100, 200), -(3 * 200 + 4 * 300) / math.hypot(200, 300), -5.0]
    assert f["approach_home_mps"] == pytest.approx(sum(home) / 3)
    # work (300, 100): (3·(300 − x) + 4·(100 − y)) / distance; the last reading is straight above it
    work = [(3 * 200 + 4 * -100) / math.hypot(200, -100), (3 * 100 + 4 * -200) / math.hypot(100, -200), -4.0]
    assert f["approach_work_mps"] == pytest.approx(sum(work) / 3)
    # nearest store (300, 430): (3·(300 − x) + 4·(430 − y)) / distance
    store = [(3 * 200 + 4 * 230) / math.hypot(200, 230), (3 * 100 + 4 * 130) / math.hypot(100, 130), 4.0]
    assert f["approach_store_mps"] == pytest.approx(sum(store) / 3)
    assert (f["x_m"], f["y_m"]) == (300.0, 400.0)


def test_hr_slope_is_per_minute():
    f = state_features(filtered_event(ts=[T0, T0 + 60.0, T0 + 120.0]), USER, STORES)
    assert f["hr_rate_bpm_per_min"] == pytest.approx(10.0)
    f = state_features(filtered_event(ts=[T0, T0 + 60.0, T0 + 120.0], hr=[150.0, 140.0, 130.0]), USER, STORES)
    assert f["hr_rate_bpm_per_min"] == pytest.approx(-10.0)
    assert f["hr_pct_peak"] == pytest.approx(70.0)


def test_hr_gaps_are_skipped():
    f = state_features(filtered_event(ts=[T0, T0 + 60.0, T0 + 120.0], hr=[100.0, None, 120.0]), USER, STORES)
    assert f["hr_pct_peak"] == pytest.approx(55.0)
    assert f["hr_rate_bpm_per_min"] == pytest.approx(10.0)


@pytest.mark.parametrize("vx, vy, heading", [(-2.0, 0.0, 180.0), (0.0, -2.0, 270.0), (1.0, 1.0, 45.0),
                                             (1.0, -1.0, 315.0)])
def test_heading_is_in_0_360(vx, vy, heading):
    f = state_features(filtered_event(vx=[vx] * 3, vy=[vy] * 3), USER, STORES)
    assert f["heading_deg"] == pytest.approx(heading)
    assert f["speed_mps"] == pytest.approx(math.hypot(vx, vy))


def test_speed_is_mean_of_speeds_not_speed_of_mean():
    # there and back: the mean velocity is zero, the person still moved at 2 m/s
    f = state_features(filtered_event(vx=[2.0, -2.0, 2.0], vy=[0.0, 0.0, 0.0]), USER, STORES)
    assert f["speed_mps"] == pytest.approx(2.0)


def test_unknown_user_has_no_destinations_and_default_peak():
    f = state_features(filtered_event(), None, STORES)
    assert f["dist_home_m"] is None and f["dist_work_m"] is None
    assert f["approach_home_mps"] is None and f["approach_work_mps"] is None
    assert f["approach_store_mps"] is not None
    assert f["dist_store_m"] == pytest.approx(30.0)
    assert f["hr_pct_peak"] == pytest.approx(100.0 * 100.0 / UNKNOWN_USER["peak_hr"])
    f2 = state_features(filtered_event(), UNKNOWN_USER, STORES)
    assert f2 == f


def test_no_stores_gives_no_store_distance():
    f = state_features(filtered_event(), USER, np.empty((0, 2)))
    assert f["dist_store_m"] is None


@pytest.mark.parametrize("hr", [[None, None, None], None, [None, 120.0, None]])
def test_without_two_hr_readings_hr_features_are_none(hr):
    e = filtered_event(device_type="phone", hr=hr)
    if hr is None:
        del e["hr"]
    f = state_features(e, USER, STORES)
    assert f["hr_pct_peak"] is None and f["hr_rate_bpm_per_min"] is None
    assert f["speed_mps"] == pytest.approx(5.0)


def test_real_phone_upload_through_filter_has_no_hr(tiny_pop):
    users = tiny_pop.users.set_index("user_id").to_dict("index")
    stores = tiny_pop.stores[["x", "y"]].to_numpy(dtype=float)
    rows = {}
    for upload, _truth in sensor_events(tiny_pop, "stream"):
        event, reason = parse_sensor_event(json.dumps(upload))
        assert reason is None
        filtered, _ = filter_event(event, None)
        rows[event["device_type"]] = state_features(filtered, users[event["user_id"]], stores)
        if len(rows) == 2:
            break
    phone, watch = rows["phone"], rows["watch"]
    assert phone["hr_pct_peak"] is None and phone["hr_rate_bpm_per_min"] is None
    assert 20.0 < watch["hr_pct_peak"] < 110.0
    for f in (phone, watch):
        assert f["n_readings"] == 60
        assert f["dist_home_m"] is not None and f["dist_home_m"] >= 0
        assert 0.0 <= f["heading_deg"] < 360.0
