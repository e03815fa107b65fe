"""Repartitioning benchmark: the paper's defaults, its parameter sweeps (Figs. 6-12) and adaptive vs
periodic repartitioning (Figs. 14-15), offline (pipelines.partitioning.simulate).

Prints progress on stderr and one JSON object on the last stdout line.
  python bench/repartition.py --json                       # defaults: N=16, 6 types, Z=1, alpha=0.5, k=10, sd=0.1
  python bench/repartition.py --sweeps --plots docs/img    # + sweeps and adaptive runs, PNGs
  python bench/repartition.py --json --live                # + live migrations on a real broker (2 workers)
migration_pause_p99_s comes from --live: its own Kafka broker, topics and two Faust workers on free
ports under a temporary OSR_HOME (all stopped by pid at the end), CDRs streamed at --live-rate while
--live-checks repartitioning checks run as the DAG runs them (pipelines.partitioning.runs.check:
the nodes' micro-cluster summaries -> trigger -> greedy plan -> migration; the first one forced);
the pause of a moving profile is how long its first held update waited for the profile's state
(Installed acks). Without --live it is null. With --plots, the recorded runs' qualities over time
go to repartition_history.png.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipelines.partitioning import clustering, hashing, microclusters, quality, trigger  # noqa: E402
from pipelines.partitioning.profiles import Window, WindowCounts  # noqa: E402
from pipelines.partitioning.repartition import RepartitionParams, repartition  # noqa: E402
from pipelines.partitioning.simulate import SimParams, run_static  # noqa: E402
from pipelines.partitioning.workload import Workload, WorkloadParams  # noqa: E402
from pipelines.qos.plot import PALETTE, text, write_png  # noqa: E402

KEYS = ("overall_quality", "cluster_quality", "balance_quality", "migration_quality")


def log(msg: str) -> None:
    print(f"[bench/repartition {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def defaults(steps: int) -> dict:
    t = time.perf_counter()
    r = run_static(WorkloadParams(), RepartitionParams(), SimParams(steps=steps), progress=log)
    r["wall_seconds"] = time.perf_counter() - t
    r["migration_pause_p99_s"] = None
    r["migration_pause_note"] = "measured with --live (real broker, two Faust workers), not by this offline run"
    r["targets"] = {"overall_minus_hash>=0.3": r["overall_quality"] - r["hash_overall_quality"] >= 0.3,
                    "cluster_quality>=0.85": r["cluster_quality"] >= 0.85,
                    "partition_seconds<1 (16k profiles)": r["partition_seconds_max"] < 1.0}
    return r


SWEEPS = {
    "nodes": ("n_nodes", [2, 4, 8, 16, 32], "w"),
    "alpha": ("alpha", [0.0, 0.25, 0.5, 0.75, 1.0], "r"),
    "zipf": ("zipf", [0.0, 0.5, 1.0, 1.5, 2.0], "w"),
    "types": ("n_types", [2, 4, 6, 8, 12], "w"),
    "k": ("k_neighbours", [1, 5, 10, 20, 40], "r"),
    "sd": ("spread", [0.05, 0.1, 0.2, 0.4], "w"),
}


def sweep(name: str, size: int, steps: int) -> list[dict]:
    field, values, where = SWEEPS[name]
    out = []
    for v in values:
        wp = WorkloadParams(customers_per_node=size, cdrs_per_node=size * 100)
        rp = RepartitionParams()
        if where == "w":
            wp = dataclasses.replace(wp, **{field: v})
        else:
            rp = dataclasses.replace(rp, **{field: v})
        r = run_static(wp, rp, SimParams(steps=steps))
        row = {field: v, **{k: r[k] for k in KEYS}, "hash_overall_quality": r["hash_overall_quality"],
               "hash_cluster_quality": r["hash_cluster_quality"],
               "type_contiguous_cluster_quality": r["type_contiguous_cluster_quality"],
               "partition_seconds": r["partition_seconds"], "microcluster_seconds": r["microcluster_seconds"]}
        log(f"sweep {name} {field}={v}: " + ", ".join(f"{k}={row[k]:.3f}" for k in KEYS))
        out.append(row)
    return out


def adaptive(speed: str, shift_probability: float, n_nodes: int = 4, steps: int = 24, period: int = 4) -> dict:
    """Fig. 14-15: per-node NMI vs the last repartitioning's micro-clustering, for three policies."""
    res = {}
    for policy in ("adaptive", "periodic", "none"):
        wp = WorkloadParams(n_nodes=n_nodes, shift_probability=shift_probability, seed=5)
        wl = Workload.make(wp)
        win = Window(6 * 3600.0, 28)
        counts = WindowCounts(wp.n_customers, win, wl.schema)
        per_bucket = wp.n_cdrs // (win.buckets + steps)
        keys = np.array(wl.keys())
        nodes = hashing.place(keys, n_nodes)
        for b in range(win.buckets):  # warm-up: fill the window
            c = wl.cdrs(per_bucket, b * win.bucket_s, (b + 1) * win.bucket_s)
            counts.add(c.customer, c.ts, c.values)
        bases, nmis_t, reparts = {}, [], 0

        def do_repartition(nodes):
            x = counts.profiles()
            p, m = counts.costs()
            m = np.maximum(m, 1.0)
            mc = microclusters.build(x, nodes, p, m, n_nodes)
            new = repartition(mc, n_nodes).profile_nodes(mc)
            return new, {j: trigger.baseline(keys[new == j], x[new == j]) for j in range(n_nodes)}

        for _ in range(3):  # converge from hashing before the shifts start
            nodes, bases = do_repartition(nodes)
        for t in range(steps):
            wl.step_shifts()
            b = win.buckets + t
            c = wl.cdrs(per_bucket, b * win.bucket_s, (b + 1) * win.bucket_s)
            counts.add(c.customer, c.ts, c.values)
            x = counts.profiles()
            nmis = [trigger.drift(bases[j], keys[nodes == j], x[nodes == j]) for j in range(n_nodes)]
            nmis_t.append(nmis)
            fire = (policy == "adaptive" and trigger.should_repartition(nmis)) or \
                   (policy == "periodic" and (t + 1) % period == 0)
            if fire:
                nodes, bases = do_repartition(nodes)
                reparts += 1
        x = counts.profiles()
        p, m = counts.costs()
        central = clustering.gmm_bic(x)
        qc = quality.cluster_quality(central, nodes, clustering.per_node(x, nodes, n_nodes))
        arr = np.asarray(nmis_t)
        res[policy] = {"repartitions": reparts, "min_local_nmi": float(arr.min()),
                       "local_nmi_per_step": arr.round(4).tolist(), "final_cluster_quality": qc}
        log(f"adaptive {speed} {policy}: {reparts} repartitions, min local NMI {arr.min():.3f}, final Qc {qc:.3f}")
    return {"shift_probability": shift_probability, "threshold": trigger.THRESHOLD, "period": period, **res}


