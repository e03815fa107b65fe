"""pipelines.synthetic.population: seeded, state-dependent ground truth; pipelines.store.population_loader: idempotent load."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from pipelines.filtering.moment import moment_id, moment_of
from pipelines.synthetic import population as P
from pipelines.store.population_loader import backfill_features, default_preferences, load_population
from pipelines.store.db import connect, migrate, scalar

FRAMES = ("users", "devices", "items", "stores", "interactions", "contexts")


def assert_events_equal(a, b):
    assert len(a) == len(b)
    for (ea, ta), (eb, tb) in zip(a, b):
        assert ea == eb
        assert ta.keys() == tb.keys()
        for k in ta:
            if isinstance(ta[k], np.ndarray):
                np.testing.assert_array_equal(ta[k], tb[k])
            else:
                assert ta[k] == tb[k]


def test_same_seed_gives_the_same_population(tiny_params, tiny_pop):
    again = P.generate(tiny_params)
    for name in FRAMES:
        pd.testing.assert_frame_equal(getattr(tiny_pop, name), getattr(again, name))
    np.testing.assert_array_equal(tiny_pop.user_factors, again.user_factors)
    np.testing.assert_array_equal(tiny_pop.item_factors, again.item_factors)
    for split in ("history", "stream"):
        assert_events_equal(list(P.sensor_events(tiny_pop, split)), list(P.sensor_events(again, split)))
    pd.testing.assert_frame_equal(P.outcomes(tiny_pop), P.outcomes(again))


def test_different_seed_gives_a_different_population(tiny_params, tiny_pop):
    other = P.generate(replace(tiny_params, seed=tiny_params.seed + 1))
    assert not np.allclose(tiny_pop.users.home_x, other.users.home_x)
    assert not np.allclose(tiny_pop.item_factors, other.item_factors)
    assert tiny_pop.contexts.state.tolist() != other.contexts.state.tolist() or \
        not np.allclose(tiny_pop.contexts.start_ts, other.contexts.start_ts)
    e1 = next(P.sensor_events(tiny_pop, "stream"))[0]
    e2 = next(P.sensor_events(other, "stream"))[0]
    assert e1["x"] != e2["x"]


def test_sizes_follow_the_params(tiny_params, tiny_pop):
    p = tiny_params
    assert len(tiny_pop.users) == p.n_users and len(tiny_pop.items) == p.n_items
    assert len(tiny_pop.stores) == p.n_stores
    # nobody buys more distinct items than exist
    assert len(tiny_pop.interactions) == p.n_users * min(p.interactions_per_user, p.n_items)
    assert tiny_pop.interactions.interaction_id.is_unique
    counts = tiny_pop.contexts.groupby("split").size().to_dict()
    assert counts == {"history": p.n_users * p.history_contexts_per_user,
                      "stream": p.n_users * p.stream_contexts_per_user}
    n_uploads = sum(len(tiny_pop.devices[tiny_pop.devices.user_id == u]) for u in
                    tiny_pop.contexts[tiny_pop.contexts.split == "stream"].user_id)
    assert len(list(P.sensor_events(tiny_pop, "stream"))) == n_uploads
    assert set(tiny_pop.devices.device_type) <= {"phone", "watch"}
    assert (tiny_pop.devices.device_type == "phone").sum() == p.n_users  # everyone has a phone


@pytest.mark.parametrize("category", sorted({c for lifts in P.STATE_AFFINITY.values() for c in lifts}))
def test_purchase_probability_is_higher_in_the_affine_state(tiny_pop, category):
    item = tiny_pop.items[tiny_pop.items.category == category].item_id.iloc[0]
    best = max(P.STATES, key=lambda s: P.STATE_AFFINITY[s].get(category, 0.0))
    for user in tiny_pop.users.user_id:
        probs = {s: float(tiny_pop.purchase_probability(user, [item], s)[0]) for s in P.STATES}
        for s in P.STATES:
            if P.STATE_AFFINITY[s].get(category, 0.0) < P.STATE_AFFINITY[best][category]:
                assert probs[best] > probs[s]
            # exact: the log-odds differ by the difference of lifts
            logit = np.log(probs[s] / (1 - probs[s]))
            expected = (P.BASE_LOG_ODDS + P.PREFERENCE_WEIGHT * tiny_pop.preference_z(user, [item])[0]
                        + P.STATE_AFFINITY[s].get(category, 0.0))
            assert logit == pytest.approx(expected, abs=1e-9)


def test_coffee_sells_on_the_commute():
    pop = P.generate(P.PopulationParams(n_users=3, n_items=16, history_contexts_per_user=1,
                                        stream_contexts_per_user=1))
    coffee = pop.items[pop.items.category == "coffee"].item_id.tolist()
    p_commute = pop.purchase_probability("u00000", coffee, "commute")
    p_workout = pop.purchase_probability("u00000", coffee, "workout")
    np.testing.assert_allclose(np.log(p_commute / (1 - p_commute)) - np.log(p_workout / (1 - p_workout)), 2.8)


def test_outcomes_come_after_their_context_ends(tiny_params, tiny_pop):
    out = P.outcomes(tiny_pop, "history")
    hist = tiny_pop.contexts[tiny_pop.contexts.split == "history"]
    assert len(out) == len(hist) * tiny_params.exposures_per_context
    assert out.outcome_id.is_unique and out.purchased.dtype == bool
    ends = {}
    for _event, truth in P.sensor_events(tiny_pop, "history"):
        ends[truth["context_id"]] = max(ends.get(truth["context_id"], 0.0), truth["ts_end"])
    assert set(ends) == set(hist.context_id)
    out_ts = (out.ts - pd.Timestamp("1970-01-01")).dt.total_seconds().to_numpy()
    ctx_of = out.outcome_id.str.slice(2).str.rsplit("-", n=1).str[0]
    for ctx, t in zip(ctx_of, out_ts):
        assert t > ends[ctx]
        assert t - ends[ctx] < 120.0  # about a minute after, not some other day
    # items shown in one context are distinct
    assert not out.assign(ctx=ctx_of).duplicated(["ctx", "item_id"]).any()


def test_contexts_of_one_person_do_not_overlap(tiny_params, tiny_pop):
    c = tiny_pop.contexts.sort_values(["user_id", "start_ts"])
    gaps = c.groupby("user_id").start_ts.diff().dropna()
    assert (gaps >= tiny_params.readings_per_event + 600.0 - 1e-6).all()


def test_backfill_features_one_row_per_history_moment(tiny_pop):
    """A person's devices of one moment are fused, as in the stream: one row per (person, context)."""
    feats, truth = backfill_features(tiny_pop, "history")
    moments = list(dict.fromkeys(moment_id(e["user_id"], moment_of(e)) for e, _ in P.sensor_events(tiny_pop, "history")))
    assert feats.event_id.tolist() == moments == truth.event_id.tolist()
    n_uploads = len(list(P.sensor_events(tiny_pop, "history")))
    assert feats.device_id.str.split("+").str.len().sum() == n_uploads  # every upload fused exactly once
    assert len(moments) < n_uploads  # some people carry a watch: fusion happened
    assert (feats.source == "history").all()
    assert set(truth.state) <= set(P.STATES)
    phones = feats[feats.device_type == "phone"]
    assert phones.hr_pct_peak.isna().all()
    assert feats[feats.device_type == "watch"].hr_pct_peak.notna().all()


