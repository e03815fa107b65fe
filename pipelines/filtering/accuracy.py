"""Score a filter against synthetic ground truth: raw vs filtered RMSE and the improvement.

Why: the platform's synthetic population knows each person's true path, so filtering quality is a
number that can be tracked (and regress) like any other; this is that number.
"""

from __future__ import annotations

import numpy as np


def _as_points(a) -> np.ndarray:
    """(n,) or (n, d) → float array (n, d); None becomes NaN."""
    arr = np.asarray(a, dtype=object)
    arr = np.where(np.equal(arr, None), np.nan, arr).astype(float)
    if arr.ndim == 1:
        arr = arr[:, None]
    return arr


def _rmse(truth: np.ndarray, est: np.ndarray, keep: np.ndarray) -> float:
    err2 = np.sum((est - truth) ** 2, axis=1)
    ok = keep & np.isfinite(err2)
    return float(np.sqrt(np.mean(err2[ok]))) if ok.any() else float("nan")


def filtering_error(truth_xy, noisy_xy, filtered_xy, mask=None) -> dict:
    """RMSE of the raw readings and of the filtered estimates against the truth.

    Arrays are (n, 2) positions (or (n,) scalars such as heart rate); NaN / None entries (dropouts)
    are left out of their own RMSE. `mask` (bool, n) restricts the comparison, e.g. to readings
    without injected spikes so the raw RMSE is the Gaussian noise level, not dominated by outliers.
    RMSE is the root of the mean squared Euclidean error per reading.
    Returns {"n", "rmse_raw", "rmse_filtered", "ratio" (filtered / raw, < 1 is better),
    "improvement" (raw / filtered, > 1 is better)}.
    """
    t, z, f = _as_points(truth_xy), _as_points(noisy_xy), _as_points(filtered_xy)
    if not (t.shape == z.shape == f.shape):
        raise ValueError(f"shapes differ: truth {t.shape}, noisy {z.shape}, filtered {f.shape}")
    keep = np.ones(len(t), bool) if mask is None else np.asarray(mask, bool)
    raw = _rmse(t, z, keep)
    filt = _rmse(t, f, keep)
    return {
        "n": int(keep.sum()),
        "rmse_raw": raw,
        "rmse_filtered": filt,
        "ratio": filt / raw if raw > 0 else float("nan"),
        "improvement": raw / filt if filt > 0 else float("inf"),
    }
