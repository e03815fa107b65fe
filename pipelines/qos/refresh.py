"""The steps of the `qos_random_walk_refresh` DAG, each one plain function (the DAG file stays thin).

    snapshot_observations -> gate -> choose_model -> fit_predict -> publish

choose_model fits every candidate (by default the paper's HL-RW, the tuned HL-RW, UIPCC and
LACF) on the same observations less a held-out share, scores each on the held-out cells and
picks the lowest MAE; fit_predict refits the winner on everything; publish writes the
predictions and the whole comparison (qos.model_choice). Which model is best depends on the
density and the metric (see the README's tables), so each run decides on its own data.

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


DEFAULT_CANDIDATES = ("HL-RW-paper", "HL-RW-tuned", "UIPCC", "LACF")


def _config(k: int | None, lam: float | None, alpha: float | None) -> RWConfig:
    """Overrides on top of each model's own preset (fields left None keep the preset's value)."""
    cfg = RWConfig()
    return replace(cfg, k=cfg.k if k is None else k, lam=cfg.lam if lam is None else lam,
                   alpha=cfg.alpha if alpha is None else alpha)


def _held_out(observed: np.ndarray, holdout: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    cells = np.flatnonzero(observed)
    return rng.choice(cells, size=max(1, int(len(cells) * holdout)), replace=False)


def _score(d: qdata.QoSData, model: str, cfg: RWConfig, held: np.ndarray) -> dict:
    train = d.values.copy().ravel()
    train[held] = np.nan
    t0 = time.perf_counter()
    pred = make(model, cfg).fit_predict(replace(d, values=train.reshape(d.shape)))
    seconds = time.perf_counter() - t0
    actual, p = d.values.ravel()[held], pred.ravel()[held]
    return {"model": model, "mae": evaluate.mae(p, actual), "nmae": evaluate.nmae(p, actual),
            "seconds": round(seconds, 3)}


def choose_model(snapshot: dict, candidates: list[str] | tuple[str, ...] = DEFAULT_CANDIDATES,
                 holdout: float = 0.1, seed: int = 0, k: int | None = None, lam: float | None = None,
                 alpha: float | None = None) -> dict:
    """Step 3: validate every candidate on the same held-out observations; the lowest MAE is chosen."""
    candidates = [c.strip() for c in candidates if c and c.strip()]
    if not candidates:
        raise ValueError("choose_model: no candidate models")
    for c in candidates:
        make(c)  # unknown names fail here, before any fit
    if not 0.0 < holdout < 1.0:
        raise ValueError("holdout must be in (0, 1)")
    d = _snapshot_data(snapshot)
    observed = ~np.isnan(d.values)
    if observed.sum() < 20:
        raise ValueError(f"choose_model: {int(observed.sum())} observations, need at least 20 to hold some out")
    held = _held_out(observed, holdout, seed)
    cfg = _config(k, lam, alpha)
    rows = [_score(d, c, cfg, held) for c in candidates]
    best = min(rows, key=lambda r: r["mae"])
    choice = {"chosen": best["model"], "holdout": holdout, "cells": int(len(held)), "seed": seed,
              "candidates": rows}
    (Path(snapshot["folder"]) / "choice.json").write_text(json.dumps(choice, indent=2))
    return {**snapshot, "choice": choice}


def fit_predict(snapshot: dict, model: str | None = None, k: int | None = None, lam: float | None = None,
                alpha: float | None = None, holdout: float = 0.1, seed: int = 0) -> dict:
    """Step 4: fit `model` (default: the one choose_model picked) on all observations, predict every pair.

    Without a choice, also scores a fit without `holdout` of the observations.
    """
    d = _snapshot_data(snapshot)
    choice = snapshot.get("choice")
    model = model or (choice["chosen"] if choice else "HL-RW-paper")
    cfg = _config(k, lam, alpha)
    observed = ~np.isnan(d.values)
    scores = None
    if choice and any(c["model"] == model for c in choice["candidates"]):
        c = next(c for c in choice["candidates"] if c["model"] == model)
        scores = {"mae": c["mae"], "nmae": c["nmae"], "cells": choice["cells"]}
    elif holdout and observed.sum() >= 20:
        r = _score(d, model, cfg, _held_out(observed, holdout, seed))
        scores = {"mae": r["mae"], "nmae": r["nmae"], "cells": int(round(observed.sum() * holdout))}
    t0 = time.perf_counter()
    m = make(model, cfg)
    pred = m.fit_predict(d)
    seconds = time.perf_counter() - t0
    folder = Path(snapshot["folder"])
    np.save(folder / "predictions.npy", pred)
    meta = {**snapshot, "model": model, "params": asdict(m.cfg), "holdout": scores, "seconds": seconds,
            "predictions": str(folder / "predictions.npy"), "location": d.location_aware, "info": m.info}
    (folder / "fit.json").write_text(json.dumps(meta, indent=2, default=str))
    return meta


def publish(fit: dict, top: int = 10, db_path: str | None = None) -> dict:
    """Step 5: write predictions, top-K recommendations, the run record and the model comparison to the store."""
    d = _snapshot_data(fit)
    pred = np.load(fit["predictions"])
    con = connect(db_path)
    try:
        migrate(con)
        counts = store.save_predictions(con, fit["run_id"], fit["metric"], pred, ~np.isnan(d.values), k=top)
        store.save_run(con, fit["run_id"], fit["metric"], fit["model"], fit["params"], d, fit.get("holdout"),
                       fit["seconds"])
        if fit.get("choice"):
            store.save_model_choice(con, fit["run_id"], fit["metric"], fit["choice"])
    finally:
        con.close()
    out = {"run_id": fit["run_id"], "model": fit["model"], **counts, "holdout": fit.get("holdout")}
    if fit.get("choice"):
        out["choice"] = {c["model"]: round(c["mae"], 4) for c in fit["choice"]["candidates"]}
    return out


def refresh(metric: str = "rt", model: str | None = None, k: int | None = None, lam: float | None = None,
            top: int = 10, db_path: str | None = None, candidates: list[str] | tuple[str, ...] | None = None,
            holdout: float = 0.1) -> dict:
    """All the steps in one process (what the DAG does, for the CLI and tests).

    With `model`, that model is published (no choice); otherwise the best of `candidates`.
    """
    snap = gate(snapshot_observations(metric, db_path=db_path))
    if model is None:
        snap = choose_model(snap, candidates or DEFAULT_CANDIDATES, holdout=holdout, k=k, lam=lam)
    return publish(fit_predict(snap, model=model, k=k, lam=lam, holdout=holdout), top=top, db_path=db_path)
