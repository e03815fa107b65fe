"""The nightly retrain, one function per Airflow task.

gate inputs -> train preferences (ALS) -> train propensity -> gate outputs -> publish.
Tasks hand each other only a model id; artefacts go to a staging folder
OSR_HOME/staging/<model_id>/, so every task can be retried on its own. Nothing
becomes live before `publish`, so a failed gate leaves yesterday's model live.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from pipelines import config
from pipelines.contracts import TOPICS
from pipelines.online import snapshot as snap
from pipelines.quality import suites
from pipelines.quality.gate import require
from pipelines.reco.promotion import candidate_metrics, quality_verdict
from pipelines.online.osr_score import CATEGORICAL, MODEL_FEATURES, model_frame, score_batch
from pipelines.store.db import connect, migrate, run_sql_file, scalar, transaction, upsert_ignore

log = logging.getLogger(__name__)

DEFAULTS = {"rank": 32, "reg": 0.05, "iterations": 15, "alpha": 20.0, "top_n": 10, "max_feature_age_s": 1800}


def new_model_id() -> str:
    return f"reco-{datetime.now(timezone.utc):%Y%m%dT%H%M%S}-{secrets.token_hex(2)}"


def staging_dir(model_id: str) -> Path:
    d = config.path("OSR_HOME") / "staging" / model_id
    d.mkdir(parents=True, exist_ok=True)
    return d


def _write_json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, indent=2, default=str))


def gate_inputs(db_path: str | None = None) -> dict:
    """Great Expectations on the interactions and the propensity training set; raises GateFailed."""
    con = connect(db_path, read_only=True)
    try:
        inter = con.execute("SELECT * FROM events.interactions").df()
        users = [r[0] for r in con.execute("SELECT user_id FROM ref.users").fetchall()]
        items = [r[0] for r in con.execute("SELECT item_id FROM ref.items").fetchall()]
        train = run_sql_file(con, "propensity_training_set", max_age_s=DEFAULTS["max_feature_age_s"])
    finally:
        con.close()
    r1 = require(inter, "interactions_input", suites.interactions(users, items))
    r2 = require(train, "propensity_training_input", suites.propensity_training())
    return {"interactions": r1.n_rows, "propensity_rows": r2.n_rows}


PREFERENCE_ALGORITHMS = ("implicit_als", "dask_als")


def _fit_factors(algorithm: str, M, rank: int, reg: float, iterations: int, alpha: float, seed: int = 7):
    """(user factors, item factors) of implicit-feedback ALS: `implicit` on this machine, or the
    Dask broadcast ALS on OSR_DASK_SCHEDULER / a LocalCluster (the same confidence model)."""
    if algorithm == "implicit_als":
        from pipelines.recsys.implicit_reference import fit_implicit

        r = fit_implicit(M, rank=rank, reg=reg, alpha=alpha, iterations=iterations, seed=seed, num_threads=1)
        return r.user_factors, r.item_factors
    if algorithm == "dask_als":
        from pipelines.recsys.cluster import dask_client
        from pipelines.recsys.dask_als import fit_als

        with dask_client() as client:
            r = fit_als(client, M, rank=rank, reg=reg, iterations=iterations, implicit=True, alpha=alpha, seed=seed)
        return r.user_factors, r.item_factors
    raise ValueError(f"algorithm {algorithm!r}: choose one of {PREFERENCE_ALGORITHMS}")


def train_preferences(model_id: str, db_path: str | None = None, rank: int = DEFAULTS["rank"],
                      reg: float = DEFAULTS["reg"], iterations: int = DEFAULTS["iterations"],
                      alpha: float = DEFAULTS["alpha"], top_n: int = DEFAULTS["top_n"],
                      algorithm: str = "implicit_als", seed: int = 7) -> dict:
    """Implicit-feedback ALS on the purchase history.

    Scored first on a seeded 80/20 hold-out of (person, item) pairs (precision@10 and MAP@10,
    bought-in-train items excluded, as in pipelines.recsys.metrics), then refitted on
    everything; the top-N keeps already-bought items, since consumables are bought again.
    """
    from pipelines.recsys.metrics import ranking_metrics
    from pipelines.recsys.ratings import to_csr
    from pipelines.recsys.topn import top_n as top_n_frame

    con = connect(db_path, read_only=True)
    try:
        df = run_sql_file(con, "interactions_for_training")
    finally:
        con.close()
    users = np.sort(df.user_id.unique())
    items = np.sort(df.item_id.unique())
    u = np.searchsorted(users, df.user_id.to_numpy())
    i = np.searchsorted(items, df.item_id.to_numpy())
    w = df.weight.to_numpy(dtype=np.float32)
    shape = (len(users), len(items))
    test = np.random.default_rng(seed).random(len(df)) < 0.2
    train_m = to_csr(u[~test], i[~test], w[~test], shape)
    test_m = to_csr(u[test], i[test], w[test], shape)
    Xh, Yh = _fit_factors(algorithm, train_m, rank, reg, iterations, alpha, seed)
    holdout = ranking_metrics(Xh, Yh, train_m, test_m, k=10, positive_threshold=1.0)

    X, Y = _fit_factors(algorithm, to_csr(u, i, w, shape), rank, reg, iterations, alpha, seed)
    topn = top_n_frame(X, Y, seen=None, n=min(top_n, len(items)), user_ids=users, item_ids=items)
    topn = topn[["user_id", "rank", "item_id", "score"]]
    best = topn.groupby("user_id").score.transform("max").clip(lower=1e-9)
    topn["preference"] = (topn.score / best).clip(0.0, 1.0)
    out = staging_dir(model_id)
    topn.to_parquet(out / "topn.parquet", index=False)
    info = {"algorithm": algorithm, "rank": rank, "reg": reg, "iterations": iterations, "alpha": alpha,
            "users": len(users), "items": len(items), "interactions": len(df),
            "holdout": {k: (float(v) if isinstance(v, (float, np.floating)) else v) for k, v in holdout.items()}}
    _write_json(out / "preferences.json", info)
    return info


def train_propensity(model_id: str, db_path: str | None = None, seed: int = 7) -> dict:
    """LightGBM E(item | state) on the point-in-time training set; hold-out AUC and log-loss."""
    import lightgbm as lgb
    from sklearn.metrics import log_loss, roc_auc_score

    con = connect(db_path, read_only=True)
    try:
        df = run_sql_file(con, "propensity_training_set", max_age_s=DEFAULTS["max_feature_age_s"])
    finally:
        con.close()
    categories = {c: sorted(df[c].dropna().unique().tolist()) for c in CATEGORICAL}
    # time-ordered split: train on the past, evaluate on the latest 20 %
    cut = int(len(df) * 0.8)
    X = model_frame(df, categories)
    y = df.label.to_numpy()
    params = dict(n_estimators=200, learning_rate=0.05, num_leaves=31, min_child_samples=20,
                  subsample=0.8, subsample_freq=1, colsample_bytree=0.9, random_state=seed, verbose=-1, n_jobs=1)
    holdout = lgb.LGBMClassifier(**params).fit(X.iloc[:cut], y[:cut])
    p = holdout.predict_proba(X.iloc[cut:])[:, 1]
    metrics = {"auc": float(roc_auc_score(y[cut:], p)), "log_loss": float(log_loss(y[cut:], p)),
               "rows": len(df), "positives": int(y.sum()), "holdout_rows": len(df) - cut}
    final = lgb.LGBMClassifier(**params).fit(X, y)
    out = staging_dir(model_id)
    (out / "propensity.txt").write_text(final.booster_.model_to_string())
    _write_json(out / "propensity.json", {"metrics": metrics, "categories": categories, "features": MODEL_FEATURES})
    return metrics


def compare_propensity(model_id: str, db_path: str | None = None, seed: int = 7) -> dict:
    """LightGBM (served) against a distributed mini-batch SGD logistic model and a kNN context
    classifier on the same time-ordered split: AUC and log-loss of each, kept with the model."""
    from pipelines.propensity.evaluate import evaluate_models
    from pipelines.propensity.knn_context import KNNContextPropensity
    from pipelines.propensity.lgbm import LightGBMPropensity
    from pipelines.propensity.sgd_logistic import SGDLogisticPropensity
    from pipelines.recsys.cluster import dask_client

    con = connect(db_path, read_only=True)
    try:
        df = run_sql_file(con, "propensity_training_set", max_age_s=DEFAULTS["max_feature_age_s"])
    finally:
        con.close()
    X = df[MODEL_FEATURES].copy()
    # linear and distance models need numbers everywhere: a missing heart rate (phones) becomes an indicator
    X["has_hr"] = X.hr_pct_peak.notna().astype(float)
    for c in ("hr_pct_peak", "hr_rate_bpm_per_min", "dist_home_m", "dist_work_m", "dist_store_m"):
        X[c] = X[c].astype(float).fillna(0.0)
    for c in CATEGORICAL:
        X[c] = X[c].astype(str)
    y = df.label.to_numpy()
    cut = int(len(df) * 0.8)
    with dask_client() as client:
        results = evaluate_models(
            {"lightgbm": LightGBMPropensity(categorical=CATEGORICAL, seed=seed),
             "sgd_logistic_dask": SGDLogisticPropensity(categorical=CATEGORICAL, client=client, seed=seed),
             "knn_context": KNNContextPropensity(categorical=CATEGORICAL, k=100)},
            X.iloc[:cut], y[:cut], X.iloc[cut:], y[cut:])
    _write_json(staging_dir(model_id) / "propensity_comparison.json", results)
    return results


def reuse_live_preferences(model_id: str) -> dict:
    """For a propensity-only retrain: carry the live model's top-N and its metrics into the new candidate."""
    live = snap.load_snapshot()
    out = staging_dir(model_id)
    pd.read_parquet(live.folder / "topn.parquet").to_parquet(out / "topn.parquet", index=False)
    _write_json(out / "preferences.json", {**live.meta["preferences_model"], "reused_from": live.model_id})
    return live.meta["preferences_model"]