def line_chart(path, series, title, xlabel, size=(960, 560)) -> Path:
    """Minimal PNG line chart (numpy + zlib): series = [(label, xs, ys, dashed)]."""
    w, h = size
    img = np.full((h, w, 3), 255, dtype=np.uint8)
    left, right, top, bottom = 80, 300, 50, 70
    xs_all = np.concatenate([np.asarray(s[1], float) for s in series])
    ys_all = np.concatenate([np.asarray(s[2], float) for s in series])
    x0, x1 = float(xs_all.min()), float(xs_all.max())
    y0, y1 = min(0.0, float(ys_all.min())), max(1.0, float(ys_all.max()))
    px = lambda x: left + (x - x0) / ((x1 - x0) or 1) * (w - left - right)  # noqa: E731
    py = lambda y: h - bottom - (y - y0) / ((y1 - y0) or 1) * (h - top - bottom)  # noqa: E731

    def seg(xa, ya, xb, yb, color, width=3, dash=False):
        n = int(max(abs(xb - xa), abs(yb - ya)) * 2) + 1
        for j, t in enumerate(np.linspace(0, 1, n)):
            if dash and (j // 12) % 2:
                continue
            x, y = int(round(xa + t * (xb - xa))), int(round(ya + t * (yb - ya)))
            img[max(y - width // 2, 0): y + (width + 1) // 2, max(x - width // 2, 0): x + (width + 1) // 2] = color

    for t in np.linspace(y0, y1, 6):
        seg(left, py(t), w - right, py(t), (225, 225, 225), 1)
        text(img, left - 8, int(py(t)) - 7, f"{t:.1f}", anchor="right")
    for t in sorted(set(float(v) for v in xs_all)):
        seg(px(t), h - bottom, px(t), h - bottom + 6, (0, 0, 0), 1)
        text(img, int(px(t)), h - bottom + 12, f"{t:g}", anchor="center")
    seg(left, h - bottom, w - right, h - bottom, (0, 0, 0), 2)
    seg(left, top, left, h - bottom, (0, 0, 0), 2)
    text(img, (left + w - right) // 2, 12, title, anchor="center")
    text(img, (left + w - right) // 2, h - 28, xlabel, anchor="center")
    for i, (label, xs, ys, dashed) in enumerate(series):
        color = PALETTE[i % len(PALETTE)]
        for j in range(len(xs) - 1):
            seg(px(xs[j]), py(ys[j]), px(xs[j + 1]), py(ys[j + 1]), color, 3, dashed)
        for x, y in zip(xs, ys):
            img[int(py(y)) - 3: int(py(y)) + 4, int(px(x)) - 3: int(px(x)) + 4] = color
        ly = top + 10 + i * 26
        seg(w - right + 15, ly + 7, w - right + 50, ly + 7, color, 3, dashed)
        text(img, w - right + 58, ly, label)
    return write_png(path, img)


def plots(result: dict, folder: Path) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for name, rows in result.get("sweeps", {}).items():
        field = SWEEPS[name][0]
        xs = [r[field] for r in rows]
        series = [(k.replace("_quality", ""), xs, [r[k] for r in rows], False) for k in KEYS]
        series.append(("hash overall", xs, [r["hash_overall_quality"] for r in rows], True))
        series.append(("hash cluster", xs, [r["hash_cluster_quality"] for r in rows], True))
        out.append(str(line_chart(folder / f"repartition_{name}.png", series, f"qualities vs {field}", field)))
    for speed, a in result.get("adaptive", {}).items():
        series = []
        for policy in ("adaptive", "periodic", "none"):
            arr = np.asarray(a[policy]["local_nmi_per_step"])
            series.append((f"{policy} ({a[policy]['repartitions']})", list(range(1, len(arr) + 1)), arr.min(axis=1).tolist(),
                           policy == "none"))
        series.append(("threshold", [1, len(arr)], [a["threshold"]] * 2, True))
        out.append(str(line_chart(folder / f"repartition_adaptive_{speed}.png", series,
                                  f"{speed} shifts: min node NMI vs last repartitioning", "time step")))
    return out


def live(rate: float, checks: int, gap_s: float, customers_per_node: int = 100, settle_s: float = 20.0,
         plot: Path | None = None) -> dict:
    """Repartitioning checks under a live CDR stream on a private broker with two workers: pauses of
    the moving profiles, the recorded qualities, and the profiles held to a central recomputation."""
    import tempfile

    from pipelines import config

    libs = config.get("OSR_KAFKA_LIBS")  # the jar cache, resolved before OSR_HOME moves
    from pipelines.ops.services.processes import find_free_port

    home = tempfile.mkdtemp(prefix="osr-bench-repartition-")
    saved = dict(os.environ)
    os.environ.update({"OSR_HOME": home, "OSR_KAFKA_LIBS": libs, "OSR_BROKER": "kafka",
                       "OSR_KAFKA_BOOTSTRAP": f"127.0.0.1:{find_free_port()}",
                       "OSR_KAFKA_CONTROLLER_PORT": str(find_free_port()), "OSR_FAUST_APP_ID": "osr-bench-profiles",
                       "OSR_TOPIC_PREFIX": "bench.", "OSR_FAUST_WEB_PORT": str(find_free_port()),
                       "OSR_TICK_S": "3600", "OSR_TUNER_RULES_POLL_S": "3600", "OSR_PROFILE_SUMMARY_S": "5",
                       "OSR_STREAM_AGENTS": "profiles"})
    from pipelines.ops import demo
    from pipelines.ops.services import broker, topics
    from pipelines.partitioning import coordinator, runs
    from pipelines.partitioning.live import CdrProducer, compare, read_changelog, recompute, wait_processed
    from pipelines.partitioning.migration import NodeParams

    workers, prod, out = [], None, {"rate_per_s": rate, "checks": checks}
    try:
        broker.start(timeout=180)
        topics.create_topics()
        for i in range(2):
            pid = demo.start_worker(i, web_port=find_free_port())
            demo.wait_worker_ready(pid, timeout=180, progress=log, index=i)
            workers.append(i)
        n_nodes = coordinator.partitions("profiles_updates")
        wl = Workload.make(WorkloadParams(n_nodes=n_nodes, customers_per_node=customers_per_node, seed=11))
        prod = CdrProducer(wl, rate_per_s=rate, limit=10 ** 9)
        prod.start()
        reader = coordinator.ControlReader()
        time.sleep(settle_s)
        rows = []
        for k in range(checks):
            r = runs.check(run=True, force=k == 0, wait_s=120, timeout=600)
            log(f"live check {k + 1}: {r['status']} ({r['reason']}), moved {r['moved_profiles']}, "
                f"migration {r['migration_seconds']} s, pause p99 {r['pause_p99_s']}")
            rows.append(r)
            time.sleep(gap_s)
        prod.stop_event.set()
        prod.join(120)
        commit_lag = wait_processed(config.get("OSR_FAUST_APP_ID"), timeout=300)
        view = reader.catch_up()
        reader.close()
        check = compare(read_changelog(), view.versions, recompute(prod.delivered(), NodeParams(n_raw=n_nodes)))
        check["undelivered_cdrs"] = len(prod.failed)
        check["faust_commit_lag_at_drain"] = commit_lag
        pauses = [p for r in rows for p in r.pop("pauses_s")]
        applied = [r for r in rows if r["status"] == "applied"]
        out.update({
            "migrations": len(applied), "nodes": n_nodes, "workers": 2, "cdrs": len(prod.sent),
            "profiles": wl.params.n_customers, "moved_profiles": sum(r["moved_profiles"] for r in applied),
            "paused_profiles": len(pauses),
            "migration_pause_p50_s": float(np.percentile(pauses, 50)) if pauses else None,
            "migration_pause_p99_s": float(np.percentile(pauses, 99)) if pauses else None,
            "migration_pause_max_s": float(max(pauses)) if pauses else None,
            "migration_seconds": [r["migration_seconds"] for r in applied], "runs": rows, "correctness": check})
        if plot is not None:
            plot.parent.mkdir(parents=True, exist_ok=True)
            out["history_plot"] = str(runs.plot_history(plot))
        return out
    finally:
        if prod is not None:
            prod.stop_event.set()
        for i in workers:
            log(f"worker {i}: {demo.worker_service(i).stop(60)}")
        log(f"broker: {broker.stop()}")
        os.environ.clear()
        os.environ.update(saved)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", action="store_true", help="print the result as one JSON line")
    ap.add_argument("--steps", type=int, default=6, help="repartitioning steps over the stream")
    ap.add_argument("--sweeps", default="", help="comma list of sweeps (nodes,alpha,zipf,types,k,sd) or 'all'")
    ap.add_argument("--sweep-size", type=int, default=500, help="customers per node in sweeps")
    ap.add_argument("--adaptive", action="store_true", help="adaptive vs periodic, slow and fast shifts")
    ap.add_argument("--skip-defaults", action="store_true")
    ap.add_argument("--plots", default="", help="folder for PNGs")
    ap.add_argument("--out", default="", help="also write the JSON here")
    ap.add_argument("--live", action="store_true", help="also measure live migrations (own broker, 2 Faust workers)")
    ap.add_argument("--live-rate", type=float, default=100.0, help="CDRs per second during --live (default 100)")
    ap.add_argument("--live-checks", type=int, default=5, help="repartitioning checks in --live (default 5)")
    ap.add_argument("--live-gap", type=float, default=15.0, help="seconds between --live checks (default 15)")
    a = ap.parse_args(argv)
    result: dict = {"load_average_start": os.getloadavg()}
    if not a.skip_defaults:
        result.update(defaults(a.steps))
    names = list(SWEEPS) if a.sweeps == "all" else [s for s in a.sweeps.split(",") if s]
    if names:
        result["sweeps"] = {n: sweep(n, a.sweep_size, a.steps) for n in names}
    if a.adaptive:
        result["adaptive"] = {"slow": adaptive("slow", 0.01), "fast": adaptive("fast", 0.02)}
    if a.live:
        result["live"] = live(a.live_rate, a.live_checks, a.live_gap,
                              plot=Path(a.plots) / "repartition_history.png" if a.plots else None)
        result["migration_pause_p99_s"] = result["live"]["migration_pause_p99_s"]
        result.pop("migration_pause_note", None)
    if a.plots:
        result["plots"] = plots(result, Path(a.plots))
    result["load_average_end"] = os.getloadavg()
    line = json.dumps(result, default=float)
    if a.out:
        Path(a.out).write_text(line + "\n")
    print(line if a.json else json.dumps(result, indent=1, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
