"""The paper's evaluation protocol: train at a matrix density, test on the rest, repeat with seeds.

Protocol (as the WS-DREAM reference code does it):

1. For repeat r, a generator seeded with (seed, r, density) keeps round(density * m * n)
   cells of the whole m x n matrix, uniformly at random;
2. training = kept cells that are observed; test = every other observed cell;
3. each model predicts the full matrix from the training cells alone;
4. MAE = mean |qhat - q| over the test cells; NMAE = MAE / mean(q over the test cells);
5. seconds = wall time of the model's fit-and-predict; cpu_seconds = the process's CPU time
   over it (all its threads). CPU is shared with other work on this machine: under load the
   wall time of a one-thread run exceeds its CPU time, which is then the better guide;
6. the report gives the mean over repeats, plus the per-repeat figures.
"""

from __future__ import annotations

import sys
import time
from dataclasses import replace

import numpy as np

from pipelines.qos.data import QoSData
from pipelines.qos.models import RWConfig, make


def split(values: np.ndarray, density: float, seed: int, repeat: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(train mask, test mask) for one repeat; both are subsets of the observed cells."""
    if not 0.0 < density < 1.0:
        raise ValueError("density must be in (0, 1)")
    observed = ~np.isnan(values)
    rng = np.random.default_rng([seed, repeat, int(round(density * 1e6))])
    size = values.size
    keep = np.zeros(size, dtype=bool)
    keep[rng.permutation(size)[: int(round(density * size))]] = True
    keep = keep.reshape(values.shape)
    return keep & observed, ~keep & observed


def mae(pred: np.ndarray, actual: np.ndarray) -> float:
    return float(np.mean(np.abs(pred - actual)))


def nmae(pred: np.ndarray, actual: np.ndarray) -> float:
    return mae(pred, actual) / float(np.mean(actual))


def evaluate(data: QoSData, models: list[str], density: float, repeats: int = 5, seed: int = 1,
             cfg: RWConfig | None = None, progress: bool = False) -> dict:
    """Run the protocol; returns {"models": {name: {mae, nmae, seconds, runs: [...]}, ...}, ...}."""
    cfg = cfg or RWConfig()
    runs: dict[str, list[dict]] = {m: [] for m in models}
    infos: dict[str, dict] = {}
    for rep in range(repeats):
        train_mask, test_mask = split(data.values, density, seed, rep)
        train = replace(data, values=np.where(train_mask, data.values, np.nan))
        actual = data.values[test_mask]
        for name in models:
            model = make(name, cfg)
            t0, c0 = time.perf_counter(), time.process_time()
            pred = model.fit_predict(train)
            secs, cpu = time.perf_counter() - t0, time.process_time() - c0
            p = pred[test_mask]
            if not np.isfinite(p).all():
                raise RuntimeError(f"{name} produced non-finite predictions")
            runs[name].append({"repeat": rep, "mae": mae(p, actual), "nmae": nmae(p, actual), "seconds": secs,
                               "cpu_seconds": cpu})
            infos[name] = model.info
            if progress:
                r = runs[name][-1]
                print(f"[qos eval] density={density} repeat={rep} {name}: mae={r['mae']:.4f} nmae={r['nmae']:.4f} "
                      f"{secs:.2f}s", file=sys.stderr, flush=True)
    out = {}
    for name, rs in runs.items():
        out[name] = {
            "mae": float(np.mean([r["mae"] for r in rs])),
            "nmae": float(np.mean([r["nmae"] for r in rs])),
            "seconds": float(np.mean([r["seconds"] for r in rs])),
            "cpu_seconds": float(np.mean([r["cpu_seconds"] for r in rs])),
            "mae_std": float(np.std([r["mae"] for r in rs])),
            "runs": rs,
        }
        if infos.get(name):
            out[name]["info"] = infos[name]
    aware = data.location_aware
    notes = []
    for side in ("users", "services"):
        if not aware[side]:
            notes.append(f"no {side[:-1]} locations: omega = 1 and no AS-first selection on the {side[:-1]} side")
    return {
        "shape": list(data.shape),
        "metric": data.metric,
        "density": density,
        "repeats": repeats,
        "seed": seed,
        "location": {"users": aware["users"], "services": aware["services"],
                     "note": "; ".join(notes) if notes else "locations known on both sides"},
        "params": {k: v for k, v in vars(cfg).items()},
        "models": out,
    }
