"""Capacity planning benchmark: a generated bursty day (diurnal + flash crowds) replayed at a compressed
time scale against a real Kafka broker and real Faust workers, once per policy:

  static               two workers all day (today's two-worker group)
  reactive_lag         KEDA-style: workers = ceil(lag / lagThreshold), <= partitions, HPA stabilization
  ds2                  DS2-style: (rate + backlog / catch-up) / (true rate x target utilization)
  predictive_reactive  the hourly model (95th pct of 7 past generated days) + reactive trigger, M/M/c
                       sizing, STEADY/MIGRATION, temporary-then-permanent removal (pipelines.capacity.plan)

Per policy: a fresh topic prefix and app id, the policy's initial workers started and settled, then the
day's uploads sent at their Poisson times while the MAPE-K loop (pipelines.capacity.loop) samples the
broker and the workers' logs every --interval s and starts/stops real worker processes. Latency is per
moment: the tuner decision's arrival at a reader minus the send time of the moment's last upload.

Calibration first: one worker drains a backlog; its service rate (records per busy second, from the
BatchTiming lines) feeds the M/M/c model and the DS2 policy's first estimate, and the day's peak is
set to --peak-factor x that rate. Optional --sim adds a fluid simulation calibrated with the measured
rate and start-up time (an additional mode, never the headline).

Progress on stderr; the last stdout line is one JSON object (--json: only that).
    .venv/bin/python bench/capacity.py --json [--hour-s 6] [--policies static,reactive_lag,ds2,predictive_reactive]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import signal
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from pipelines import config  # noqa: E402
from pipelines.contracts import TOPICS  # noqa: E402

_spec = importlib.util.spec_from_file_location("bench_stream", ROOT / "bench" / "stream.py")
bs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bs)

POLICIES = ("static", "reactive_lag", "ds2", "predictive_reactive")
BUCKET_MIN = 10  # day-minutes per latency bucket


def say(msg: str) -> None:
    print(f"[capacity {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def moment_id(e: dict) -> str:
    return f"{e['user_id']}:{e['event_id'][len(e['device_id']) + 1:]}"


# --- calibration --------------------------------------------------------------------------------------

def calibrate(uploads, n: int) -> dict:
    """One worker drains n uploads: records per busy second (BatchTiming) and the worker's start-up time."""
    from pipelines.capacity.monitor import WorkerLogs
    from pipelines.ops import demo
    from pipelines.ops.commands.capacity import start_worker, stop_worker

    bs.fresh_stream(f"c{uuid.uuid4().hex[:4]}")
    bs.produce(uploads[:n])
    group, topic = config.get("OSR_FAUST_APP_ID"), config.topic(TOPICS.sensor_raw)
    log = demo.worker_service(0).log_file
    logs = WorkerLogs()
    logs.read({"w": log})  # skip what earlier runs logged
    t0 = time.monotonic()
    pid = start_worker(0)
    demo.wait_worker_ready(pid, timeout=180, progress=lambda m: None, index=0)
    ready_s = time.monotonic() - t0
    from pipelines.ingest.lag import group_lag

    t1 = time.monotonic()
    while group_lag(group, [topic])[topic] > 0 and time.monotonic() - t1 < 300:
        time.sleep(0.5)
    drain_s = time.monotonic() - t1
    time.sleep(float(config.get("OSR_STREAM_LOG_S")) + 0.5)  # the last timing line
    stop_worker(0)
    st = logs.read({"w": log})["w"]
    return {"uploads": n, "worker_ready_s": round(ready_s, 1), "drain_s_after_ready": round(drain_s, 1),
            "drain_rate_per_s": round(n / drain_s, 1) if drain_s > 0 else None,
            "true_rate_per_s": round(st.true_rate, 1) if st.true_rate else None,
            "busy_fraction": round(st.busy_fraction, 2) if st.busy_fraction else None}


# --- one policy's replay ----------------------------------------------------------------------------

