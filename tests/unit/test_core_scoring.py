"""pipelines.online.osr_score: one entry per event, raw = preference x propensity, scaled into [0, 1], newcomers
get the popular items."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from pipelines.online import snapshot as snap
from pipelines.online.features import NUMERIC_FEATURES
from pipelines.online.osr_score import ITEM_FEATURES, model_frame, score_batch


@pytest.fixture
def snapshot(tmp_path, snapshot_tables, propensity_model_str, snapshot_meta):
    snap.write_snapshot("m1", snapshot_tables, propensity_model_str, snapshot_meta, root=tmp_path)
    return snap.load_snapshot("m1", root=tmp_path)


def feature_row(event_id: str, user_id: str, device_type: str = "watch", ts: float = 1_795_000_000.0) -> dict:
    row = {"event_id": event_id, "user_id": user_id, "device_id": f"{user_id}-{device_type}",
           "device_type": device_type, "ts": ts, "source": "stream"}
    row.update({c: float(k) for k, c in enumerate(NUMERIC_FEATURES)})
    row["hr_pct_peak"] = None if device_type == "phone" else 55.0
    return row


def test_empty_batch():
    assert score_batch([], snapshot=None) == []


def test_one_entry_per_event_with_its_candidates(snapshot):
    rows = [feature_row("e1", "u1"), feature_row("e2", "u2", "phone", ts=1_795_000_100.0), feature_row("e3", "u1")]
    out = score_batch(rows, snapshot)
    assert [o["event_id"] for o in out] == ["e1", "e2", "e3"]
    assert [o["user_id"] for o in out] == ["u1", "u2", "u1"]
    assert out[1]["ts"] == 1_795_000_100.0
    assert all(o["model_id"] == "m1" for o in out)
    assert [s["item_id"] for s in out[0]["scores"]] == ["i0", "i1", "i2"]
    assert [s["item_id"] for s in out[1]["scores"]] == ["i4", "i3"]
    assert [s["category"] for s in out[0]["scores"]] == ["coffee", "lunch", "electronics"]
    assert [s["preference"] for s in out[0]["scores"]] == [1.0, 0.5, 0.25]


def test_raw_is_preference_times_propensity_and_scaled_by_snapshot_range(snapshot):
    out = score_batch([feature_row("e1", "u1"), feature_row("e2", "u2", "phone")], snapshot)
    for o in out:
        for s in o["scores"]:
            assert 0.0 < s["propensity"] < 1.0
            assert s["raw_score"] == pytest.approx(s["preference"] * s["propensity"])
            assert s["osr_score"] == pytest.approx(s["raw_score"])  # the snapshot's range is [0, 1]
    by_item = {s["item_id"]: s for s in out[0]["scores"]}
    # the propensity model learned that coffee sells: the item's own attributes reached the model
    assert by_item["i0"]["propensity"] > 0.6 > 0.2 > by_item["i1"]["propensity"]
    assert by_item["i2"]["propensity"] < 0.2


def test_propensity_matches_the_model_on_the_item_attributes(snapshot, snapshot_tables):
    row = feature_row("e1", "u2", "phone")
    out = score_batch([row], snapshot)
    items = snapshot_tables["items"].set_index("item_id")
    frame = pd.DataFrame([{**row, **items.loc[i, ITEM_FEATURES].to_dict()} for i in ("i4", "i3")])
    expected = snapshot.booster.predict(model_frame(frame, snapshot.meta["categories"]))
    np.testing.assert_allclose([s["propensity"] for s in out[0]["scores"]], expected, rtol=1e-12)


def test_scaled_score_is_clipped(snapshot):
    narrow = replace(snapshot, meta={**snapshot.meta, "raw_min": 0.05, "raw_max": 0.3})
    out = score_batch([feature_row("e1", "u1")], narrow)
    for s in out[0]["scores"]:
        expected = min(max((s["raw_score"] - 0.05) / 0.25, 0.0), 1.0)
        assert s["osr_score"] == pytest.approx(expected)
    scores = {s["item_id"]: s["osr_score"] for s in out[0]["scores"]}
    assert scores["i0"] == 1.0  # coffee, preference 1: raw far above 0.3
    assert scores["i2"] == 0.0  # electronics, preference 0.25: raw under 0.05


def test_degenerate_range_scores_zero(snapshot):
    flat = replace(snapshot, meta={**snapshot.meta, "raw_min": 0.4, "raw_max": 0.4})
    out = score_batch([feature_row("e1", "u1")], flat)
    assert [s["osr_score"] for s in out[0]["scores"]] == [0.0, 0.0, 0.0]
    assert out[0]["scores"][0]["raw_score"] > 0.0


def test_newcomer_gets_popular_items(snapshot):
    out = score_batch([feature_row("e9", "newcomer"), feature_row("e1", "u1")], snapshot)
    new = out[0]
    assert new["user_id"] == "newcomer"
    assert [s["item_id"] for s in new["scores"]] == ["i2", "i5", "i0"]
    np.testing.assert_allclose([s["preference"] for s in new["scores"]], [1.0, 7 / 9, 5 / 9])
    assert [s["item_id"] for s in out[1]["scores"]] == ["i0", "i1", "i2"]


def test_geometric_mean_combiner(snapshot):
    out = score_batch([feature_row("e1", "u1")], snapshot, combine="geometric_mean")
    for s in out[0]["scores"]:
        assert s["raw_score"] == pytest.approx(np.sqrt(s["preference"] * s["propensity"]))
    with pytest.raises(KeyError):
        score_batch([feature_row("e1", "u1")], snapshot, combine="nope")
