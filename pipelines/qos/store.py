"""QoS observations, predictions and recommendations in the store (schema `qos`, sql/migrations/050_qos.sql).

Writes are idempotent: nodes, observations and runs are replaced by their declared key
(pipelines.store.db.KEYS: delete by key, then insert, in one transaction), and
predictions / recommendations of a metric are replaced as a whole by each refresh
(in one transaction, so readers never see half a refresh). Each write is retried when
another writer wins the commit race (pipelines.store.db.transaction).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from pipelines.qos.data import Locations, QoSData
from pipelines.store.db import replace_rows, transaction

HIGHER_IS_BETTER = {"rt": False, "tp": True}


def _locations_frame(loc: Locations, id_col: str) -> pd.DataFrame:
    return pd.DataFrame({
        id_col: np.arange(len(loc), dtype=np.int32),
        "label": [str(x) for x in loc.ids],
        "country": [loc.country_label(i) for i in range(len(loc))],
        "asn": [loc.as_label(i) for i in range(len(loc))],
        "lat": loc.lat.astype(float),
        "lon": loc.lon.astype(float),
    })


def _replace_rows(con, table: str, df: pd.DataFrame) -> None:
    """Upsert `df` by the table's key in one transaction (what INSERT OR REPLACE did with a primary key)."""
    transaction(con, lambda c: replace_rows(c, table, df))


def save_locations(con, users: Locations | None, services: Locations | None) -> None:
    """Upsert the nodes' locations (either side may be None)."""
    if users is not None:
        _replace_rows(con, "qos.users", _locations_frame(users, "user_id"))
    if services is not None:
        _replace_rows(con, "qos.services", _locations_frame(services, "service_id"))


def observations_frame(values: np.ndarray, metric: str, source: str | None = None) -> pd.DataFrame:
    """Long format of a matrix's observed cells: user_id, service_id, metric, value, source."""
    u, s = np.nonzero(~np.isnan(values))
    return pd.DataFrame({
        "user_id": u.astype(np.int32), "service_id": s.astype(np.int32), "metric": metric,
        "value": values[u, s].astype(float), "source": source,
    })


def save_observations(con, df: pd.DataFrame) -> int:
    """Upsert observation rows (user_id, service_id, metric, value[, source][, observed_at]); returns rows written."""
    if len(df) == 0:
        return 0
    _replace_rows(con, "qos.observations", df)
    return len(df)


def read_observations(con, metric: str) -> pd.DataFrame:
    return con.execute(
        "SELECT user_id, service_id, metric, value, observed_at, source FROM qos.observations WHERE metric = ? "
        "ORDER BY user_id, service_id", [metric]).df()


def node_counts(con) -> tuple[int, int]:
    """Matrix size implied by the node tables (max id + 1), or by the observations when those are empty."""
    nu = con.execute("SELECT coalesce(max(user_id) + 1, 0) FROM qos.users").fetchall()[0][0]
    ns = con.execute("SELECT coalesce(max(service_id) + 1, 0) FROM qos.services").fetchall()[0][0]
    ou, os_ = con.execute("SELECT coalesce(max(user_id) + 1, 0), coalesce(max(service_id) + 1, 0) "
                          "FROM qos.observations").fetchall()[0]
    return int(max(nu, ou)), int(max(ns, os_))


def read_locations(con, side: str, n: int) -> Locations | None:
    """Locations of the `users` or `services` side (n nodes), or None when the table is empty."""
    table, id_col = ("qos.users", "user_id") if side == "users" else ("qos.services", "service_id")
    df = con.execute(f"SELECT {id_col} AS id, label, country, asn, lat, lon FROM {table} ORDER BY id").df()
    if df.empty:
        return None
    loc = Locations.unknown(n)
    countries, ases = {}, {}
    ids = loc.ids
    for row in df.itertuples(index=False):
        i = int(row.id)
        if i >= n:
            continue
        ids[i] = row.label if isinstance(row.label, str) else str(i)
        if isinstance(row.country, str):
            loc.country[i] = countries.setdefault(row.country, len(countries))
        if isinstance(row.asn, str):
            loc.asn[i] = ases.setdefault(row.asn, len(ases))
        loc.lat[i] = np.nan if pd.isna(row.lat) else row.lat
        loc.lon[i] = np.nan if pd.isna(row.lon) else row.lon
    loc.country_names, loc.as_names = list(countries), list(ases)
    return loc