def make_policy(name: str, mu: float, model, args):
    from pipelines.capacity.plan import Planner, PlannerConfig
    from pipelines.capacity.policies import Ds2Policy, LagThresholdPolicy, StaticPolicy

    if name == "static":
        return StaticPolicy(2)
    if name == "reactive_lag":
        return LagThresholdPolicy(lag_threshold=args.lag_threshold, stabilization_s=args.stabilization_s,
                                  maximum=args.cap)
    if name == "ds2":
        return Ds2Policy(target_utilization=0.7, catch_up_s=args.drain_s, stabilization_s=args.warmup_s,
                         scale_down_delay_s=args.stabilization_s, maximum=args.cap)
    if name == "predictive_reactive":
        return Planner(PlannerConfig(sla_s=args.sla, q=0.99, service_rate=mu, cap=args.cap, drain_s=args.drain_s,
                                     warmup_s=args.warmup_s, probation_s=args.stabilization_s,
                                     admission_hold_s=args.stabilization_s,
                                     hours_per_s=1.0 / args.hour_s), model=model)
    raise ValueError(f"unknown policy {name!r}; expected one of {', '.join(POLICIES)}")


def initial_workers(name: str, policy, model, mu: float, args) -> int:
    if name == "static":
        return 2
    if name == "predictive_reactive":
        from pipelines.capacity.queueing import workers_for_sla

        return workers_for_sla(model.peak_ahead(0, 0.5), mu, args.sla, 0.99, cap=args.cap).workers
    return 1


_RUNNING: list = []  # every replay's effector, so an interrupted run stops the workers it started


def replay(name: str, uploads, times: np.ndarray, mu: float, model, args, store_con) -> dict:
    from pipelines.capacity import store
    from pipelines.capacity.loop import ControlLoop
    from pipelines.capacity.monitor import Monitor
    from pipelines.ops import demo
    from pipelines.ops.commands.capacity import real_effector, worker_logs

    bs.fresh_stream(f"{name[:3]}{uuid.uuid4().hex[:4]}")
    group, topic = config.get("OSR_FAUST_APP_ID"), config.topic(TOPICS.sensor_raw)
    policy = make_policy(name, mu, model, args)
    eff = real_effector()
    _RUNNING.append(eff)  # stopped by main's finally if this replay is interrupted
    col = bs.Collector("tuner_decisions")
    col.start()
    mon = Monitor(group, topic)
    mon.logs.read({f"worker-{i}": demo.worker_service(i).log_file for i in range(args.cap)})  # skip earlier runs' lines
    n0 = initial_workers(name, policy, model, mu, args)
    from pipelines.capacity.decision import Decision

    eff.apply(Decision(0.0, name, "scale_up", 0, n0, "initial workers"))
    for i in eff.running:
        demo.wait_worker_ready(eff.running[i], timeout=180, progress=lambda m: None, index=i)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # the group settled with every initial worker
        st, members = mon.group_info()
        if st.lower() == "stable" and members == n0:
            break
        time.sleep(0.5)
    say(f"{name}: group {st} with {members} member(s) for {n0} worker(s)")
    mon.sample()  # baseline offsets
    say(f"{name}: {n0} worker(s) settled; replaying {len(times)} uploads over {times[-1]:.0f} s")
    sent: dict[str, float] = {}
    box: dict = {}

    def produce():
        from confluent_kafka import Producer

        from pipelines.ingest.kafka_clients import produce_waiting, producer_config

        p = Producer(producer_config())
        t0 = box["t0"]
        try:
            for k, t in enumerate(times):
                # poll() returns at the first delivery report, so wait in a loop: one poll(ahead) would
                # send early and squeeze the day
                while (ahead := t0 + t - time.time()) > 0:
                    p.poll(min(ahead, 0.05))
                key, value, e = uploads[k]
                produce_waiting(p, topic, key, value)
                sent[e["event_id"]] = time.time()
                p.poll(0)
            p.flush(60)
        except BaseException as exc:  # noqa: BLE001 - reported in the result
            box["error"] = repr(exc)

    box["t0"] = t0 = time.time()
    from pipelines.capacity.admission import AdmissionPlan

    # beyond the cap the planner records an admission plan, which the workers follow through the store;
    # every policy starts normal (a plan left by the one before must not slow this one)
    store.write_plan(store_con, AdmissionPlan("normal", None, 1.0, f"bench: {name} starts"), by=f"bench-{name}")
    loop = ControlLoop(mon, policy, eff, hour_of=lambda t: (t / args.hour_s) % 24, worker_logs=lambda: worker_logs(eff),
                       t0=t0, admission_sink=store.admission_recorder(store_con, f"bench-{name}"))
    workers_trace = [(0.0, eff.workers)]
    prod = threading.Thread(target=produce, daemon=True)
    prod.start()
    end = times[-1] + args.tail_s

    def turn(drain: bool):
        """One control-loop step: its scaling action said, the worker count traced."""
        at = time.time()
        obs, d, _outcome = loop.step()
        if d.changes:
            when = "(drain)" if drain else f"h={(d.t / args.hour_s):5.2f}"
            say(f"{name} t={d.t:6.1f}s {when} {d.action} {d.workers_from}->{d.workers_to}: {d.reason[:150]}")
        workers_trace.append((time.time() - t0, eff.workers))
        return obs, d, at

    while time.time() - t0 < end:
        _obs, d, step_at = turn(drain=False)
        if len(loop.samples) % 10 == 1:
            s0 = loop.samples[-1][0]
            say(f"{name} t={d.t:6.1f}s workers {eff.workers} members {s0.members} {s0.group_state} lag {s0.lag} "
                f"rate {s0.arrival_rate or 0:.0f}/s lat {s0.latency_s} true {s0.true_rate} [{d.state}] {d.reason[:90]}")
        time.sleep(max(0.0, args.interval - (time.time() - step_at)))
    prod.join(30)
    # the loop keeps running until the backlog is gone and every moment sent has its decision: a moment
    # deferred by admission control is decided once the planner returns to normal, which it decides
    # itself from the falling demand (stopping at lag 0 would count deferred moments as never decided)
    drained_at = None
    wanted = {moment_id(uploads[k][2]) for k in range(len(times)) if uploads[k][2]["event_id"] in sent}
    t_drain = time.monotonic()
    while time.monotonic() - t_drain < args.drain_wait_s:
        obs, _d, step_at = turn(drain=True)
        if obs.lag == 0 and drained_at is None:
            drained_at = time.time() - t0
        if drained_at is not None and wanted <= {mid for mid, _t, _v in list(col.rows)}:
            break
        time.sleep(max(0.0, args.interval - (time.time() - step_at)))
    time.sleep(2)
    col.stop = True
    col.join(10)
    eff.stop_all()
    mon.close()
    store.write_samples(store_con, f"bench-{name}", loop.samples)
    store.write_decisions(store_con, f"bench-{name}", loop.decisions, t0=t0)
    return summarize(name, uploads, times, sent, col.rows, loop, workers_trace, t0, drained_at, args, box)


