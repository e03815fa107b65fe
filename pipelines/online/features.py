"""State features from one filtered sensor upload: the state vector V(state) the OSR score uses.

Computed the same way in the stream (features agent) and in batch backfills of
history, so the propensity model is trained on exactly what it is served.
"""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone

import numpy as np

from pipelines.contracts import STATE_VECTOR, FeatureRow, FilteredUpload, fields, problem
from pipelines.ingest.validation import deadletter_record

#: The state vector, in the order models see it (declared once, in pipelines.contracts.FeatureRow).
NUMERIC_FEATURES = STATE_VECTOR
FEATURE_COLUMNS = fields(FeatureRow)


#: Stand-in for a person the snapshot does not know yet (NaN destinations, a typical peak heart rate).
UNKNOWN_USER = {"home_x": math.nan, "home_y": math.nan, "work_x": math.nan, "work_y": math.nan, "peak_hr": 185.0}


def features_stage(filtered: FilteredUpload, snapshot, source: str) -> tuple[FeatureRow | None, dict | None]:
    """(feature row, None), or (None, dead letter) when the row cannot be built or breaks its contract:
    the features agent never stops on one upload."""
    try:
        row = state_features(filtered, snapshot.users.get(filtered["user_id"]), snapshot.stores_xy)
        why = problem(FeatureRow, row)
    except Exception as exc:  # noqa: BLE001 - any failure becomes a dead letter, never a stopped agent
        row, why = None, f"features error: {exc.__class__.__name__}: {exc}"
    if why is None:
        return row, None
    return None, deadletter_record(json.dumps(filtered, default=str)[:10_000], f"features: {why}", source)


def _nan_to_none(v: float) -> float | None:
    return None if v is None or math.isnan(v) else v


def _slope_per_minute(ts: np.ndarray, v: np.ndarray) -> float:
    if len(v) < 2 or ts[-1] - ts[0] <= 0:
        return 0.0
    t = (ts - ts[0]) / 60.0
    tm = t.mean()
    denom = ((t - tm) ** 2).sum()
    return float(((t - tm) * (v - v.mean())).sum() / denom) if denom > 0 else 0.0


def state_features(filtered: FilteredUpload, user: dict | None, stores_xy: np.ndarray,
                   source: str = "stream") -> FeatureRow:
    """One feature row from a filtered upload.

    user: {home_x, home_y, work_x, work_y, peak_hr}, or None for a person not in the snapshot yet
    (distances to home/work are then unknown and the peak heart rate is a population default);
    stores_xy: (n, 2) store positions.
    """
    user = user or UNKNOWN_USER
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
    return {
        "event_id": filtered["event_id"],
        "user_id": filtered["user_id"],
        "device_id": filtered["device_id"],
        "device_type": filtered["device_type"],
        "ts": float(ts[-1]),
        "source": source,
        "speed_mps": float(np.hypot(vx, vy).mean()),
        "heading_deg": float(math.degrees(math.atan2(mvy, mvx)) % 360.0),
        "dist_home_m": _nan_to_none(math.hypot(last[0] - user["home_x"], last[1] - user["home_y"])),
        "dist_work_m": _nan_to_none(math.hypot(last[0] - user["work_x"], last[1] - user["work_y"])),
        "dist_store_m": float(np.hypot(*(stores_xy - last).T).min()) if len(stores_xy) else None,
        "hr_pct_peak": float(100.0 * hr_ok.mean() / user["peak_hr"]) if has_hr else None,
        "hr_rate_bpm_per_min": _slope_per_minute(ts[np.isfinite(hr)], hr_ok) if has_hr else None,
        "activity": float(acc.std()),
        "hour_of_day": dt.hour,
        "day_of_week": dt.weekday(),
        "n_readings": int(len(ts)),
        "spikes_rejected": int(filtered.get("spikes_rejected", 0)),
    }