def matrix_from_frame(df: pd.DataFrame, n_users: int, n_services: int) -> np.ndarray:
    values = np.full((n_users, n_services), np.nan)
    values[df["user_id"].to_numpy(), df["service_id"].to_numpy()] = df["value"].to_numpy()
    return values


def load(con, metric: str) -> QoSData:
    """The stored observations of `metric` as a matrix, with the stored locations."""
    n_users, n_services = node_counts(con)
    df = read_observations(con, metric)
    return QoSData(values=matrix_from_frame(df, n_users, n_services), users=read_locations(con, "users", n_users),
                   services=read_locations(con, "services", n_services), metric=metric)


def top_k(pred: np.ndarray, observed: np.ndarray, k: int, higher_is_better: bool) -> tuple[np.ndarray, np.ndarray]:
    """Each user's k best services not observed yet: (service index, predicted value), best first (-1 pads)."""
    score = np.where(observed, -np.inf, pred if higher_is_better else -pred)
    k = min(k, pred.shape[1])
    part = np.argpartition(-score, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(score, part, axis=1), axis=1, kind="stable")
    idx = np.take_along_axis(part, order, axis=1)
    valid = np.isfinite(np.take_along_axis(score, idx, axis=1))
    return np.where(valid, idx, -1), np.where(valid, np.take_along_axis(pred, idx, axis=1), np.nan)


def save_run(con, run_id: str, metric: str, model: str, params: dict, data: QoSData, holdout: dict | None,
             seconds: float) -> None:
    h = holdout or {}
    _replace_rows(con, "qos.runs", pd.DataFrame([{
        "run_id": run_id, "metric": metric, "model": model, "params": json.dumps(params),
        "n_users": data.shape[0], "n_services": data.shape[1], "n_observations": int((~np.isnan(data.values)).sum()),
        "holdout_mae": h.get("mae"), "holdout_nmae": h.get("nmae"), "seconds": seconds}]))


def save_predictions(con, run_id: str, metric: str, pred: np.ndarray, observed: np.ndarray, k: int = 10) -> dict:
    """Replace the metric's predictions (unobserved pairs) and top-k recommendations; returns row counts."""
    u, s = np.nonzero(~observed)
    preds = pd.DataFrame({"metric": metric, "user_id": u.astype(np.int32), "service_id": s.astype(np.int32),
                          "predicted": pred[u, s].astype(float), "run_id": run_id})
    idx, val = top_k(pred, observed, k, HIGHER_IS_BETTER[metric])
    users, ranks = np.nonzero(idx >= 0)
    recs = pd.DataFrame({"metric": metric, "user_id": users.astype(np.int32), "rank": (ranks + 1).astype(np.int32),
                         "service_id": idx[users, ranks].astype(np.int32), "predicted": val[users, ranks],
                         "run_id": run_id})
    def replace_metric(c):
        c.execute("DELETE FROM qos.predictions WHERE metric = ?", [metric])
        c.execute("DELETE FROM qos.recommendations WHERE metric = ?", [metric])
        for table, df in (("qos.predictions", preds), ("qos.recommendations", recs)):
            c.register("_qos_batch", df)
            try:
                c.execute(f"INSERT INTO {table} SELECT * FROM _qos_batch")
            finally:
                c.unregister("_qos_batch")

    transaction(con, replace_metric)
    return {"predictions": len(preds), "recommendations": len(recs)}


def save_model_choice(con, run_id: str, metric: str, choice: dict) -> int:
    """The refresh's model comparison (sql/migrations/070): one row per candidate, the published one flagged."""
    rows = [{"run_id": run_id, "metric": metric, "model": c["model"], "holdout_mae": c["mae"],
             "holdout_nmae": c["nmae"], "cells": choice["cells"], "seconds": c["seconds"],
             "chosen": c["model"] == choice["chosen"]} for c in choice["candidates"]]
    if rows:
        _replace_rows(con, "qos.model_choice", pd.DataFrame(rows))
    return len(rows)
