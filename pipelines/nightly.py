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

import numpy as np
import pandas as pd

from pipelines import config
from pipelines import snapshot as snap
from pipelines.quality import suites
from pipelines.quality.gate import require
from pipelines.scoring import CATEGORICAL, MODEL_FEATURES, model_frame, score_batch
from pipelines.store.db import connect, migrate, run_sql_file, scalar

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


def train_preferences(model_id: str, db_path: str | None = None, rank: int = DEFAULTS["rank"],
                      reg: float = DEFAULTS["reg"], iterations: int = DEFAULTS["iterations"],
                      alpha: float = DEFAULTS["alpha"], top_n: int = DEFAULTS["top_n"]) -> dict:
    """Implicit-feedback ALS on the purchase history; writes top-N with per-person scaled preference."""
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    import implicit
    from scipy.sparse import csr_matrix

    con = connect(db_path, read_only=True)
    try:
        df = run_sql_file(con, "interactions_for_training")
    finally:
        con.close()
    users = np.sort(df.user_id.unique())
    items = np.sort(df.item_id.unique())
    ui = csr_matrix(
        (alpha * df.weight.to_numpy(dtype=np.float32),
         (np.searchsorted(users, df.user_id), np.searchsorted(items, df.item_id))),
        shape=(len(users), len(items)),
    )
    model = implicit.als.AlternatingLeastSquares(factors=rank, regularization=reg, iterations=iterations,
                                                 random_state=7)
    model.fit(ui, show_progress=False)
    # consumables are bought again, so already-bought items stay candidates
    ids, scores = model.recommend(np.arange(len(users)), ui, N=min(top_n, len(items)),
                                  filter_already_liked_items=False)
    topn = pd.DataFrame({
        "user_id": np.repeat(users, ids.shape[1]),
        "rank": np.tile(np.arange(1, ids.shape[1] + 1), len(users)),
        "item_id": items[ids.ravel()],
        "score": scores.ravel().astype(float),
    })
    best = topn.groupby("user_id").score.transform("max").clip(lower=1e-9)
    topn["preference"] = (topn.score / best).clip(0.0, 1.0)
    out = staging_dir(model_id)
    topn.to_parquet(out / "topn.parquet", index=False)
    info = {"algorithm": "implicit_als", "rank": rank, "reg": reg, "iterations": iterations, "alpha": alpha,
            "users": len(users), "items": len(items), "interactions": len(df)}
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


def _reference_tables(con) -> dict[str, pd.DataFrame]:
    items = con.execute(
        "SELECT i.*, coalesce(p.n, 0)::DOUBLE AS popularity FROM ref.items i "
        "LEFT JOIN (SELECT item_id, count(*) AS n FROM events.interactions GROUP BY 1) p USING (item_id)"
    ).df()
    rules = con.execute("SELECT * FROM tuner.rules").df()
    if rules.empty:
        from pipelines.tuner import DEFAULT_RULES
        rules = DEFAULT_RULES.copy()
    return {
        "items": items,
        "users": con.execute("SELECT user_id, peak_hr, home_x, home_y, work_x, work_y FROM ref.users").df(),
        "stores": con.execute("SELECT store_id, category, x, y FROM ref.stores").df(),
        "rules": rules,
        "preferences": con.execute("SELECT * FROM tuner.preferences").df(),
    }


