"""The paper's state transformations (pipelines.online.features): direction of approach, activity
level, minutes since the last workout, against hand-computed values; and the history backfill giving
exactly what the stream gives for the same uploads."""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from pipelines import contracts as C
from pipelines.filtering.kalman import filter_event, filter_random_walk
from pipelines.online import features as F
from pipelines.online.features import activity_level, features_stage, next_history, state_features
from pipelines.store.population_loader import backfill_features
from pipelines.synthetic.population import PopulationParams, generate, sensor_events

T0 = datetime(2026, 11, 16, 8, 0, tzinfo=timezone.utc).timestamp()
PEAK = 200.0
USER = {"home_x": 0.0, "home_y": 0.0, "work_x": 300.0, "work_y": 0.0, "peak_hr": PEAK}
NO_STORES = np.empty((0, 2))
N = 60


def upload(x, y, vx, vy, *, t_end=T0, hr=None, acc=None, device_type="watch", event_id="u1-watch:m1"):
    """A filtered upload of len(x) readings one second apart, ending at t_end."""
    n = len(x)
    ts = [t_end - (n - 1 - i) for i in range(n)]
    return {"event_id": event_id, "user_id": "u1", "device_id": f"u1-{device_type}", "device_type": device_type,
            "ts": ts, "x": [float(v) for v in x], "y": [float(v) for v in y],
            "vx": [float(v) for v in vx], "vy": [float(v) for v in vy],
            "hr": [None] * n if hr is None else [float(v) for v in hr],
            "acc": [9.81] * n if acc is None else [float(v) for v in acc],
            "rejected": [False] * n, "spikes_rejected": 0}


def still(**kw):
    """Standing at (50, 50): no motion, flat acceleration."""
    return upload([50.0] * N, [50.0] * N, [0.0] * N, [0.0] * N, **kw)


def acc_with_std(std: float, n: int = N) -> list[float]:
    """Alternating ±std around g: population std exactly `std`."""
    return [9.81 + (std if i % 2 else -std) for i in range(n)]


# --- direction of approach --------------------------------------------------------------------

def test_moving_straight_at_a_store_closes_at_full_speed():
    store = np.array([[100.0, 0.0], [5000.0, 5000.0]])
    row = state_features(upload([0, 10, 20], [0, 0, 0], [2, 2, 2], [0, 0, 0]), USER, store)
    assert row["approach_store_mps"] == pytest.approx(2.0)
    # home is behind (at the origin), work (300, 0) straight ahead
    assert row["approach_home_mps"] == pytest.approx(-2.0)
    assert row["approach_work_mps"] == pytest.approx(2.0)


def test_moving_straight_away_from_a_store_is_negative():
    store = np.array([[100.0, 0.0]])
    row = state_features(upload([0, -10, -20], [0, 0, 0], [-2, -2, -2], [0, 0, 0]), USER, store)
    assert row["approach_store_mps"] == pytest.approx(-2.0)
    assert row["approach_work_mps"] == pytest.approx(-2.0)


def test_passing_a_store_symmetrically_closes_at_zero():
    # along y = 0 from x = -20 to 20 at 2 m/s, the store 50 m off the line at x = 0: closing at
    # +2·20/√2900 at the first reading, 0 abreast, −2·20/√2900 at the last
    store = np.array([[0.0, 50.0]])
    row = state_features(upload([-20, 0, 20], [0, 0, 0], [2, 2, 2], [0, 0, 0]), USER, store)
    assert row["approach_store_mps"] == pytest.approx(0.0, abs=1e-12)
    first = state_features(upload([-20], [0], [2], [0]), USER, store)
    assert first["approach_store_mps"] == pytest.approx(2.0 * 20.0 / math.sqrt(2900.0))


def test_closing_speed_is_the_mean_radial_component():
    # at (0, 0) the destination (30, 40) is 50 m away: 3 m/s along x closes at 3·30/50 = 1.8;
    # at (30, 0) it is straight up: 0. Mean 0.9.
    assert F.closing_speed(np.array([0.0, 30.0]), np.array([0.0, 0.0]), np.array([3.0, 3.0]),
                           np.array([0.0, 0.0]), 30.0, 40.0) == pytest.approx(0.9)


def test_the_nearest_store_to_the_last_position_is_the_destination():
    # ends at (20, 0): store A (100, 0) is 80 m ahead, store B (0, -30) 36 m away behind-left
    stores = np.array([[100.0, 0.0], [0.0, -30.0]])
    row = state_features(upload([0, 10, 20], [0, 0, 0], [2, 2, 2], [0, 0, 0]), USER, stores)
    assert row["dist_store_m"] == pytest.approx(math.hypot(20, 30))
    expected = np.mean([2 * (0 - x) / math.hypot(0 - x, -30) for x in (0, 10, 20)])
    assert row["approach_store_mps"] == pytest.approx(expected)
    assert row["approach_store_mps"] < 0


