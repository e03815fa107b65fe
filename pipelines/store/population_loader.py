"""Load a synthetic population into the store, with history features backfilled
through the same filter + feature code the stream runs."""

from __future__ import annotations

import logging
import math
from types import SimpleNamespace

import numpy as np
import pandas as pd

from pipelines.filtering.moment import moment_id, moment_of
from pipelines.synthetic import population as P
from pipelines.online.chain import take_person
from pipelines.online.features import FEATURE_COLUMNS
from pipelines.filtering.stage import Arrival
from pipelines.store.db import transaction, upsert_ignore
from pipelines.online.tuner import DEFAULT_RULES
from pipelines.online.tuner_rules import log_changes

log = logging.getLogger(__name__)


def backfill_features(pop: P.Population, split: str = "history", progress=None,
                      events=None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Feature rows and ground-truth states for every moment of `split` (or of `events`, an iterable
    of (upload, truth) pairs), through the stream's own code (`online.chain.take_person`): a person's
    devices fused per moment, the same per-person filter state and feature history. People's
    uploads may be interleaved; each person's are taken in time order. An upload the stream would
    dead-letter raises a ValueError with its reason: history must not silently differ from the stream."""
    users = pop.users.set_index("user_id").to_dict("index")
    devices = {u: sorted(g.device_id) for u, g in pop.devices.groupby("user_id")}
    ctx = SimpleNamespace(users=users, stores_xy=pop.stores[["x", "y"]].to_numpy(dtype=float),
                          registered=None, devices_of=devices.get)
    by_person: dict[str, list] = {}
    truth: dict[str, tuple] = {}
    for event, t in (P.sensor_events(pop, split) if events is None else events):
        uid = event["user_id"]
        by_person.setdefault(uid, []).append(Arrival(event, f"{split}:{event['event_id']}", uid, 0.0))
        mid = moment_id(uid, moment_of(event))
        truth[mid] = (mid, uid, t["ts_end"], t["state"])
    rows = []
    for k, (uid, arrivals) in enumerate(by_person.items()):
        arrivals.sort(key=lambda a: a.value["ts"][0])
        taken = take_person(arrivals, None, ctx, math.inf, 0.0)  # history is complete: nothing waits
        if taken.dead:
            raise ValueError(f"backfill: {len(taken.dead)} of {uid}'s uploads would be dead-lettered by the "
                             f"stream, e.g. {taken.dead[0]['reason']}")
        for row in taken.rows:
            row["source"] = split
        rows += taken.rows
        if progress and k % 50 == 0:
            progress(k)
    feats = pd.DataFrame(rows, columns=FEATURE_COLUMNS)
    feats["ts"] = pd.to_datetime(feats.ts, unit="s")
    kept = [truth[r["event_id"]] for r in rows]
    tr = pd.DataFrame(kept, columns=["event_id", "user_id", "ts", "state"])
    tr["ts"] = pd.to_datetime(tr.ts, unit="s")
    return feats, tr


def stream_truth(pop: P.Population) -> pd.DataFrame:
    """Ground-truth state of every streamed moment (the readings themselves go through Kafka), keyed
    like the stream's fused moments: moment_id(user_id, context), one row for all of a person's devices."""
    c = pop.contexts[pop.contexts.split == "stream"]
    n = pop.params.readings_per_event
    rows = [(moment_id(r.user_id, r.context_id), r.user_id, r.start_ts + n - 1, r.state)
            for r in c.itertuples(index=False)]
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

    def work(c) -> dict[str, int]:
        had = set(c.execute("SELECT scope, scope_key FROM tuner.rules").fetchall())
        counts = {table: upsert_ignore(c, table, df) for table, df in tables.items()}
        # the default rules written now are one version of the rules (osr tuner list / explain)
        new = DEFAULT_RULES[[(r.scope, r.scope_key) not in had for r in DEFAULT_RULES.itertuples()]]
        counts["tuner.rule_changes"] = len(new)
        if len(new):
            log_changes(c, "set", new.reset_index(drop=True), by="populate")
        return counts

    # one transaction; run again (nothing of a lost attempt stays) if another writer wins the commit race
    return transaction(con, work)