def build_snapshot(model_id: str, db_path: str | None = None, sample: int = 2000) -> Path:
    """Assemble the snapshot folder and the raw-score range it scales by (from recent history features)."""
    st = staging_dir(model_id)
    topn = pd.read_parquet(st / "topn.parquet")
    prop = json.loads((st / "propensity.json").read_text())
    con = connect(db_path, read_only=True)
    try:
        tables = _reference_tables(con)
        recent = con.execute(
            "SELECT * FROM features.state_features WHERE source = 'history' ORDER BY ts DESC LIMIT ?", [sample]
        ).df()
    finally:
        con.close()
    tables["topn"] = topn
    meta = {"created_at": datetime.now(timezone.utc).isoformat(), "categories": prop["categories"],
            "top_n": int(topn["rank"].max()), "raw_min": 0.0, "raw_max": 1.0,
            "preferences_model": json.loads((st / "preferences.json").read_text()),
            "propensity_metrics": prop["metrics"]}
    folder = snap.write_snapshot(model_id, tables, (st / "propensity.txt").read_text(), meta)
    # The scaling range is a property of this snapshot: score recent states against it.
    s = snap.load_snapshot(model_id)
    recent["ts"] = recent.ts.astype("int64") / 1e9 if np.issubdtype(recent.ts.dtype, np.datetime64) else recent.ts
    raws = [c["raw_score"] for e in score_batch(recent.to_dict("records"), s) for c in e["scores"]]
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
        recent = con.execute(
            "SELECT * FROM features.state_features WHERE source = 'history' ORDER BY ts DESC LIMIT 500").df()
    finally:
        con.close()
    require(topn, "topn_output", suites.topn(users, s.items.index.tolist(), int(s.meta["top_n"])))
    recent["ts"] = recent.ts.astype("int64") / 1e9
    scores = pd.DataFrame([c for e in score_batch(recent.to_dict("records"), s) for c in e["scores"]])
    require(scores, "osr_scores_output", suites.osr_scores())
    return {"topn_rows": len(topn), "scored": len(scores)}


def publish(model_id: str, db_path: str | None = None) -> dict:
    """Register the model, write its top-N to the store, retire the previous one and make it live."""
    s = snap.load_snapshot(model_id)
    topn = pd.read_parquet(s.folder / "topn.parquet")
    con = connect(db_path)
    try:
        migrate(con)
        previous = scalar(con, "SELECT model_id FROM reco.model_registry WHERE status = 'live'")
        con.execute("BEGIN")
        con.execute("UPDATE reco.model_registry SET status = 'retired' WHERE status = 'live'")
        con.execute(
            "INSERT INTO reco.model_registry VALUES (?, 'reco_snapshot', ?, ?, ?, now(), 'live', ?, ?) "
            "ON CONFLICT (model_id) DO UPDATE SET status = 'live'",
            [model_id, "implicit_als+lightgbm", json.dumps(s.meta["preferences_model"]),
             json.dumps(s.meta["propensity_metrics"]), str(s.folder), f"replaces {previous}"],
        )
        con.register("_topn", topn.assign(model_id=model_id))
        con.execute("INSERT INTO reco.topn SELECT model_id, user_id, rank, item_id, score FROM _topn "
                    "ON CONFLICT DO NOTHING")
        con.unregister("_topn")
        con.execute("COMMIT")
    finally:
        con.close()
    snap.set_live(model_id)
    return {"model_id": model_id, "previous": previous, "snapshot": str(s.folder)}


def run_all(db_path: str | None = None, **params) -> dict:
    """The whole nightly chain in-process (what the DAG runs task by task)."""
    model_id = new_model_id()
    report = {"model_id": model_id, "inputs": gate_inputs(db_path)}
    report["preferences"] = train_preferences(model_id, db_path, **params)
    report["propensity"] = train_propensity(model_id, db_path)
    build_snapshot(model_id, db_path)
    report["outputs"] = gate_outputs(model_id, db_path)
    report["published"] = publish(model_id, db_path)
    return report


def announce(published: dict) -> str:
    """Announce the live model on control.models when a broker answers; otherwise say so (workers
    still pick up the LIVE pointer within seconds)."""
    from pipelines.kafka_clients import announce_model
    from pipelines.services.kafka_local import answers

    bootstrap = config.get("OSR_KAFKA_BOOTSTRAP")
    if not answers(bootstrap):
        msg = f"no broker answers at {bootstrap}: not announced; workers will notice the LIVE pointer"
        log.warning(msg)
        return msg
    announce_model(published["model_id"], published["snapshot"])
    return f"announced {published['model_id']} on {config.topic(config.TOPICS.control_models)}"