def summarize(name, uploads, times, sent, rows, loop, workers_trace, t0, drained_at, args, box) -> dict:
    hour_s = args.hour_s
    moment_sent: dict[str, float] = {}
    for k in range(len(times)):
        e = uploads[k][2]
        if e["event_id"] in sent:
            mid = moment_id(e)
            moment_sent[mid] = max(moment_sent.get(mid, 0.0), sent[e["event_id"]])
    got = {}
    for mid, t, _v in rows:
        got.setdefault(mid, t)
    n_buckets = 24 * 60 // BUCKET_MIN
    per_bucket: list[list[float]] = [[] for _ in range(n_buckets)]
    missing = [0] * n_buckets
    for mid, ts in moment_sent.items():
        b = min(int((ts - t0) / hour_s * 60 / BUCKET_MIN), n_buckets - 1)
        if mid in got:
            per_bucket[b].append(got[mid] - ts)
        else:
            missing[b] += 1
    p99 = [float(np.percentile(v, 99)) if v else None for v in per_bucket]
    violated = [(p is not None and p > args.sla) or missing[i] > 0 for i, p in enumerate(p99)]
    # worker-minutes on the day's clock: workers integrated over the replayed day (start to day's end)
    day_end = times[-1]
    wm = 0.0
    for (ta, wa), (tb, _wb) in zip(workers_trace, workers_trace[1:]):
        ta, tb = min(ta, day_end), min(tb, day_end)
        wm += wa * (tb - ta) / hour_s * 60
    changes = [d for d, _o in loop.decisions if d.changes]
    ups = [d.t for d in changes if d.workers_to > d.workers_from]
    downs = [d.t for d in changes if d.workers_to < d.workers_from]
    flap = sum(1 for u in ups for dn in downs if 0 < dn - u < args.warmup_s)
    starts = sum(max(d.workers_to - d.workers_from, 0) for d in changes)
    lat_all = [got[m] - ts for m, ts in moment_sent.items() if m in got]
    return {"policy": name, "moments": len(moment_sent), "decided": sum(m in got for m in moment_sent),
            "sla_violation_minutes": BUCKET_MIN * sum(violated), "worker_minutes": round(wm),
            "scaling_actions": len(changes), "worker_starts": starts,
            "up_then_down_within_warmup": flap,
            "latency_p50_s": round(float(np.percentile(lat_all, 50)), 2) if lat_all else None,
            "latency_p99_s": round(float(np.percentile(lat_all, 99)), 2) if lat_all else None,
            "drained_s_after_start": round(drained_at, 1) if drained_at else None,
            "producer_error": box.get("error"),
            "trace": {"bucket_hour": [(i + 0.5) * BUCKET_MIN / 60 for i in range(n_buckets)], "p99_s": p99,
                      "workers": [(round(t / hour_s, 3), w) for t, w in workers_trace],
                      "arrival": [(round(s.t - t0, 2) / hour_s, s.arrival_rate) for s, _h, _w in loop.samples],
                      "actions": [(round(d.t / hour_s, 3), d.action, d.workers_from, d.workers_to, d.reason[:200])
                                  for d in changes]}}