def _reference_tables(con) -> dict[str, pd.DataFrame]:
    items = run_sql_file(con, "snapshot_items")
    rules = con.execute("SELECT * FROM tuner.rules").df()
    if rules.empty:
        from pipelines.online.tuner import DEFAULT_RULES
        rules = DEFAULT_RULES.copy()
    return {
        "items": items,
        "users": con.execute("SELECT user_id, peak_hr, home_x, home_y, work_x, work_y, tz, person_class FROM ref.users").df(),
        "stores": con.execute("SELECT store_id, category, x, y FROM ref.stores").df(),
        "devices": con.execute("SELECT device_id, user_id, device_type FROM ref.devices").df(),
        "rules": rules,
        "preferences": con.execute("SELECT * FROM tuner.preferences").df(),
    }


def score_recent_history(s: snap.Snapshot, db_path: str | None = None, limit: int = 2000) -> pd.DataFrame:
    """Every candidate score of the `limit` latest history states against snapshot `s`, one row each."""
    con = connect(db_path, read_only=True)
    try:
        recent = run_sql_file(con, "recent_history_states", limit=limit)
    finally:
        con.close()
    # epoch seconds whatever the timestamp unit pandas chose (DuckDB 2.0 + pandas 3 give microseconds)
    recent["ts"] = (recent.ts - pd.Timestamp(0)).dt.total_seconds()
    return pd.DataFrame([c for e in score_batch(recent.to_dict("records"), s) for c in e["scores"]])


