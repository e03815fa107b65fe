"""Load a synthetic population into the store, with history features backfilled
through the same filter + feature code the stream runs."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from pipelines.contracts import event_id_for
from pipelines.synthetic import population as P
from pipelines.online.features import FEATURE_COLUMNS, state_features
from pipelines.filtering.kalman import filter_event
from pipelines.store.db import transaction, upsert_ignore
from pipelines.online.tuner import DEFAULT_RULES

log = logging.getLogger(__name__)


def backfill_features(pop: P.Population, split: str = "history", progress=None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Feature rows and ground-truth states for every upload of `split`, filtered per device in time order."""
    users = pop.users.set_index("user_id").to_dict("index")
    stores_xy = pop.stores[["x", "y"]].to_numpy(dtype=float)
    kalman: dict[str, dict] = {}
    rows, truth = [], []
    for k, (event, t) in enumerate(P.sensor_events(pop, split)):
        filtered, kalman[event["device_id"]] = filter_event(event, kalman.get(event["device_id"]))
        rows.append(state_features(filtered, users[event["user_id"]], stores_xy, source=split))
        truth.append((t["event_id"], t["user_id"], t["ts_end"], t["state"]))
        if progress and k % 2000 == 0:
            progress(k)
    feats = pd.DataFrame(rows, columns=FEATURE_COLUMNS)
    feats["ts"] = pd.to_datetime(feats.ts, unit="s")
    tr = pd.DataFrame(truth, columns=["event_id", "user_id", "ts", "state"])
    tr["ts"] = pd.to_datetime(tr.ts, unit="s")
    return feats, tr


def stream_truth(pop: P.Population) -> pd.DataFrame:
    """Ground-truth state of every streamed upload (the readings themselves go through Kafka)."""
    c = pop.contexts[pop.contexts.split == "stream"]
    devs = pop.devices.groupby("user_id").device_type.apply(list).to_dict()
    n = pop.params.readings_per_event
    rows = [(event_id_for(f"{r.user_id}-{d}", r.context_id), r.user_id, r.start_ts + n - 1, r.state)
            for r in c.itertuples(index=False) for d in devs[r.user_id]]
    df = pd.DataFrame(rows, columns=["event_id", "user_id", "ts", "state"])
    df["ts"] = pd.to_datetime(df.ts, unit="s")
    return df


def default_preferences(pop: P.Population) -> pd.DataFrame:
    """Personal notification preferences: a few opt out, some keep quiet nights, caps vary."""
    rng = np.random.default_rng(pop.params.seed + 4)
    n = len(pop.users)
    quiet = rng.random(n) < 0.3
    return pd.DataFrame({
        "user_id": pop.users.user_id,
        "opted_out": rng.random(n) < 0.05,
        "quiet_start_hour": np.where(quiet, 22, None),
        "quiet_end_hour": np.where(quiet, 7, None),
        "daily_cap": rng.choice([2, 3, 5], n),
    })


def load_population(con, pop: P.Population, progress=None) -> dict[str, int]:
    """Write reference data, history, backfilled features, truth, default rules and preferences. Idempotent."""
    feats, truth = backfill_features(pop, "history", progress)
    tables = {  # each keyed by its declared key (pipelines.store.db.KEYS)
        "ref.users": pop.users,
        "ref.devices": pop.devices,
        "ref.items": pop.items,
        "ref.stores": pop.stores,
        "events.interactions": pop.interactions,
        "events.outcomes": P.outcomes(pop, "history"),
        "features.state_features": feats,
        "events.state_truth": pd.concat([truth, stream_truth(pop)], ignore_index=True),
        "tuner.rules": DEFAULT_RULES,
        "tuner.preferences": default_preferences(pop),
    }
    # one transaction; run again (nothing of a lost attempt stays) if another writer wins the commit race
    return transaction(con, lambda c: {table: upsert_ignore(c, table, df) for table, df in tables.items()})