def test_unknown_destinations_have_no_approach():
    row = state_features(upload([0, 10], [0, 0], [2, 2], [0, 0]), None, NO_STORES)
    assert row["approach_home_mps"] is None and row["approach_work_mps"] is None
    assert row["approach_store_mps"] is None
    assert C.problem(C.FeatureRow, row) is None


def test_standing_on_the_destination_is_not_approaching():
    row = state_features(upload([0.0, 0.3], [0.0, 0.0], [0.3, 0.3], [0.0, 0.0]), USER, NO_STORES)
    assert row["approach_home_mps"] == 0.0  # every reading within MIN_DIRECTION_M of home


def test_last_position_is_carried_but_not_in_the_state_vector():
    row = state_features(upload([0, 10, 20], [5, 6, 7], [2, 2, 2], [0, 0, 0]), USER, NO_STORES)
    assert (row["x_m"], row["y_m"]) == (20.0, 7.0)
    assert "x_m" not in C.STATE_VECTOR and "y_m" not in C.STATE_VECTOR
    for f in ("min_since_workout", "activity_level", "approach_store_mps", "approach_home_mps",
              "approach_work_mps"):
        assert f in C.STATE_VECTOR


# --- activity level ---------------------------------------------------------------------------

def test_filter_attenuation_is_the_steady_state_smoother_factor():
    # by hand for q = 0.02, r = 0.8, dt = 1 s: prior P = (q + √(q² + 4qr²)) / 2 = 0.123578,
    # K = P / (P + r²) = 0.161841, factor √(K / (2 − K)) = 0.29673
    assert F.ACC_ATTENUATION == pytest.approx(0.29673, abs=1e-5)
    assert F.ACC_STD_LEVELS == pytest.approx(tuple(0.29673 * v for v in F.RAW_ACC_STD_LEVELS), rel=1e-4)
    # and the real filter shrinks white noise by that factor
    rng = np.random.default_rng(3)
    n = 20_000
    out, _ = filter_random_walk(list(np.arange(n, dtype=float)), list(9.81 + rng.normal(0, 1.0, n)), None,
                                0.02, 0.8)
    assert np.std(out[200:]) == pytest.approx(F.ACC_ATTENUATION, rel=0.08)


@pytest.mark.parametrize("speed, level", [(0.0, 0), (0.4999, 0), (0.5, 1), (1.3399, 1), (1.34, 2), (2.2399, 2),
                                          (2.24, 3), (7.0, 3), (7.01, 0)])
def test_speed_cue_boundaries(speed, level):
    # acceleration and heart rate both vigorous: the level is what the speed cue reaches (2nd highest)
    assert activity_level(F.ACC_STD_LEVELS[2], speed, 95.0) == 3
    # heart rate vigorous, acceleration sedentary: the second highest cue is the speed's
    assert activity_level(0.0, speed, 95.0) == level


@pytest.mark.parametrize("hr, level", [(56.99, 0), (57.0, 1), (63.99, 1), (64.0, 2), (76.99, 2), (77.0, 3)])
def test_heart_rate_cue_boundaries(hr, level):
    # acceleration vigorous, speed sedentary: the heart rate decides
    assert activity_level(F.ACC_STD_LEVELS[2], 0.0, hr) == level


@pytest.mark.parametrize("k", [0, 1, 2])
def test_acceleration_cue_boundaries(k):
    bound = F.ACC_STD_LEVELS[k]
    # phone (no heart rate), running speed: the level is the acceleration's
    assert activity_level(bound, 3.0, None) == k + 1
    assert activity_level(bound * 0.999, 3.0, None) == k


def test_one_cue_alone_cannot_raise_the_level():
    assert activity_level(0.0, 1.0, None) == 0  # GPS jitter read as walking
    assert activity_level(0.0, 0.0, 95.0) == 0  # a racing heart at rest
    assert activity_level(F.ACC_STD_LEVELS[2], 12.0, 50.0) == 0  # a shaking bus


def test_activity_level_through_the_features():
    # running at 3 m/s, acceleration std 1.0 m/s² after filtering (vigorous: ≥ 0.742), no heart rate
    run = upload(np.arange(N) * 3.0, [0.0] * N, [3.0] * N, [0.0] * N, acc=acc_with_std(1.0), device_type="phone")
    assert state_features(run, USER, NO_STORES)["activity_level"] == 3
    assert state_features(still(), USER, NO_STORES)["activity_level"] == 0