def steps_to_converge(result: dict, crowds, args) -> list[dict]:
    """Per flash crowd (a step change up): scale actions from its onset until the workers stop changing
    within the crowd (+1 day-hour), and whether the SLA held in the last bucket of that window."""
    out = []
    for start, dur, _extra in crowds:
        win = [a for a in result["trace"]["actions"] if start <= a[0] <= start + dur + 1.0]
        out.append({"onset_hour": start, "actions": len(win), "ups": sum(a[3] > a[2] for a in win)})
    return out


# --- simulation (additional mode, calibrated) -------------------------------------------------------

def simulate(name: str, day, mu: float, ready_s: float, model, args) -> dict:
    """A fluid queue per second: c workers serve c*mu/s (at most one worker per partition), a started
    worker serves after ready_s; latency ~ backlog / (c*mu) + 1/mu. The same policies decide every
    --interval s. For comparison only: the real replay is the headline."""
    from pipelines.capacity.decision import Observation

    policy = make_policy(name, mu, model, args)
    hour_s = args.hour_s
    total = int(24 * hour_s)
    rate = np.repeat(day.minute_rate, int(math.ceil(hour_s / 60 * 10)))[: total * 10]
    rate = np.interp(np.arange(total), np.linspace(0, total, len(rate)), rate)
    c = initial_workers(name, policy, model, mu, args)
    pending: list[float] = []  # ready times of starting workers
    backlog, wm, actions, violations = 0.0, 0.0, 0, set()
    ups, flap = [], 0
    for t in range(total):
        live = c + sum(1 for r in pending if r <= t)
        pending = [r for r in pending if r > t]
        c = live
        cap = c * mu
        backlog = max(0.0, backlog + rate[t] - cap)
        lat = backlog / cap + 1 / mu if cap else math.inf
        if lat > args.sla:
            violations.add(int(t / hour_s * 60 / BUCKET_MIN))
        wm += (c + len(pending)) / hour_s * 60
        if t % int(args.interval) == 0:
            obs = Observation(t=float(t), hour=t / hour_s, arrival_rate=rate[t], processing_rate=min(rate[t], cap),
                              lag=backlog, workers=c + len(pending), partitions=args.cap, latency_s=lat,
                              true_rate=mu, busy_fraction=min(rate[t] / cap, 1.0) if cap else 1.0,
                              settled=not pending)
            d = policy.decide(obs)
            if d.changes:
                actions += 1
                if d.workers_to > obs.workers:
                    ups.append(t)
                    pending += [t + ready_s] * (d.workers_to - obs.workers)
                else:
                    flap += sum(1 for u in ups if t - u < args.warmup_s)
                    drop = obs.workers - d.workers_to
                    take = min(drop, len(pending))
                    pending = pending[take:]
                    c -= drop - take
    return {"policy": name, "sla_violation_minutes": BUCKET_MIN * len(violations), "worker_minutes": round(wm),
            "scaling_actions": actions, "up_then_down_within_warmup": flap}


