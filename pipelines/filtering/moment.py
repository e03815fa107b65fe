"""One person's moment, filtered: the uploads of all their devices for the same window, fused.

Why fuse before anything else: the paper's state is a person's state, not a device's. A phone
and a watch see the same path with their own noise; scoring them as two moments would push
twice and weigh the noisier device as much as the better one. Positions go through the
consensus Kalman filter over the devices (`consensus.fuse_devices`, Olfati-Saber's
distributed KF, which reaches the centralized estimate on a phone+watch pair); heart rate
comes from the device that measures it (level-and-trend filter), acceleration from the
devices' mean (random-walk filter). Each filter's state is the person's, carried from moment
to moment in the stream's table and in the backfill alike.

The output keeps the FilteredUpload shape (pipelines.contracts), on the fusion's 1 s grid, so
features are computed by the same code for a fused moment and for history.
"""

from __future__ import annotations

import math

import numpy as np

from pipelines.contracts import FilteredUpload, Upload, event_id_for
from pipelines.filtering.consensus import fuse_devices
from pipelines.filtering.kalman import DEFAULT_PARAMS, filter_level_trend, filter_random_walk


def moment_of(upload: Upload) -> str:
    """The moment an upload reports: its event id without the device scope ("<device_id>:<moment>")."""
    return upload["event_id"][len(upload["device_id"]) + 1:]


def moment_id(user_id: str, moment: str) -> str:
    """The fused moment's id, scoped to the person like an upload's is to its device."""
    return event_id_for(user_id, moment)


def _nan_list(values) -> np.ndarray:
    return np.array([math.nan if v is None else v for v in values], dtype=float)


def _on_grid(ts: list[float], values: np.ndarray, grid: list[float]) -> list[float | None]:
    """Values at the grid times: interpolated between known readings, None where none is near."""
    t = np.asarray(ts, float)
    ok = np.isfinite(values)
    if not ok.any():
        return [None] * len(grid)
    out = np.interp(grid, t[ok], values[ok])
    return out.tolist()


def filter_moment(user_id: str, moment: str, uploads: list[Upload], state: dict | None
                  ) -> tuple[FilteredUpload, dict]:
    """(fused moment, new person filter state) from the uploads of one moment (any order, ≥ 1).

    Raises ValueError when no upload has a usable position fix (the caller dead-letters them).
    state: {"fusion", "hr", "acc"} as returned last time for this person, or None.
    """
    st = state or {}
    ups = sorted(uploads, key=lambda u: u["device_id"])
    fused, fusion_state = fuse_devices({u["device_id"]: u for u in ups}, st.get("fusion"))
    if not fused["ts"]:
        raise ValueError("no usable position fix in any device's upload of this moment")
    grid = fused["ts"]
    p = DEFAULT_PARAMS

    # heart rate: the device that measured most of it (a watch), through its level-and-trend filter
    hr_up = max(ups, key=lambda u: sum(v is not None for v in (u.get("hr") or ())))
    hr_in = hr_up.get("hr") or [None] * len(hr_up["ts"])
    hr, hr_state = filter_level_trend(hr_up["ts"], hr_in, st.get("hr"), p.q_hr, p.r_hr,
                                      trend_std=p.init_hr_trend_std, gap_reset_s=p.gap_reset_s,
                                      bounds=p.hr_bounds)
    # acceleration: the devices' mean where they share timestamps (they do within a moment), else the first's
    base = ups[0]
    same_ts = all(u["ts"] == base["ts"] for u in ups)
    acc_raw = np.nanmean(np.stack([_nan_list(u["acc"]) for u in ups]), axis=0) if same_ts else _nan_list(base["acc"])
    acc_in = [None if not math.isfinite(v) else float(v) for v in acc_raw]
    acc, acc_state = filter_random_walk(base["ts"], acc_in, st.get("acc"), p.q_acc, p.r_acc,
                                        gap_reset_s=p.gap_reset_s)

    hr_grid = _on_grid(hr_up["ts"], _nan_list(hr), grid)
    acc_grid = _on_grid(base["ts"], _nan_list(acc), grid)
    filtered: FilteredUpload = {
        "event_id": moment_id(user_id, moment),
        "user_id": user_id,
        "device_id": "+".join(u["device_id"] for u in ups),
        "device_type": "+".join(sorted({u["device_type"] for u in ups})),
        "ts": grid, "x": fused["x"], "y": fused["y"], "vx": fused["vx"], "vy": fused["vy"],
        "hr": hr_grid, "acc": [0.0 if v is None else v for v in acc_grid],
        "rejected": [n == 0 for n in fused["n_fixes"]],
        "spikes_rejected": int(fused["spikes_rejected"]),
    }
    new_state = {"fusion": fusion_state,
                 "hr": hr_state if hr_state is not None else st.get("hr"),
                 "acc": acc_state if acc_state is not None else st.get("acc")}
    return filtered, new_state
