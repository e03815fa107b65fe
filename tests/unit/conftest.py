"""Unit-test fixtures: every test runs with OSR_HOME in its own tmp folder, and a tiny population."""

from __future__ import annotations

import pytest
from model_fixtures import CATEGORIES, small_items, small_propensity_model

from pipelines import config
from pipelines.synthetic.population import PopulationParams, generate

#: Small enough that generating, filtering and loading it takes well under a second.
TINY = PopulationParams(n_users=5, n_items=24, history_contexts_per_user=3, stream_contexts_per_user=2)


@pytest.fixture(autouse=True)
def osr_home(tmp_path, monkeypatch):
    """Point every OSR_* path at a tmp folder, whatever the developer's shell exports."""
    for name in config.SETTINGS:
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "osr_home"
    monkeypatch.setenv("OSR_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def tiny_params() -> PopulationParams:
    return TINY


@pytest.fixture(scope="session")
def tiny_pop():
    """Generated once per session; tests must not mutate it."""
    return generate(TINY)


# --- a tiny model snapshot --------------------------------------------------

@pytest.fixture(scope="session")
def propensity_model_str() -> str:
    """A small LightGBM model that learned: coffee sells (p ~ 0.9), everything else rarely (p ~ 0.05)."""
    return small_propensity_model(n_estimators=30)


@pytest.fixture
def snapshot_tables():
    """The six tables of a snapshot: u1 and u2 have top-N lists, everyone else gets popular items."""
    import pandas as pd

    from pipelines.online.tuner import DEFAULT_RULES

    items = small_items()
    topn = pd.DataFrame({
        "user_id": ["u1", "u1", "u1", "u2", "u2"],
        "rank": [1, 2, 3, 1, 2],
        "item_id": ["i0", "i1", "i2", "i4", "i3"],
        "score": [2.0, 1.0, 0.5, 0.8, 0.4],
        "preference": [1.0, 0.5, 0.25, 1.0, 0.5],
    })
    users = pd.DataFrame({"user_id": ["u1", "u2"], "peak_hr": [190.0, 180.0], "home_x": [0.0, 10.0],
                          "home_y": [0.0, 10.0], "work_x": [100.0, 200.0], "work_y": [100.0, 200.0]})
    stores = pd.DataFrame({"store_id": ["s0", "s1"], "category": ["grocery", "lunch"], "x": [5.0, 50.0],
                           "y": [5.0, 60.0]})
    prefs = pd.DataFrame({"user_id": ["u1", "u2"], "opted_out": [False, True], "quiet_start_hour": [22, None],
                          "quiet_end_hour": [7, None], "daily_cap": [3, 2]})
    return {"topn": topn, "items": items, "users": users, "stores": stores, "rules": DEFAULT_RULES.copy(),
            "preferences": prefs}


@pytest.fixture
def snapshot_meta():
    return {"categories": CATEGORIES, "top_n": 3, "raw_min": 0.0, "raw_max": 1.0}