# --- main --------------------------------------------------------------------------------------------

def plot(results: list[dict], day, args, path: Path) -> None:
    from pipelines.capacity.plot import day_panels

    hours = np.arange(1440) / 60
    load = [("offered (generated)", list(hours[::5]), list(day.minute_rate[::5]))]
    for r in results:
        if r["policy"] == "predictive_reactive":
            load.append(("arrival (monitor)", [h for h, _r in r["trace"]["arrival"]],
                         [v for _h, v in r["trace"]["arrival"]]))
    workers, lat = [], []
    for r in results:
        steps_x, steps_y = [], []
        for h, w in r["trace"]["workers"]:
            if steps_y:
                steps_x.append(h)
                steps_y.append(steps_y[-1])
            steps_x.append(h)
            steps_y.append(w)
        workers.append((r["policy"], steps_x, steps_y))
        lat.append((r["policy"], r["trace"]["bucket_hour"], r["trace"]["p99_s"]))
    day_panels(path, [("uploads/s", load), ("workers", workers), ("latency p99 (s) per 10 day-min", lat)],
               f"replayed day: {args.hour_s:g} s per hour, real broker + Faust workers", hlines={2: (args.sla, "SLA")})


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", action="store_true", help="print only the JSON result on stdout")
    ap.add_argument("--policies", default=",".join(POLICIES))
    ap.add_argument("--hour-s", type=float, default=6.0, help="real seconds per day-hour (default 6: 144 s a day)")
    ap.add_argument("--peak-factor", type=float, default=1.5, help="the day's diurnal peak / one worker's rate")
    ap.add_argument("--sla", type=float, default=5.0, help="p99 latency SLA per moment, seconds (default 5)")
    ap.add_argument("--interval", type=float, default=2.0, help="seconds between monitor samples")
    ap.add_argument("--warmup-s", type=float, default=10.0, help="MIGRATION warm-up / DS2 stabilization (s)")
    ap.add_argument("--stabilization-s", type=float, default=20.0,
                    help="scale-down stabilization (KEDA), delay (DS2), probation and admission-plan hold (planner), s")
    ap.add_argument("--drain-s", type=float, default=10.0, help="backlog catch-up time (s)")
    ap.add_argument("--lag-threshold", type=float, default=200.0, help="KEDA lagThreshold (records per worker)")
    ap.add_argument("--cap", type=int, default=4, help="most workers (<= partitions)")
    ap.add_argument("--tail-s", type=float, default=10.0, help="seconds the loop runs past the day's end")
    ap.add_argument("--drain-wait-s", type=float, default=90.0,
                    help="after the day: the loop keeps running until the backlog and every deferred moment are "
                         "decided, at most this long (s)")
    ap.add_argument("--users", type=int, default=150, help="people (default 150; few people, many moments each: "
                    "the history backfill and nightly cost grow with people)")
    ap.add_argument("--contexts", type=int, default=120, help="streamed moments per person (default 120)")
    ap.add_argument("--service-rate", type=float, help="skip the calibration: records/s one worker serves")
    ap.add_argument("--worker-ready-s", type=float, default=20.0, help="with --service-rate: start-up time for --sim")
    ap.add_argument("--sim", action="store_true", help="also run the calibrated simulation (additional mode)")
    ap.add_argument("--plot", default=str(ROOT / "docs" / "img" / "capacity_day.png"))
    ap.add_argument("--seed", type=int, default=3)
    args = ap.parse_args()
    names = [p.strip() for p in args.policies.split(",") if p.strip()]
    for n in names:
        if n not in POLICIES:
            ap.error(f"unknown policy {n!r}; expected some of {', '.join(POLICIES)}")

    from pipelines.capacity.analyze import dispersion_profile
    from pipelines.capacity.predict import HourlyModel
    from pipelines.capacity.workload import make_day, minute_observations, send_times
    from pipelines.ops.services import broker
    from pipelines.store.db import connect, migrate

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a TERM runs the finally below: no leftovers
    os.environ.setdefault("OSR_STREAM_LOG_S", "2")  # workers log their busy time every 2 s (the monitor reads it)
    home = Path(tempfile.mkdtemp(prefix="osr-bench-capacity-"))
    t_start = time.monotonic()
    bs.start_broker(home)
    results, sims = [], []
    try:
        bs.fresh_stream("setup")
        _pop, uploads = bs.prepare(args.users, args.contexts)
        say(f"{len(uploads)} uploads from {args.users} people")
        if args.service_rate:
            cal = {"given": True, "true_rate_per_s": args.service_rate, "worker_ready_s": args.worker_ready_s,
                   "note": "passed in (--service-rate), measured by an earlier calibration on this machine"}
        else:
            cal = calibrate(uploads, min(3000, len(uploads) // 4))
        mu = cal["true_rate_per_s"] or cal["drain_rate_per_s"]
        say(f"calibration: {cal}")
        peak = args.peak_factor * mu
        past = [make_day(peak, seed=100 + d) for d in range(7)]
        obs = [o for d, day in enumerate(past) for o in minute_observations(day, d, args.hour_s, seed=200 + d)]
        model = HourlyModel.fit(obs, 95)
        day = make_day(peak, seed=args.seed)
        times = send_times(day, args.hour_s, seed=args.seed + 1)
        if len(times) > len(uploads):
            say(f"the day needs {len(times)} uploads, the population has {len(uploads)}: the day is cut")
            times = times[: len(uploads)]
        per_s = np.histogram(times, bins=np.arange(0, times[-1] + 1, 1.0))[0]
        disp = dispersion_profile(per_s, (1, 10, 60))
        say(f"day: {len(times)} uploads, peak {peak:.0f}/s, crowds {day.crowds}, dispersion {disp}")
        con = connect()
        migrate(con)
        from pipelines.capacity import store

        store.write_model(con, model, "bench-model")
        for n in names:
            t_pol = time.monotonic()
            r = replay(n, uploads, times, mu, model, args, con)
            r["steps_to_converge"] = steps_to_converge(r, day.crowds, args)
            r["wall_s"] = round(time.monotonic() - t_pol, 1)
            results.append(r)
            say(f"{n}: violation {r['sla_violation_minutes']} day-min, {r['worker_minutes']} worker-min, "
                f"{r['scaling_actions']} actions, p99 {r['latency_p99_s']} s")
        con.close()
        if args.sim:
            for n in names:
                sims.append(simulate(n, day, mu, cal["worker_ready_s"], model, args))
    finally:
        for eff in _RUNNING:  # workers of an interrupted replay (a finished one stopped its own)
            eff.stop_all()
        broker.stop()
    if results:
        Path(args.plot).parent.mkdir(parents=True, exist_ok=True)
        plot(results, day, args, Path(args.plot))
    by = {r["policy"]: r for r in results}
    pr = by.get("predictive_reactive")
    targets = None
    if pr and len(by) == len(POLICIES):
        others = [r for n, r in by.items() if n != "predictive_reactive"]
        targets = {
            "fewer_violation_minutes_than_every_other": all(pr["sla_violation_minutes"] < r["sla_violation_minutes"]
                                                            for r in others),
            "worker_minutes_at_most_reactive_lag": pr["worker_minutes"] <= by["reactive_lag"]["worker_minutes"],
            "converges_in_3_actions_per_step": all(s["actions"] <= 3 for s in pr["steps_to_converge"]),
            "never_up_then_down_within_warmup": pr["up_then_down_within_warmup"] == 0,
        }
    out = {"hour_s": args.hour_s, "sla_s": args.sla, "calibration": cal, "service_rate_per_s": mu, "peak_rate": peak,
           "uploads": int(len(times)), "flash_crowds": day.crowds, "index_of_dispersion_by_window_s": disp,
           "model_rates": {h: round(v, 1) for h, v in model.rates.items()},
           "policies": [{k: v for k, v in r.items() if k != "trace"} for r in results], "targets": targets,
           "simulation": sims or None, "plot": args.plot, "wall_s": round(time.monotonic() - t_start, 1),
           "load_avg": os.getloadavg()[0]}
    Path(home / "result.json").write_text(json.dumps({**out, "traces": {r["policy"]: r["trace"] for r in results}},
                                                     default=str))
    if not args.json:
        for r in out["policies"]:
            print(json.dumps(r, default=str), file=sys.stderr)
    print(json.dumps(out, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
