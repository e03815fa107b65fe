"""`osr filtering ...`: score the filters on a simulated trace, or filter a file of device uploads.

Why: the same filter the stream runs must be usable by hand — to check what it does to a given noise
level, and to re-filter stored uploads (a backfill) with the per-device state carried in a file.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from pipelines.filtering.kalman import filter_event
from pipelines.filtering.accuracy import filtering_error
from pipelines.filtering.simulate import simulate_trace


def _simulate(args: argparse.Namespace) -> int:
    kinds = ["walk", "run", "drive"] if args.kind == "all" else [args.kind]
    out = {}
    for kind in kinds:
        tr = simulate_trace(kind, n=args.readings, seed=args.seed, gps_std=args.gps_std, spike_rate=args.spike_rate)
        t0 = time.perf_counter()
        filtered, state = filter_event(tr.event(device_type="watch"), None)
        secs = time.perf_counter() - t0
        rej = np.array(filtered["rejected"])
        pos = filtering_error(tr.truth_xy, tr.xy, np.column_stack([filtered["x"], filtered["y"]]), mask=~tr.spike)
        out[kind] = {
            "position": pos,
            "heart_rate": filtering_error(tr.truth_hr, tr.hr, np.array(filtered["hr"], float)),
            "acceleration": filtering_error(tr.truth_acc, tr.acc, np.array(filtered["acc"], float)),
            "spikes_injected": int(tr.spike.sum()),
            "spikes_rejected_frac": float(rej[tr.spike].mean()) if tr.spike.any() else None,
            "good_fixes_rejected_frac": float(rej[~tr.spike].mean()),
            "learnt_gps_std_m": float(np.sqrt(state["pos"]["r2"])),
            "readings_per_s": round(len(tr.ts) / secs),
        }
    print(json.dumps(out, indent=None if args.compact else 2))
    return 0


def _file(args: argparse.Namespace) -> int:
    states: dict = {}
    if args.state and Path(args.state).exists():
        states = json.loads(Path(args.state).read_text())
    src = sys.stdin if args.input == "-" else open(args.input)
    dst = sys.stdout if args.output in (None, "-") else open(args.output, "w")
    n_events = n_readings = spikes = 0
    t0 = time.perf_counter()
    try:
        for line_no, line in enumerate(src, 1):
            if not line.strip():
                continue
            try:
                event = json.loads(line)
                key = f'{event["user_id"]}/{event["device_id"]}'
                filtered, states[key] = filter_event(event, states.get(key))
            except (ValueError, KeyError, TypeError) as exc:
                print(f"error: line {line_no}: {exc.__class__.__name__}: {exc}", file=sys.stderr)
                return 1
            dst.write(json.dumps(filtered) + "\n")
            n_events += 1
            n_readings += len(filtered["ts"])
            spikes += filtered["spikes_rejected"]
    finally:
        if src is not sys.stdin:
            src.close()
        if dst is not sys.stdout:
            dst.close()
    if args.state:
        Path(args.state).write_text(json.dumps(states))
    secs = time.perf_counter() - t0
    summary = {"events": n_events, "readings": n_readings, "devices": len(states), "spikes_rejected": spikes,
               "readings_per_s": round(n_readings / secs) if secs > 0 else None}
    print(json.dumps(summary), file=sys.stderr if dst is sys.stdout else sys.stdout)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `filtering` (with `simulate` and `file`) to the `osr` command."""
    top = subparsers.add_parser(
        "filtering", help="sensor-noise filters: score them on a simulated trace, or filter a file of uploads",
        description="The per-device Kalman filters the stream runs on sensor.raw (GPS position/velocity with "
                    "spike gating, heart rate, acceleration).")
    sub = top.add_subparsers(dest="filtering_command", required=True, metavar="{simulate,file}")
    sim = sub.add_parser(
        "simulate", help="filter a seeded simulated trace and print raw vs filtered RMSE as JSON",
        description="Simulates a walk, run or drive (~1 Hz, jittered, with gaps), adds GPS noise and 100-500 m "
                    "spikes, HR noise and dropouts, runs filter_event over it and prints JSON: RMSE of raw and "
                    "filtered positions (spiked fixes left out), heart rate and acceleration against the truth, "
                    "and the share of spikes / good fixes rejected.")
    sim.add_argument("--kind", choices=["walk", "run", "drive", "all"], default="all", help="motion (default: all)")
    sim.add_argument("--readings", type=int, default=1200, help="readings in the trace (default: 1200)")
    sim.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    sim.add_argument("--gps-std", type=float, default=7.0, help="GPS noise std per axis in metres (default: 7)")
    sim.add_argument("--spike-rate", type=float, default=0.03, help="share of fixes that are spikes (default: 0.03)")
    sim.add_argument("--compact", action="store_true", help="one-line JSON")
    sim.set_defaults(func=_simulate)
    f = sub.add_parser(
        "file", help="filter a JSON-lines file of device uploads (a backfill), carrying each device's state",
        description="Reads one sensor upload per line ({event_id, user_id, device_id, device_type, ts[], x[], "
                    "y[], hr[], acc[]}, in time order per device), writes one filtered upload per line, and "
                    "prints a JSON summary. With --state the per-device filter states are read from and written "
                    "back to that JSON file, so a backfill can continue where the previous one stopped.")
    f.add_argument("input", help="input JSON-lines file, or - for stdin")
    f.add_argument("-o", "--output", help="output JSON-lines file (default: stdout; the summary then goes to stderr)")
    f.add_argument("--state", help="JSON file of per-device filter states to resume from and save to")
    f.set_defaults(func=_file)
