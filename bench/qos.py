"""QoS prediction benchmark: accuracy (MAE / NMAE) and wall time of every model at each training density.

Datasets:
  real       the real dense 150 x 500 WS-DREAM response-time block (service locations known,
             user locations not: omega = 1 on the user side)
  generated  the seeded full-size 339 x 5,825 matrix on the real locations (pipelines.qos.generate)

Prints progress on stderr and one JSON object on the last stdout line (--out: also to a file).
Wall times are of fit + predict on this machine; its 2 cores are shared with other work, so
every figure comes with the load average seen around the run.

  python bench/qos.py --dataset generated --densities 0.05,0.10,0.15,0.20 --repeats 2 --json
  python bench/qos.py --ablation --dataset all              # pipelines.qos.ablation on real, RT and TP
  python bench/qos.py --paired --dataset real --repeats 100 # the paper's repeat protocol + paired tests
  python bench/qos.py --sensitivity --plots docs/img        # Fig. 6-7: lambda and K, paper and tuned
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipelines.qos import ablation, data, evaluate, generate, sensitivity  # noqa: E402
from pipelines.qos.models import RWConfig  # noqa: E402

ALL_MODELS = ("UMean,IMean,UPCC,IPCC,UIPCC,LACF,MF,UL-RW-paper,SL-RW-paper,HL-RW-paper,"
              "UL-RW-tuned,SL-RW-tuned,HL-RW-tuned,HL-RW+MF")
SPEED_MODELS = "UPCC,UIPCC,HL-RW-paper,HL-RW-tuned"
BASELINES = ("UMean", "IMean", "UPCC", "IPCC", "UIPCC", "LACF", "MF")
#: The paper's HL-RW running times (s) at 5 / 10 / 15 / 20 %, and the issue's targets (100x faster).
PAPER_HLRW_SECONDS = {0.05: 418, 0.10: 789, 0.15: 1152, 0.20: 1510}
TARGET_HLRW_SECONDS = {dens: secs / 100 for dens, secs in PAPER_HLRW_SECONDS.items()}


def log(msg: str) -> None:
    print(f"[bench/qos {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def load_real() -> data.QoSData:
    w = generate.wsdream_dir()
    return data.load(w / "rt_subset_150x500.txt.gz", services=w / "wslist.txt.gz",
                     service_index=w / "cloudrank_services.txt")


def run_dataset(name: str, d: data.QoSData, densities: list[float], models: list[str], repeats: int, seed: int,
                cfg: RWConfig) -> dict:
    out = {"shape": list(d.shape), "metric": d.metric, "location": d.location_aware, "densities": {}}
    for dens in densities:
        load_before = os.getloadavg()[0]
        t0 = time.perf_counter()
        r = evaluate.evaluate(d, models, dens, repeats=repeats, seed=seed, cfg=cfg, progress=True)
        out["densities"][f"{dens:.2f}"] = {
            "models": {m: {k: v[k] for k in ("mae", "nmae", "seconds", "cpu_seconds", "mae_std")} | {
                "seconds_runs": [round(x["seconds"], 3) for x in v["runs"]],
                "mae_runs": [x["mae"] for x in v["runs"]]} for m, v in r["models"].items()},
            "load_avg_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
            "wall_seconds": round(time.perf_counter() - t0, 1),
        }
        log(f"{name} density {dens}: done in {time.perf_counter() - t0:.0f}s")
    return out


def speed_summary(gen: dict) -> dict:
    """Each HL-RW's time against the paper's Table 5 and the 1/100 target, beside UPCC / UIPCC of the same run."""
    out = {}
    for key, v in gen["densities"].items():
        ms = v["models"]
        dens = round(float(key), 2)
        row = {"paper_seconds": PAPER_HLRW_SECONDS.get(dens), "target_seconds": TARGET_HLRW_SECONDS.get(dens),
               "load_avg_1min": v["load_avg_1min"]}
        for name in ("HL-RW-paper", "HL-RW-tuned", "HL-RW"):
            if name not in ms:
                continue
            hl = ms[name]["seconds"]
            row[name] = {"seconds": round(hl, 2), "seconds_min": min(ms[name]["seconds_runs"]),
                         "cpu_seconds": round(ms[name]["cpu_seconds"], 2)}
            if row["paper_seconds"]:
                row[name]["speedup_vs_paper"] = round(row["paper_seconds"] / hl, 1)
                row[name]["meets_target"] = hl <= row["target_seconds"]
        for base in ("UPCC", "UIPCC"):
            if base in ms:
                row[base] = {"seconds": round(ms[base]["seconds"], 2), "cpu_seconds": round(ms[base]["cpu_seconds"], 2)}
        out[key] = row
    return out


def paired_tests(block: dict) -> dict:
    """Per density: paired t-test and Wilcoxon signed-rank of each HL-RW against each baseline (per-repeat MAE)."""
    from scipy import stats

    out = {}
    for key, v in block["densities"].items():
        ms = v["models"]
        rows = {}
        for hl in ("HL-RW-paper", "HL-RW-tuned"):
            if hl not in ms:
                continue
            a = np.asarray(ms[hl]["mae_runs"])
            for base in BASELINES:
                if base not in ms or len(a) < 2:
                    continue
                b = np.asarray(ms[base]["mae_runs"])
                t = stats.ttest_rel(a, b)
                diff = b - a
                w = stats.wilcoxon(a, b) if np.any(diff != 0) else None
                rows[f"{hl} vs {base}"] = {
                    "mean_gain": float(diff.mean()), "wins": int((diff > 0).sum()), "n": len(a),
                    "t": float(t.statistic), "p_t": float(t.pvalue), "p_wilcoxon": None if w is None else float(w.pvalue)}
        out[key] = rows
    return out


def datasets(which: str, metric: str, gen_seed: int):
    """(name, QoSData) pairs: real, generated (of --metric), or all = real + generated RT + generated TP."""
    if which in ("real", "both", "all"):
        yield "real", load_real()
    metrics = ("rt", "tp") if which == "all" else (metric,)
    if which in ("generated", "both", "all"):
        for m in metrics:
            t0 = time.perf_counter()
            d = generate.generate(m, seed=gen_seed)
            log(f"generated {m} {d.shape} in {time.perf_counter() - t0:.1f}s (mean {np.nanmean(d.values):.3f})")
            yield f"generated_{m}", d


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", choices=["real", "generated", "both", "all"], default="both")
    p.add_argument("--metric", choices=["rt", "tp"], default="rt", help="metric of the generated matrix")
    p.add_argument("--densities", default="0.05,0.10,0.15,0.20")
    p.add_argument("--repeats", type=int, default=None, help="default: 5 on real, 2 on generated (ablation: 5 / 1)")
    p.add_argument("--models", default=None, help=f"default: {ALL_MODELS} (--speed: {SPEED_MODELS})")
    p.add_argument("--noloc", action="store_true",
                   help="also run the paper's and the tuned HL-RW with the location weight and AS-first off")
    p.add_argument("--speed", action="store_true", help="time HL-RW-paper / -tuned beside UPCC / UIPCC")
    p.add_argument("--ablation", action="store_true", help="the ablation table (pipelines.qos.ablation)")
    p.add_argument("--paired", action="store_true", help="add paired tests of each HL-RW against each baseline")
    p.add_argument("--sensitivity", action="store_true", help="lambda and K sweeps (the paper's Fig. 6-7)")
    p.add_argument("--plots", default=None, help="with --sensitivity: folder for the PNG plots")
    p.add_argument("--parallel-sides", action="store_true",
                   help="HL-RW: compute the user and service sides in two threads (one BLAS thread each)")
    p.add_argument("--seed", type=int, default=1, help="seed of the splits")
    p.add_argument("--gen-seed", type=int, default=1, help="seed of the generated matrix")
    p.add_argument("--out", default=None, help="also write the JSON to this file")
    p.add_argument("--json", action="store_true", help="(always on) one JSON object on the last line")
    args = p.parse_args(argv)

    densities = [float(x) for x in args.densities.split(",")]
    models = [m for m in (args.models or (SPEED_MODELS if args.speed else ALL_MODELS)).split(",") if m]
    if args.noloc:
        models += [f"{m}-noloc" for m in ("HL-RW-paper", "HL-RW-tuned") if m in models]
    result = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
                    "threads": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")}},
        "paper_params": vars(RWConfig.paper()), "tuned_params": vars(RWConfig.tuned()), "seed": args.seed,
        "note": "wall times on a 2-core machine shared with other agents; see load_avg_1min per density",
    }
    for name, d in datasets(args.dataset, args.metric, args.gen_seed):
        real = name == "real"
        if args.ablation:
            t0, l0 = time.perf_counter(), os.getloadavg()[0]
            result[name] = {"shape": list(d.shape), "metric": d.metric, "location": d.location_aware,
                            "ablation": ablation.run(d, densities, args.repeats or (5 if real else 1), args.seed,
                                                     progress=log),
                            "load_avg_1min": [round(l0, 2), round(os.getloadavg()[0], 2)],
                            "wall_seconds": round(time.perf_counter() - t0, 1)}
        elif args.sensitivity:
            result[name] = sensitivity.run(d, densities, args.repeats or 1, args.seed, progress=log)
            if args.plots:
                result[name]["plots"] = sensitivity.plot(result[name], args.plots, name)
        else:
            block = run_dataset(name, d, densities, models, args.repeats or (5 if real else 2), args.seed,
                                RWConfig(parallel_sides=args.parallel_sides))
            if not real:
                block["gen_seed"] = args.gen_seed
                block["speed"] = speed_summary(block)
            if args.paired:
                block["paired"] = paired_tests(block)
            result[name] = block
        if args.out:
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            Path(args.out).write_text(json.dumps(result, indent=1))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