# --- workouts and minutes since -----------------------------------------------------------------

def test_a_sustained_vigorous_heart_rate_is_a_workout_moment():
    row = state_features(still(hr=[0.80 * PEAK] * N), USER, NO_STORES)
    assert row["min_since_workout"] == 0.0
    assert next_history(None, row) == {"last_workout_ts": T0}


@pytest.mark.parametrize("hr", [
    [0.76 * PEAK] * N,  # below the vigorous share of peak
    [0.80 * PEAK] * 47 + [0.60 * PEAK] * 13,  # vigorous for 47/60 = 78 % of readings only
    [None] * 35 + [0.90 * PEAK] * 25,  # vigorous, but the readings span 24 s only
])
def test_heart_rate_that_is_not_a_workout(hr):
    e = still()
    e["hr"] = hr
    row = state_features(e, USER, NO_STORES)
    assert row["min_since_workout"] is None
    assert next_history(None, row) == {}


def test_a_phone_detects_a_run_by_motion():
    def run(speed, acc_std):
        return upload(np.arange(N) * speed, [0.0] * N, [speed] * N, [0.0] * N, acc=acc_with_std(acc_std),
                      device_type="phone")
    assert state_features(run(3.0, 0.6), USER, NO_STORES)["min_since_workout"] == 0.0
    assert state_features(run(3.0, 0.3), USER, NO_STORES)["min_since_workout"] is None  # smooth: a bike
    assert state_features(run(2.0, 0.6), USER, NO_STORES)["min_since_workout"] is None  # brisk walk
    assert state_features(run(9.0, 0.6), USER, NO_STORES)["min_since_workout"] is None  # a vehicle


def test_minutes_since_the_last_workout_across_moments():
    workout = state_features(still(hr=[0.85 * PEAK] * N), USER, NO_STORES)
    h = next_history(None, workout)
    later = state_features(still(t_end=T0 + 1800.0, event_id="u1-watch:m2"), USER, NO_STORES, history=h)
    assert later["min_since_workout"] == pytest.approx(30.0)
    h = next_history(h, later)
    assert h == {"last_workout_ts": T0}  # a quiet moment keeps the last workout
    much_later = state_features(still(t_end=T0 + 7200.0, event_id="u1-watch:m3"), USER, NO_STORES, history=h)
    assert much_later["min_since_workout"] == pytest.approx(120.0)
    # a second workout moves it forward
    again = state_features(still(t_end=T0 + 9000.0, hr=[0.9 * PEAK] * N, event_id="u1-watch:m4"), USER, NO_STORES,
                           history=next_history(h, much_later))
    assert next_history(h, again) == {"last_workout_ts": T0 + 9000.0}


def test_a_person_without_history_has_no_workout_minutes():
    row = state_features(still(t_end=T0 + 1800.0), USER, NO_STORES, history=None)
    assert row["min_since_workout"] is None
    assert state_features(still(t_end=T0 + 1800.0), USER, NO_STORES, history={})["min_since_workout"] is None


def test_a_late_earlier_moment_neither_goes_negative_nor_moves_the_workout_back():
    h = {"last_workout_ts": T0 + 600.0}
    early = state_features(still(t_end=T0), USER, NO_STORES, history=h)
    assert early["min_since_workout"] == 0.0
    assert next_history(h, early) == h
    early_workout = state_features(still(t_end=T0, hr=[0.9 * PEAK] * N), USER, NO_STORES, history=h)
    assert next_history(h, early_workout) == h


def test_history_is_tiny_and_json():
    h = next_history(None, state_features(still(hr=[0.9 * PEAK] * N), USER, NO_STORES))
    assert json.loads(json.dumps(h)) == h and list(h) == ["last_workout_ts"]


@pytest.mark.parametrize("history, why", [("yesterday", "history must be a dict"),
                                          ({"last_workout_ts": "noon"}, "finite epoch"),
                                          ({"last_workout_ts": math.nan}, "finite epoch")])
def test_a_bad_history_is_a_dead_letter_with_its_reason(history, why):
    snap = SimpleNamespace(users={"u1": USER}, stores_xy=NO_STORES)
    row, dead = features_stage(still(), snap, "sensor.filtered:0:7", history=history)
    assert row is None and why in dead["reason"]
    row, dead = features_stage(still(), snap, "sensor.filtered:0:7", history={"last_workout_ts": T0 - 60.0})
    assert dead is None and row["min_since_workout"] == pytest.approx(1.0)