def build_snapshot(model_id: str, db_path: str | None = None, sample: int = 2000) -> Path:
    """Assemble the snapshot folder and the raw-score range it scales by (from recent history features)."""
    st = staging_dir(model_id)
    topn = pd.read_parquet(st / "topn.parquet")
    prop = json.loads((st / "propensity.json").read_text())
    con = connect(db_path, read_only=True)
    try:
        tables = _reference_tables(con)
    finally:
        con.close()
    tables["topn"] = topn
    meta = {"created_at": datetime.now(timezone.utc).isoformat(), "categories": prop["categories"],
            "top_n": int(topn["rank"].max()), "raw_min": 0.0, "raw_max": 1.0,
            "preferences_model": json.loads((st / "preferences.json").read_text()),
            "propensity_metrics": prop["metrics"]}
    folder = snap.write_snapshot(model_id, tables, (st / "propensity.txt").read_text(), meta)
    # The scaling range is a property of this snapshot: score recent states against it.
    raws = score_recent_history(snap.load_snapshot(model_id), db_path, sample).raw_score
    meta.update(raw_min=float(np.min(raws)), raw_max=float(np.max(raws)), raw_sample=len(raws))
    (folder / "meta.json").write_text(json.dumps({**meta, "model_id": model_id}, indent=2, default=str))
    return folder