def test_default_preferences_quiet_hours_are_22_to_7(tiny_pop):
    prefs = default_preferences(tiny_pop)
    assert prefs.user_id.tolist() == tiny_pop.users.user_id.tolist()
    quiet = prefs.quiet_start_hour.notna()
    assert (prefs.quiet_start_hour[quiet] == 22).all() and (prefs.quiet_end_hour[quiet] == 7).all()
    assert prefs.quiet_end_hour[~quiet].isna().all()
    assert set(prefs.daily_cap) <= {2, 3, 5}


def test_load_population_twice_inserts_nothing_the_second_time(tmp_path, tiny_params, tiny_pop):
    con = connect(tmp_path / "pop.duckdb")
    migrate(con)
    first = load_population(con, tiny_pop)
    n_hist = len({moment_id(e["user_id"], moment_of(e)) for e, _ in P.sensor_events(tiny_pop, "history")})
    n_stream = len({moment_id(e["user_id"], moment_of(e)) for e, _ in P.sensor_events(tiny_pop, "stream")})
    assert first["ref.users"] == tiny_params.n_users
    assert first["ref.items"] == tiny_params.n_items
    assert first["ref.devices"] == len(tiny_pop.devices)
    assert first["events.interactions"] == len(tiny_pop.interactions)
    assert first["features.state_features"] == n_hist
    assert first["events.state_truth"] == n_hist + n_stream
    assert first["events.outcomes"] == len(tiny_pop.contexts[tiny_pop.contexts.split == "history"]) * 3
    assert first["tuner.rules"] == 2 and first["tuner.preferences"] == tiny_params.n_users
    assert all(n > 0 for n in first.values())
    second = load_population(con, tiny_pop)
    assert second == {table: 0 for table in first}
    for table, n in first.items():
        assert scalar(con, f"SELECT count(*) FROM {table}") == n
    con.close()
