"""State features from one filtered sensor upload: the state vector V(state) the OSR score uses.

Computed the same way in the stream (features agent) and in batch backfills of
history, so the propensity model is trained on exactly what it is served.

Besides the filtered absolute state, the paper (section IV) asks for "useful transformations like
extracting direction (source-destination) of approach, distance to key destinations, speed, heart
beat as percentage of peak heart beat rate, rate of change of heart beat count", and its example
pushes a health drink "just when the customer has finished an extraneous workout". So a row also
carries the closing speed towards the nearest store / home / work, an ordinal activity level and
the minutes since the person's last workout moment. The last one needs memory across uploads: the
caller keeps a tiny per-person `history` dict and advances it with `next_history` (the stream in
its table, the backfill in a dict per person).
"""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone

import numpy as np

from pipelines.contracts import STATE_VECTOR, FeatureRow, FilteredUpload, fields, problem
from pipelines.filtering.kalman import DEFAULT_PARAMS
from pipelines.ingest.validation import deadletter_record

#: The state vector, in the order models see it (declared once, in pipelines.contracts.FeatureRow).
NUMERIC_FEATURES = STATE_VECTOR
FEATURE_COLUMNS = fields(FeatureRow)


#: Stand-in for a person the snapshot does not know yet (NaN destinations, a typical peak heart rate).
UNKNOWN_USER = {"home_x": math.nan, "home_y": math.nan, "work_x": math.nan, "work_y": math.nan, "peak_hr": 185.0}

# --- activity level and workout moments: documented constants, not fitted to any data -------------
#: Activity levels (ordinal), after the MET classes of the Compendium of Physical Activities
#: (Ainsworth et al. 2011): sedentary ≤ 1.5 MET, light < 3, moderate 3–6, vigorous ≥ 6.
SEDENTARY, LIGHT, MODERATE, VIGOROUS = 0, 1, 2, 3
#: Heart rate as % of peak where light / moderate / vigorous start (ACSM, Garber et al. 2011,
#: table 4: very light < 57 %, light 57–63 %, moderate 64–76 %, vigorous 77–95 % of HRmax).
HR_PCT_LEVELS = (57.0, 64.0, 77.0)
#: Speed on foot [m/s] where light / moderate / vigorous start (Compendium: slow walking 0.5 m/s
#: is barely above standing; walking at 3 mph = 1.34 m/s is 3.5 MET; running at 5 mph = 2.24 m/s is
#: 8.3 MET).
SPEED_LEVELS = (0.5, 1.34, 2.24)
#: Above this speed [m/s] (25 km/h, faster than recreational running) the person rides a vehicle:
#: speed then says nothing about their own effort, and counts as sedentary.
VEHICLE_MPS = 7.0
#: Standard deviation of the raw acceleration magnitude [m/s²] at 1 Hz where light / moderate /
#: vigorous start: ~0.05 g of fidgeting, ~0.15 g of walking, ~0.25 g of running foot strikes. Round
#: values in g, not fitted (chosen knowing the generator's traces, so measured agreement with it is
#: not independent evidence).
RAW_ACC_STD_LEVELS = (0.5, 1.5, 2.5)
#: Filtered uploads carry the acceleration after the local-level Kalman filter, which shrinks the
#: std of fast fluctuations: in steady state it is an exponential smoother with gain K, scaling a
#: white signal's std by sqrt(K / (2 − K)) (≈ 0.30 with q_acc = 0.02, r_acc = 0.8 at 1 Hz). The raw
#: thresholds are mapped through that factor, so they follow the filter's settings.
def _acc_attenuation(q: float = DEFAULT_PARAMS.q_acc, r: float = DEFAULT_PARAMS.r_acc, dt: float = 1.0) -> float:
    qd, r2 = q * dt, r * r
    prior = (qd + math.sqrt(qd * qd + 4.0 * qd * r2)) / 2.0  # steady-state prior variance
    k = prior / (prior + r2)
    return math.sqrt(k / (2.0 - k))


ACC_ATTENUATION = _acc_attenuation()
ACC_STD_LEVELS = tuple(v * ACC_ATTENUATION for v in RAW_ACC_STD_LEVELS)
#: A workout moment by heart rate: at least this share of the upload's heart-rate readings at or
#: above the vigorous bound (77 % of peak), the readings spanning at least WORKOUT_HR_MIN_S.
WORKOUT_HR_SHARE = 0.8
WORKOUT_HR_MIN_S = 30.0
#: Destinations closer than this [m] give no direction, so those readings are left out.
MIN_DIRECTION_M = 1.0


