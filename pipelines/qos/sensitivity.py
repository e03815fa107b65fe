"""Sensitivity of HL-RW to lambda and K (the paper's Fig. 6 and 7), for the paper's and the tuned model.

Why its own module: a sweep refits nothing it does not have to -- each side's final similarity
s* is computed once per split, the neighbour search once per K, and every lambda is a blend of
the two sides' predictions at the model's own K (Fig. 6); Fig. 7 sweeps K = 1..10 at the model's
own lambda. Figures are NMAE, as in the paper's plots (MAE alongside).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipelines.qos import evaluate, neighbours, similarity
from pipelines.qos.data import QoSData
from pipelines.qos.models import RWConfig, SideResult, hybrid, rw_final_similarity

LAMBDAS = tuple(round(x, 1) for x in np.linspace(0.0, 1.0, 11))
KS = tuple(range(1, 11))
VARIANTS = {"paper": RWConfig.paper, "tuned": RWConfig.tuned}


def _side_preds(values, mask, loc, cfg: RWConfig, ks) -> dict[int, SideResult]:
    s_star, same = rw_final_similarity(values, mask, loc, cfg)
    prio = neighbours.priorities(s_star, same)
    base = similarity.row_means(values, mask)
    out = {}
    for k in ks:
        pred, has = neighbours.predict(s_star, prio, values, mask, base, k, cfg.pool, form=cfg.predict_form,
                                       scope=cfg.scope)
        out[k] = SideResult(pred, has)
    return out


def run(data: QoSData, densities: list[float], repeats: int = 1, seed: int = 1, progress=None) -> dict:
    """{"lambda": {variant: {density: [nmae per LAMBDAS]}}, "k": {...: [nmae per KS]}, plus the MAE forms}."""
    out: dict = {"lambdas": list(LAMBDAS), "ks": list(KS), "metric": data.metric, "shape": list(data.shape)}
    for key in ("lambda_nmae", "lambda_mae", "k_nmae", "k_mae"):
        out[key] = {v: {} for v in VARIANTS}
    for dens in densities:
        for variant, make_cfg in VARIANTS.items():
            cfg = make_cfg()
            acc = {key: [] for key in ("lambda_nmae", "lambda_mae", "k_nmae", "k_mae")}
            for rep in range(repeats):
                train_mask, test_mask = evaluate.split(data.values, dens, seed, rep)
                vals = np.where(train_mask, data.values, np.nan)
                actual = data.values[test_mask]
                u = _side_preds(vals, train_mask, data.users, cfg, KS)
                s = _side_preds(vals.T, train_mask.T, data.services, cfg, KS)
                lam0 = cfg.lam_for(data.metric)
                lam_preds = [hybrid(u[cfg.k], s[cfg.k], lam)[test_mask] for lam in LAMBDAS]
                k_preds = [hybrid(u[k], s[k], lam0)[test_mask] for k in KS]
                acc["lambda_mae"].append([evaluate.mae(p, actual) for p in lam_preds])
                acc["lambda_nmae"].append([evaluate.nmae(p, actual) for p in lam_preds])
                acc["k_mae"].append([evaluate.mae(p, actual) for p in k_preds])
                acc["k_nmae"].append([evaluate.nmae(p, actual) for p in k_preds])
                if progress:
                    progress(f"sensitivity {data.metric} {dens:.2f} {variant} rep {rep}: "
                             f"best lambda {LAMBDAS[int(np.argmin(acc['lambda_mae'][-1]))]}, "
                             f"best K {KS[int(np.argmin(acc['k_mae'][-1]))]}")
            for key, rows in acc.items():
                out[key][variant][f"{dens:.2f}"] = [float(x) for x in np.mean(rows, axis=0)]
    return out


def plot(result: dict, folder: str | Path, name: str) -> list[str]:
    """Two PNGs per dataset (lambda, K): one line per (variant, density), NMAE on the y axis."""
    from pipelines.qos.plot import line_chart

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    metric = {"rt": "response time", "tp": "throughput"}.get(result["metric"], result["metric"])
    for key, xs, xlabel, fig in (("lambda_nmae", result["lambdas"], "lambda", "Fig. 6"),
                                 ("k_nmae", result["ks"], "K", "Fig. 7")):
        series = []
        for variant in VARIANTS:
            for dens, ys in result[key][variant].items():
                series.append((f"{variant} {float(dens):.0%}", xs, ys, variant == "tuned"))
        path = folder / f"qos_{name}_{xlabel.lower()}.png"
        where = name.split("_")[0]  # "real", "generated" (the metric is named after it)
        line_chart(path, series, title=f"HL-RW sensitivity to {xlabel} ({fig}): {where} {metric}",
                   xlabel=xlabel, ylabel="NMAE")
        paths.append(str(path))
    return paths
