"""A small real run of the main job, in-process and without a broker, to fill a store for the view tests.

What is real: the seeded population and its history backfill (`load_population`), the nightly batch
(`nightly.run_all`: gates, ALS, LightGBM, snapshot, promotion), the stream's own hop
(`online.chain.Chain`) over the streamed day in live order against the live snapshot, the sink's
converters and keyed writes (`store.sink`), the OSR lift (`reco.lift`) recorded in ops.runs as
`osr demo` records it, and one QoS refresh (`qos.refresh`: gate, model choice, publish).
What is left out: Kafka and the push gateway (approved pushes are stored as the gateway would
deliver them, each moment once).
"""

from __future__ import annotations

import json
import math
import time

import numpy as np
import pandas as pd

from pipelines.filtering.stage import Arrival
from pipelines.online.chain import Chain
from pipelines.online.snapshot import load_snapshot
from pipelines.online.tuner_rules import set_rule
from pipelines.reco import nightly
from pipelines.reco.lift import osr_lift
from pipelines.store import sink
from pipelines.store.db import connect, migrate, transaction, upsert_ignore
from pipelines.store.population_loader import load_population
from pipelines.synthetic import population as P
from pipelines.synthetic.replay import live_order

PARAMS = P.PopulationParams(n_users=24, n_items=40, history_contexts_per_user=10, stream_contexts_per_user=6,
                            interactions_per_user=20, seed=7)


def stream_in_process(pop: P.Population, batch: int = 40) -> dict[str, int]:
    """The streamed day through the chain, stored through the sink's converters; returns row counts."""
    snap = load_snapshot()
    chain, states = Chain(hold_s=2.0), {}
    out_rows = {"features": [], "scored": [], "decisions": [], "approved": [], "dead": []}
    events = live_order(pop, "stream")
    clock = time.time()
    for i in range(0, len(events), batch):
        by: dict = {}
        for k, (e, _t) in enumerate(events[i:i + batch]):
            by.setdefault(e["user_id"], []).append(Arrival(json.dumps(e), f"sensor.raw:0:{i + k}", e["user_id"], clock))
        out = chain.run(by, states.get, snap, now=clock)
        states.update(out.states)
        for key, rows in (("features", out.features), ("scored", out.scored), ("decisions", out.decisions),
                          ("approved", out.approved), ("dead", out.dead)):
            out_rows[key] += rows
    # the end of the stream: release every moment still waiting for a device
    out = chain.run({p: [] for p in states}, states.get, snap, now=math.inf)
    for key, rows in (("features", out.features), ("scored", out.scored), ("decisions", out.decisions),
                      ("approved", out.approved), ("dead", out.dead)):
        out_rows[key] += rows
    frames = {
        "features.state_features": sink.features_frame(out_rows["features"]),
        "stream.osr_scores": sink.scores_frame(out_rows["scored"]),
        "stream.tuner_decisions": sink.decisions_frame(out_rows["decisions"]),
        "stream.notifications": sink.notifications_frame(out_rows["approved"]),
    }
    con = connect()
    try:
        return transaction(con, lambda c: {t: upsert_ignore(c, t, df) for t, df in frames.items()})
    finally:
        con.close()


def record_run(pop: P.Population, run_id: str, model_id: str, counts: dict[str, int]) -> dict:
    """The OSR lift and the run's figures in ops.runs, as `osr demo` writes them."""
    con = connect()
    try:
        lift = osr_lift(con, pop)
        summary = {"produced": {"total": counts["uploads"], "valid": counts["uploads"], "malformed": 0},
                   "counts": {"features": counts["features.state_features"], "uploads_fused": counts["uploads"],
                              "deadlettered": 0, "decisions": counts["stream.tuner_decisions"],
                              "notifications": counts["stream.notifications"]},
                   "lift": lift, "figures": {}, "model_id": model_id}
        transaction(con, lambda c: c.execute(
            "INSERT INTO ops.runs VALUES (?, 'demo', now() - INTERVAL 30 SECOND, now(), 'ok', ?)",
            [run_id, json.dumps(summary, default=str)]))
        return lift
    finally:
        con.close()