def features_stage(filtered: FilteredUpload, snapshot, source: str,
                   history: dict | None = None) -> tuple[FeatureRow | None, dict | None]:
    """(feature row, None), or (None, dead letter) when the row cannot be built or breaks its contract:
    the features agent never stops on one upload. `history`: the person's, see `next_history`."""
    try:
        row = state_features(filtered, snapshot.users.get(filtered["user_id"]), snapshot.stores_xy,
                             history=history)
        why = problem(FeatureRow, row)
    except Exception as exc:  # noqa: BLE001 - any failure becomes a dead letter, never a stopped agent
        row, why = None, f"features error: {exc.__class__.__name__}: {exc}"
    if why is None:
        return row, None
    return None, deadletter_record(json.dumps(filtered, default=str)[:10_000], f"features: {why}", source)


def next_history(history: dict | None, row: FeatureRow) -> dict:
    """The person's history after `row` (pure): {"last_workout_ts": epoch s} once a workout was seen,
    else {}. Keeps the latest workout end, so a late upload of an earlier moment never moves it back."""
    last = _last_workout_ts(history)
    if row.get("min_since_workout") == 0.0:  # this moment is (or ends no earlier than) a workout
        last = float(row["ts"]) if last is None else max(last, float(row["ts"]))
    return {} if last is None else {"last_workout_ts": last}


def _last_workout_ts(history: dict | None) -> float | None:
    if history is None:
        return None
    if not isinstance(history, dict):
        raise TypeError(f"history must be a dict, not {type(history).__name__}")
    last = history.get("last_workout_ts")
    if last is None:
        return None
    if isinstance(last, bool) or not isinstance(last, (int, float)) or not math.isfinite(last):
        raise ValueError(f"history.last_workout_ts must be a finite epoch, not {last!r}")
    return float(last)


def _nan_to_none(v: float) -> float | None:
    return None if v is None or math.isnan(v) else v


def _slope_per_minute(ts: np.ndarray, v: np.ndarray) -> float:
    if len(v) < 2 or ts[-1] - ts[0] <= 0:
        return 0.0
    t = (ts - ts[0]) / 60.0
    tm = t.mean()
    denom = ((t - tm) ** 2).sum()
    return float(((t - tm) * (v - v.mean())).sum() / denom) if denom > 0 else 0.0


def _level(value: float, bounds: tuple[float, float, float]) -> int:
    """0..3: how many of the ascending bounds `value` reaches."""
    return int(sum(value >= b for b in bounds))


def activity_level(acc_std: float, speed_mps: float, hr_pct_peak: float | None) -> int:
    """Ordinal activity level 0–3 (sedentary / light / moderate / vigorous) from the acceleration
    std, the speed and, where there is one, the heart rate. Each cue gives a level; the row gets the
    highest level that at least two cues reach (the second highest), so one misleading cue (GPS
    jitter read as walking, a vehicle's vibrations, a racing heart at rest) cannot raise it alone."""
    cues = [_level(acc_std, ACC_STD_LEVELS), SEDENTARY if speed_mps > VEHICLE_MPS else _level(speed_mps, SPEED_LEVELS)]
    if hr_pct_peak is not None:
        cues.append(_level(hr_pct_peak, HR_PCT_LEVELS))
    return sorted(cues)[-2]


def is_workout(ts: np.ndarray, hr_pct: np.ndarray, acc_std: float, speed_mps: float) -> bool:
    """A workout moment: heart rate at a vigorous share of peak (HR_PCT_LEVELS[2]) sustained over the
    upload (WORKOUT_HR_SHARE of the readings, spanning WORKOUT_HR_MIN_S), or, for phones without a
    heart rate, a running pace (SPEED_LEVELS[2] up to VEHICLE_MPS) with the body moving at least
    moderately (ACC_STD_LEVELS[1]). `hr_pct`: per reading, NaN where there is none."""
    ok = np.isfinite(hr_pct)
    if ok.sum() >= 2 and ts[ok][-1] - ts[ok][0] >= WORKOUT_HR_MIN_S:
        if (hr_pct[ok] >= HR_PCT_LEVELS[2]).mean() >= WORKOUT_HR_SHARE:
            return True
    return SPEED_LEVELS[2] <= speed_mps <= VEHICLE_MPS and acc_std >= ACC_STD_LEVELS[1]


def closing_speed(x: np.ndarray, y: np.ndarray, vx: np.ndarray, vy: np.ndarray, dest_x: float,
                  dest_y: float) -> float | None:
    """Mean over the readings of the velocity's component towards the destination [m/s]: positive
    when approaching it, negative when moving away, ~0 when passing by or still. None when the
    destination is unknown (NaN); 0.0 when every reading is on top of it."""
    return closing_speeds(x, y, vx, vy, np.array([[dest_x, dest_y]], dtype=float))[0]