# --- the backfill runs the stream's code -------------------------------------------------------

@pytest.fixture(scope="module")
def pop():
    """Enough moments per person that workouts are followed by later moments."""
    return generate(PopulationParams(n_users=4, n_items=24, history_contexts_per_user=12, stream_contexts_per_user=1))


def stream_rows(pop, events, batch: int = 7) -> dict[str, dict]:
    """What the stream does: the uploads in live order (people interleaved), micro-batches of `batch`
    through `take_person` with each person's state carried between batches, as `Chain.run` does;
    then the moments still waiting are released (the stream's tick)."""
    from pipelines.filtering.stage import Arrival
    from pipelines.online.chain import take_person

    devices = {u: sorted(g.device_id) for u, g in pop.devices.groupby("user_id")}
    snap = SimpleNamespace(users=pop.users.set_index("user_id").to_dict("index"), registered=None,
                           stores_xy=pop.stores[["x", "y"]].to_numpy(dtype=float), devices_of=devices.get)
    live = sorted(events, key=lambda et: et[0]["ts"][0])
    states, rows = {}, {}
    for i in range(0, len(live), batch):
        by: dict[str, list] = {}
        for k, (e, _t) in enumerate(live[i:i + batch]):
            by.setdefault(e["user_id"], []).append(Arrival(json.dumps(e).encode(), f"raw:0:{i + k}", e["user_id"], 0.0))
        for uid, arrivals in by.items():
            taken = take_person(arrivals, states.get(uid), snap, None, 2.0)
            assert not taken.dead, taken.dead
            if taken.state is not None:
                states[uid] = json.loads(json.dumps(taken.state))  # through the table's codec
            rows.update({r["event_id"]: r for r in taken.rows})
    for uid in list(states):
        taken = take_person([], states[uid], snap, math.inf, 2.0)
        rows.update({r["event_id"]: r for r in taken.rows})
    return rows


def backfill_rows(pop, events=None) -> dict[str, dict]:
    feats, _ = backfill_features(pop, "history", events=events)
    feats["ts"] = (feats.ts - pd.Timestamp(0)).dt.total_seconds()
    out = {}
    for r in feats.to_dict("records"):
        out[r["event_id"]] = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
    return out


def assert_same_rows(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for eid in a:
        for f in C.fields(C.FeatureRow):
            if f == "source":
                continue
            va, vb = a[eid][f], b[eid][f]
            assert (va is None) == (vb is None), (eid, f, va, vb)
            if isinstance(va, float) or isinstance(vb, float):
                assert va == pytest.approx(vb, rel=1e-12, abs=1e-9), (eid, f, va, vb)
            elif va is not None:
                assert va == vb, (eid, f, va, vb)


def test_backfill_equals_the_stream_for_the_same_uploads(pop):
    events = list(sensor_events(pop, "history"))
    stream = stream_rows(pop, events)
    backfill = backfill_rows(pop)
    assert_same_rows(backfill, stream)
    since = [r["min_since_workout"] for r in backfill.values()]
    # the history matters: some moments come after a workout, some before any, some are one
    assert any(m is not None and m > 0 for m in since) and None in since and 0.0 in since
    assert {r["source"] for r in backfill.values()} == {"history"}


def test_backfill_with_two_people_interleaved(pop):
    events = list(sensor_events(pop, "history"))
    a, b = pop.users.user_id[:2]
    ea = [e for e in events if e[0]["user_id"] == a]
    eb = [e for e in events if e[0]["user_id"] == b]
    interleaved = [e for pair in zip(ea, eb) for e in pair] + ea[len(eb):] + eb[len(ea):]
    assert [e[0]["user_id"] for e in interleaved[:4]] == [a, b, a, b]
    together = backfill_rows(pop, interleaved)
    alone = {**backfill_rows(pop, ea), **backfill_rows(pop, eb)}
    assert_same_rows(together, alone)
    for uid in (a, b):  # someone's workouts never count for someone else
        mine = sorted(k for k in together if k.startswith(uid + ":"))
        assert [together[k]["min_since_workout"] for k in mine] == [alone[k]["min_since_workout"] for k in mine]
    assert any(r["min_since_workout"] for r in together.values())


def test_backfill_takes_a_persons_uploads_in_time_order_whatever_the_input_order(pop):
    events = list(sensor_events(pop, "history"))
    uid = pop.users.user_id[0]
    mine = [e for e in events if e[0]["user_id"] == uid]
    assert_same_rows(backfill_rows(pop, mine[::-1]), backfill_rows(pop, mine))