def qos_refresh(tmp_path) -> dict:
    """One QoS refresh on a small synthetic matrix with node locations (as tests/qos build it)."""
    from pipelines.qos import data, generate, refresh
    from pipelines.qos.data import Locations

    rng = np.random.default_rng(11)

    def loc(n):
        return Locations(asn=rng.integers(0, 3, n), country=rng.integers(0, 2, n), lat=rng.uniform(0, 50, n),
                         lon=rng.uniform(0, 50, n), as_names=["AS1", "AS2", "AS3"], country_names=["A", "B"],
                         ids=[str(i) for i in range(n)])

    d = generate.generate("rt", seed=2, users=loc(20), services=loc(30), missing=0.5)
    path = data.write_matrix(d.values, tmp_path / "obs.txt")
    refresh.ingest(path, "rt", data.write_locations(d.users, tmp_path / "users.txt"),
                   data.write_locations(d.services, tmp_path / "services.txt"))
    return refresh.refresh("rt", top=5)


def ops_rows() -> dict[str, int]:
    """A repartitioning check and a short capacity run, as rows of migrations 100 and 090 the way
    pipelines.partitioning.runs and pipelines.capacity.store write them (this run starts no
    profile stream and no capacity loop; the figures are made up but consistent)."""
    t0 = pd.Timestamp("2026-11-16 08:00:00")
    reparts = pd.DataFrame([
        {"run_id": f"rp-{k}", "started_at": t0 + pd.Timedelta(hours=k), "finished_at": t0 + pd.Timedelta(hours=k, seconds=20),
         "action": "apply", "status": status, "reason": reason, "n_nodes": 2, "profiles": 400,
         "moved_profiles": moved, "moved_state": float(moved), "total_state": 400.0,
         "cluster_quality_before": qc0, "balance_quality_before": 0.7, "overall_quality_before": q0,
         "cluster_quality": qc, "balance_quality": qb, "migration_quality": 1 - moved / 400, "overall_quality": q,
         "migration_seconds": 1.5 if moved else None, "pause_p99_s": 0.4 if moved else None}
        for k, (status, reason, moved, qc0, q0, qc, qb, q) in enumerate([
            ("no-op", "quality 0.81 above the threshold", 0, 0.9, 0.81, 0.9, 0.72, 0.81),
            ("applied", "quality 0.62 under the threshold", 60, 0.7, 0.62, 0.88, 0.93, 0.77),
            ("no-op", "quality 0.79 above the threshold", 0, 0.86, 0.79, 0.86, 0.72, 0.79)])])
    samples = pd.DataFrame([
        {"sample_id": f"cap-1:{k}", "run_id": "cap-1", "ts": t0 + pd.Timedelta(seconds=5 * k), "hour": 8.0,
         "group_id": "osr-stream", "topic": "sensor.raw", "partitions": 4, "arrival_rate": rate,
         "processing_rate": min(rate, 90.0 * w), "lag": int(max(0.0, rate - 90.0 * w) * 5), "workers": w,
         "members": w, "group_state": "Stable", "busy_fraction": min(1.0, rate / (90.0 * w)), "true_rate": 90.0,
         "latency_p50_s": lat / 3, "latency_p99_s": lat, "head_age_s": lat}
        for k, (rate, w, lat) in enumerate([(60, 1, 0.8), (150, 1, 6.5), (150, 2, 2.1), (80, 2, 0.6)])])
    decisions = pd.DataFrame([{"decision_id": "cap-1:predictive_reactive:5.000", "run_id": "cap-1",
                               "ts": t0 + pd.Timedelta(seconds=5), "policy": "predictive_reactive",
                               "action": "scale_up", "workers_from": 1, "workers_to": 2, "state": "MIGRATION",
                               "reason": "latency 6.50 s > SLA 5 s", "inputs": "{}", "outcome": "started worker 2"}])
    con = connect()
    try:
        return transaction(con, lambda c: {t: upsert_ignore(c, t, df) for t, df in (
            ("ops.repartition_runs", reparts), ("ops.capacity_samples", samples), ("ops.capacity_decisions", decisions))})
    finally:
        con.close()


def fill_store(tmp_path) -> dict:
    """Population -> nightly -> streamed day -> lift -> QoS refresh -> repartitioning and capacity rows."""
    con = connect()
    migrate(con)
    pop = P.generate(PARAMS)
    load_population(con, pop)
    # a much lower bar than the default 0.15 (this small population scores low: median ~0.005), as an operator would set it (`osr tuner set`), so a small
    # population still gets enough pushes for every step of the funnel
    set_rule(con, "global", "*", threshold=0.01, by="tests")
    con.close()
    report = nightly.run_all(rank=8, iterations=4)
    counts = stream_in_process(pop)
    counts["uploads"] = sum(1 for _ in live_order(pop, "stream"))
    lift = record_run(pop, "test-run-1", report["published"]["live"], counts)
    qos = qos_refresh(tmp_path)
    counts.update(ops_rows())
    return {"pop": pop, "model_id": report["model_id"], "counts": counts, "lift": lift, "qos": qos}