def closing_speeds(x: np.ndarray, y: np.ndarray, vx: np.ndarray, vy: np.ndarray,
                   dests: np.ndarray) -> list[float | None]:
    """`closing_speed` for each row of dests (k, 2) in one pass (the stream pays numpy's per-call cost once)."""
    dx, dy = dests[:, :1] - x, dests[:, 1:] - y  # (k, n)
    r = np.hypot(dx, dy)
    far = r >= MIN_DIRECTION_M  # False where r is NaN too
    with np.errstate(invalid="ignore", divide="ignore"):
        radial = np.where(far, (vx * dx + vy * dy) / np.where(far, r, 1.0), 0.0)
    n_far = far.sum(axis=1)
    known = np.isfinite(dests).all(axis=1)
    return [None if not ok else (float(tot / n) if n else 0.0)
            for ok, tot, n in zip(known, radial.sum(axis=1), n_far)]


def state_features(filtered: FilteredUpload, user: dict | None, stores_xy: np.ndarray,
                   source: str = "stream", history: dict | None = None) -> FeatureRow:
    """One feature row from a filtered upload.

    user: {home_x, home_y, work_x, work_y, peak_hr}, or None for a person not in the snapshot yet
    (distances to home/work are then unknown and the peak heart rate is a population default);
    stores_xy: (n, 2) store positions; history: the person's memory from earlier uploads
    (`next_history`), None for a person never seen.
    """
    user = user or UNKNOWN_USER
    last_workout = _last_workout_ts(history)
    ts = np.asarray(filtered["ts"], dtype=float)
    x, y = np.asarray(filtered["x"], dtype=float), np.asarray(filtered["y"], dtype=float)
    vx, vy = np.asarray(filtered["vx"], dtype=float), np.asarray(filtered["vy"], dtype=float)
    acc = np.asarray(filtered["acc"], dtype=float)
    hr_raw = filtered.get("hr")
    hr = np.array([np.nan if v is None else v for v in hr_raw], dtype=float) if hr_raw is not None else np.array([])
    hr_ok = hr[np.isfinite(hr)] if hr.size else hr
    last = np.array([x[-1], y[-1]])
    mvx, mvy = float(vx.mean()), float(vy.mean())
    dt = datetime.fromtimestamp(float(ts[-1]), tz=timezone.utc)
    has_hr = hr_ok.size >= 2
    speed = float(np.hypot(vx, vy).mean())
    acc_std = float(acc.std())
    hr_pct_peak = float(100.0 * hr_ok.mean() / user["peak_hr"]) if has_hr else None
    hr_pct = 100.0 * hr / user["peak_hr"] if hr.size == len(ts) else np.full(len(ts), np.nan)
    if is_workout(ts, hr_pct, acc_std, speed):
        min_since_workout = 0.0
    elif last_workout is None:
        min_since_workout = None
    else:  # clamped: another device's moment may end a little before the workout just seen
        min_since_workout = max(0.0, (float(ts[-1]) - last_workout) / 60.0)
    dests = np.array([[user["home_x"], user["home_y"]], [user["work_x"], user["work_y"]], [np.nan, np.nan]], float)
    dist_store = None
    if len(stores_xy):
        store_d = np.hypot(*(stores_xy - last).T)
        nearest = int(store_d.argmin())
        dist_store, dests[2] = float(store_d[nearest]), stores_xy[nearest]
    approach_home, approach_work, approach_store = closing_speeds(x, y, vx, vy, dests)
    return {
        "event_id": filtered["event_id"],
        "user_id": filtered["user_id"],
        "device_id": filtered["device_id"],
        "device_type": filtered["device_type"],
        "ts": float(ts[-1]),
        "source": source,
        "speed_mps": speed,
        "heading_deg": float(math.degrees(math.atan2(mvy, mvx)) % 360.0),
        "dist_home_m": _nan_to_none(math.hypot(last[0] - user["home_x"], last[1] - user["home_y"])),
        "dist_work_m": _nan_to_none(math.hypot(last[0] - user["work_x"], last[1] - user["work_y"])),
        "dist_store_m": dist_store,
        "hr_pct_peak": hr_pct_peak,
        "hr_rate_bpm_per_min": _slope_per_minute(ts[np.isfinite(hr)], hr_ok) if has_hr else None,
        "activity": acc_std,
        "hour_of_day": dt.hour,
        "day_of_week": dt.weekday(),
        "n_readings": int(len(ts)),
        "spikes_rejected": int(filtered.get("spikes_rejected", 0)),
        "min_since_workout": min_since_workout,
        "activity_level": activity_level(acc_std, speed, hr_pct_peak),
        "approach_store_mps": approach_store,
        "approach_home_mps": approach_home,
        "approach_work_mps": approach_work,
        "x_m": float(last[0]),
        "y_m": float(last[1]),
    }
