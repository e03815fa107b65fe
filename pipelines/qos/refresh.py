"""The steps of the `qos_random_walk_refresh` DAG, each one plain function (the DAG file stays thin).

    snapshot_observations -> gate -> fit_predict -> publish

Steps hand each other small JSON-able dicts (paths, counts): the matrices travel as files
under OSR_HOME/qos/<run_id>/, and only `publish` writes to the store (DuckLake: it may run
while the sink writes).
`ingest` (not a DAG step) loads a WS-DREAM-format matrix into qos.observations.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from pipelines import config
from pipelines.qos import data as qdata
from pipelines.qos import evaluate, store
from pipelines.qos.models import RWConfig, make
from pipelines.quality.gate import GateFailed
from pipelines.store.db import connect, migrate


def run_folder(run_id: str) -> Path:
    p = config.path("OSR_HOME") / "qos" / run_id
    p.mkdir(parents=True, exist_ok=True)
    return p


def new_run_id(metric: str) -> str:
    return f"qos-{metric}-{datetime.now(timezone.utc).strftime('%Y%m%dT%H%M%S%f')}"


def ingest(matrix: str | Path, metric: str = "rt", users: str | Path | None = None,
           services: str | Path | None = None, user_index: str | Path | None = None,
           service_index: str | Path | None = None, db_path: str | None = None) -> dict:
    """Load a WS-DREAM-format matrix (and location lists) into the store; returns row counts."""
    d = qdata.load(matrix, users, services, user_index, service_index, metric)
    con = connect(db_path)
    try:
        migrate(con)
        store.save_locations(con, d.users, d.services)
        n = store.save_observations(con, store.observations_frame(d.values, metric, source=str(matrix)))
    finally:
        con.close()
    return {"observations": n, "users": d.shape[0], "services": d.shape[1], "metric": metric}


def snapshot_observations(metric: str = "rt", run_id: str | None = None, db_path: str | None = None) -> dict:
    """Step 1: copy the metric's observations and node tables out of the store into the run folder."""
    run_id = run_id or new_run_id(metric)
    folder = run_folder(run_id)
    con = connect(db_path)
    try:
        migrate(con)
        n_users, n_services = store.node_counts(con)
        obs = store.read_observations(con, metric)
        users = con.execute("SELECT * FROM qos.users ORDER BY user_id").df()
        services = con.execute("SELECT * FROM qos.services ORDER BY service_id").df()
    finally:
        con.close()
    obs.to_parquet(folder / "observations.parquet")
    users.to_parquet(folder / "users.parquet")
    services.to_parquet(folder / "services.parquet")
    return {"run_id": run_id, "metric": metric, "folder": str(folder), "rows": len(obs),
            "n_users": n_users, "n_services": n_services}


def gate(snapshot: dict) -> dict:
    """Step 2: the Great Expectations gate on the snapshot; raises GateFailed when it does not pass."""
    from pipelines.qos.quality import gate_observations

    obs = pd.read_parquet(Path(snapshot["folder"]) / "observations.parquet")
    result = gate_observations(obs, snapshot["n_users"], snapshot["n_services"], snapshot["metric"])
    if not result.success:
        raise GateFailed(result)
    return {**snapshot, "gate": {"success": True, "report": str(result.report_path)}}


def _snapshot_data(snapshot: dict) -> qdata.QoSData:
    import duckdb

    folder = Path(snapshot["folder"])
    obs = pd.read_parquet(folder / "observations.parquet")
    values = store.matrix_from_frame(obs, snapshot["n_users"], snapshot["n_services"])
    con = duckdb.connect()  # in-memory: reuse the store's location reader on the snapshot files
    try:
        con.execute("CREATE SCHEMA qos")
        for side in ("users", "services"):
            con.execute(f"CREATE TABLE qos.{side} AS SELECT * FROM read_parquet(?)", [str(folder / f"{side}.parquet")])
        users = store.read_locations(con, "users", snapshot["n_users"])
        services = store.read_locations(con, "services", snapshot["n_services"])
    finally:
        con.close()
    return qdata.QoSData(values=values, users=users, services=services, metric=snapshot["metric"])


def fit_predict(snapshot: dict, model: str = "HL-RW", k: int = 10, lam: float | None = None,
                alpha: float | None = None, holdout: float = 0.1, seed: int = 0) -> dict:
    """Step 3: fit on all observations, predict every pair; also score a fit without `holdout` of them."""
    d = _snapshot_data(snapshot)
    cfg = RWConfig()
    cfg = replace(cfg, k=k, lam=cfg.lam if lam is None else lam, alpha=cfg.alpha if alpha is None else alpha)
    observed = ~np.isnan(d.values)
    scores = None
    if holdout and observed.sum() >= 20:
        rng = np.random.default_rng(seed)
        cells = np.flatnonzero(observed)
        held = rng.choice(cells, size=max(1, int(len(cells) * holdout)), replace=False)
        train = d.values.copy().ravel()
        train[held] = np.nan
        pred = make(model, cfg).fit_predict(replace(d, values=train.reshape(d.shape)))
        actual = d.values.ravel()[held]
        p = pred.ravel()[held]
        scores = {"mae": evaluate.mae(p, actual), "nmae": evaluate.nmae(p, actual), "cells": int(len(held))}
    t0 = time.perf_counter()
    m = make(model, cfg)
    pred = m.fit_predict(d)
    seconds = time.perf_counter() - t0
    folder = Path(snapshot["folder"])
    np.save(folder / "predictions.npy", pred)
    meta = {**snapshot, "model": model, "params": asdict(cfg), "holdout": scores, "seconds": seconds,
            "predictions": str(folder / "predictions.npy"), "location": d.location_aware, "info": m.info}
    (folder / "fit.json").write_text(json.dumps(meta, indent=2, default=str))
    return meta


def publish(fit: dict, top: int = 10, db_path: str | None = None) -> dict:
    """Step 4: write predictions, top-K recommendations and the run record to the store."""
    d = _snapshot_data(fit)
    pred = np.load(fit["predictions"])
    con = connect(db_path)
    try:
        migrate(con)
        counts = store.save_predictions(con, fit["run_id"], fit["metric"], pred, ~np.isnan(d.values), k=top)
        store.save_run(con, fit["run_id"], fit["metric"], fit["model"], fit["params"], d, fit.get("holdout"),
                       fit["seconds"])
    finally:
        con.close()
    return {"run_id": fit["run_id"], **counts, "holdout": fit.get("holdout")}


def refresh(metric: str = "rt", model: str = "HL-RW", k: int = 10, lam: float | None = None, top: int = 10,
            db_path: str | None = None) -> dict:
    """All four steps in one process (what the DAG does, for the CLI and tests)."""
    snap = snapshot_observations(metric, db_path=db_path)
    return publish(fit_predict(gate(snap), model=model, k=k, lam=lam), top=top, db_path=db_path)