def gate_outputs(model_id: str, db_path: str | None = None) -> dict:
    """Great Expectations on what would go live: top-N lists and scores; raises GateFailed."""
    s = snap.load_snapshot(model_id)
    topn = pd.read_parquet(s.folder / "topn.parquet")
    con = connect(db_path, read_only=True)
    try:
        users = [r[0] for r in con.execute("SELECT user_id FROM ref.users").fetchall()]
    finally:
        con.close()
    n = int(s.meta["top_n"])
    items = s.items.index.tolist()
    require(topn, "topn_output", suites.topn(users, items, n))
    require(per_person_counts(topn), "topn_per_person", suites.topn_per_person(n))
    scores = score_recent_history(s, db_path, 500)
    lo, hi = s.raw_range
    scores["scaled_unclipped"] = (scores.raw_score - lo) / (hi - lo) if hi > lo else 0.0
    require(scores, "osr_scores_output", suites.osr_scores(items))
    return {"topn_rows": len(topn), "scored": len(scores)}


def per_person_counts(topn: pd.DataFrame) -> pd.DataFrame:
    """Rows and distinct items of each person's top-N list."""
    return topn.groupby("user_id").agg(items=("item_id", "size"), distinct_items=("item_id", "nunique")).reset_index()


def publish(model_id: str, db_path: str | None = None) -> dict:
    """Register the model; if its quality held against the live one, write its top-N, retire the
    previous model and make it live. Otherwise it is registered as rejected and nothing changes."""
    s = snap.load_snapshot(model_id)
    topn = pd.read_parquet(s.folder / "topn.parquet")
    metrics = candidate_metrics(s.meta)
    algorithm = f"{s.meta['preferences_model']['algorithm']}+lightgbm"

    def register(c):
        """One transaction (run again if another writer wins the commit race): decide against the live
        model as of now, retire it, register this one, write its top-N."""
        if scalar(c, "SELECT count(*) FROM reco.model_registry WHERE model_id = ?", [model_id]):
            raise duckdb.ConstraintException(f"Constraint Error: model {model_id} is registered already")
        live = c.execute("SELECT model_id, metrics FROM reco.model_registry WHERE status = 'live'").fetchall()
        previous, live_metrics = (live[0][0], json.loads(live[0][1])) if live else (None, None)
        promote, why = quality_verdict(metrics, live_metrics)
        if promote:
            c.execute("UPDATE reco.model_registry SET status = 'retired' WHERE status = 'live'")
        c.execute(
            "INSERT INTO reco.model_registry VALUES (?, 'reco_snapshot', ?, ?, ?, now(), ?, ?, ?)",
            [model_id, algorithm, json.dumps(s.meta["preferences_model"]), json.dumps(metrics),
             "live" if promote else "rejected", str(s.folder), f"{why}; previous live: {previous}"],
        )
        if promote:
            upsert_ignore(c, "reco.topn", topn.assign(model_id=model_id)[["model_id", "user_id", "rank", "item_id",
                                                                           "score"]])
        return previous, promote, why

    con = connect(db_path)
    try:
        migrate(con)
        previous, promote, why = transaction(con, register)
    finally:
        con.close()
    if promote:
        snap.set_live(model_id)
    else:
        log.warning("model %s not promoted: %s; %s stays live", model_id, why, previous)
    return {"model_id": model_id, "promoted": promote, "reason": why, "previous": previous,
            "live": model_id if promote else previous, "snapshot": str(s.folder), "metrics": metrics}


def run_all(db_path: str | None = None, algorithm: str = "implicit_als", **params) -> dict:
    """The whole nightly chain in-process (what the DAG runs task by task)."""
    model_id = new_model_id()
    report = {"model_id": model_id, "inputs": gate_inputs(db_path)}
    report["preferences"] = train_preferences(model_id, db_path, algorithm=algorithm, **params)
    report["propensity"] = train_propensity(model_id, db_path)
    build_snapshot(model_id, db_path)
    report["outputs"] = gate_outputs(model_id, db_path)
    report["published"] = publish(model_id, db_path)
    return report


def announce(published: dict) -> str:
    """Announce the live model on control.models when a broker answers; otherwise say so (workers
    still pick up the LIVE pointer within seconds)."""
    from pipelines.ingest.kafka_clients import announce_model, broker_answers

    bootstrap = config.get("OSR_KAFKA_BOOTSTRAP")
    if not broker_answers(bootstrap):
        msg = f"no broker answers at {bootstrap}: not announced; workers will notice the LIVE pointer"
        log.warning(msg)
        return msg
    if not published.get("promoted", True):
        return f"{published['model_id']} was not promoted ({published.get('reason')}); nothing to announce"
    announce_model(published["model_id"], published["snapshot"])
    return f"announced {published['model_id']} on {config.topic(TOPICS.control_models)}"
