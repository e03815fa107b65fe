"""The ablation: from the paper's HL-RW, switch on one departure of the tuned model at a time.

Why: the tuned model differs from the paper in several ways at once (models.DEPARTURES), and
the location weight, the walk and AS-first selection are claimed to help; only a table that
moves one part at a time says which part buys what. Rows:

    paper                      RWConfig.paper()  (= HL-RW-paper)
    + <departure>              the paper's config with that one field at its tuned value
    tuned                      every departure on (= HL-RW-tuned)
    <end> - AS-first           AS-first neighbour selection off
    <end> - omega              the location weight off (omega = 1), AS-first kept
    <end> - walk               s* = s: no random walk at all (and so no omega)

Each row runs the HL-RW pipeline once per split and reports the user side (UL-RW), the service
side (SL-RW) and the hybrid (HL-RW): the sides cost nothing extra. Rows that differ only after
the final similarity (K, lambda, prediction form, AS-first) share one s* per side and split, so
the walk is solved once per distinct similarity (the results are the same as separate fits).
"""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np

from pipelines.qos import evaluate, neighbours, similarity
from pipelines.qos.data import QoSData
from pipelines.qos.models import DEPARTURES, RWConfig, SideResult, departed, hybrid, rw_final_similarity


def rows() -> list[tuple[str, RWConfig]]:
    """(label, config) of every ablation row; the first is the paper's model, the tuned one follows the departures."""
    paper, tuned = RWConfig.paper(), RWConfig.tuned()
    out = [("paper", paper)]
    out += [(f"+ {name}", departed(field)) for name, field, _ in DEPARTURES]
    out.append(("tuned (all departures)", tuned))
    for end, cfg in (("paper", paper), ("tuned", tuned)):
        out += [(f"{end} - AS-first", replace(cfg, as_first=False)),
                (f"{end} - omega", replace(cfg, omega=False)),
                (f"{end} - walk", replace(cfg, final_form="direct"))]
    return out


#: Fields that act only after the final similarity s* (rows differing only in these share it).
AFTER_SIMILARITY = ("k", "lam", "predict_form", "scope", "as_first", "pool", "beta", "parallel_sides")


def _similarity_key(cfg: RWConfig) -> tuple:
    return tuple((f, v) for f, v in sorted(vars(cfg).items()) if f not in AFTER_SIMILARITY)


def _side(values, mask, loc, cfg: RWConfig, cache: dict, key) -> SideResult:
    if key not in cache:
        cache.clear()  # rows are grouped by key: keep one s* per side at a time (136 MB each at full size)
        cache[key] = rw_final_similarity(values, mask, loc, replace(cfg, as_first=True))
    s_star, same = cache[key]
    same = same if (cfg.as_first and cfg.location) else None
    prio = neighbours.priorities(s_star, same)
    base = similarity.row_means(values, mask)
    pred, has = neighbours.predict(s_star, prio, values, mask, base, cfg.k, cfg.pool, form=cfg.predict_form,
                                   scope=cfg.scope)
    return SideResult(pred, has)


def run(data: QoSData, densities: list[float], repeats: int = 1, seed: int = 1, only: list[str] | None = None,
        progress=None) -> dict:
    """MAE of UL / SL / HL for every row at every density: {density: {label: {ul, sl, hl, seconds}}}."""
    chosen = [(lab, cfg) for lab, cfg in rows() if not only or lab in only]
    order = sorted(range(len(chosen)), key=lambda i: str(_similarity_key(chosen[i][1])))
    table: dict[str, dict] = {}
    for dens in densities:
        acc: dict[str, dict[str, list]] = {}
        for rep in range(repeats):
            train_mask, test_mask = evaluate.split(data.values, dens, seed, rep)
            vals = np.where(train_mask, data.values, np.nan)
            actual = data.values[test_mask]
            cache_u: dict = {}
            cache_s: dict = {}
            for i in order:
                label, cfg = chosen[i]
                key = _similarity_key(cfg)
                t0 = time.perf_counter()
                u = _side(vals, train_mask, data.users, cfg, cache_u, key)
                s = _side(vals.T, train_mask.T, data.services, cfg, cache_s, key)
                hl = hybrid(u, s, cfg.lam_for(data.metric))
                secs = time.perf_counter() - t0
                a = acc.setdefault(label, {"ul": [], "sl": [], "hl": [], "seconds": []})
                a["ul"].append(evaluate.mae(u.pred[test_mask], actual))
                a["sl"].append(evaluate.mae(s.pred.T[test_mask], actual))
                a["hl"].append(evaluate.mae(hl[test_mask], actual))
                a["seconds"].append(secs)
                if progress:
                    progress(f"ablation {data.metric} {dens:.2f} rep {rep} {label}: HL {a['hl'][-1]:.4f} "
                             f"UL {a['ul'][-1]:.4f} SL {a['sl'][-1]:.4f} ({secs:.1f}s)")
        table[f"{dens:.2f}"] = {lab: {k: float(np.mean(v)) for k, v in acc[lab].items()} | {"hl_runs": acc[lab]["hl"]}
                                for lab, _ in chosen if lab in acc}
    return table
