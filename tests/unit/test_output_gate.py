"""The nightly's output gate checks what it promises, and its failure path is run: a person whose list
is short or repeats an item, scores the snapshot's scaling range does not cover (before the clip), and
an unknown item each fail the gate."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipelines.quality import suites
from pipelines.quality.gate import GateFailed, require
from pipelines.reco.nightly import per_person_counts

ITEMS = [f"i{k}" for k in range(6)]


def topn(lists: dict[str, list[str]]) -> pd.DataFrame:
    rows = [(u, r + 1, it, 1.0 / (r + 1), 1.0 / (r + 1)) for u, its in lists.items() for r, it in enumerate(its)]
    return pd.DataFrame(rows, columns=["user_id", "rank", "item_id", "score", "preference"])


def test_full_distinct_lists_pass(tmp_path):
    t = topn({"u1": ["i0", "i1", "i2"], "u2": ["i3", "i4", "i5"]})
    assert require(per_person_counts(t), "t", suites.topn_per_person(3), tmp_path).success


@pytest.mark.parametrize("lists", [{"u1": ["i0", "i1", "i2"], "u2": ["i3", "i4"]},          # short list
                                   {"u1": ["i0", "i1", "i2"], "u2": ["i3", "i3", "i4"]}])   # an item twice
def test_short_or_repeating_list_fails(tmp_path, lists):
    with pytest.raises(GateFailed):
        require(per_person_counts(topn(lists)), "t", suites.topn_per_person(3), tmp_path)


def scores(n: int = 200, outside: int = 0, unknown: bool = False) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    raw = rng.uniform(0.0, 0.5, n)
    scaled = raw / 0.5
    scaled[:outside] = 1.3  # more than the scaling range covers: clipping would hide it
    return pd.DataFrame({"item_id": ["i9" if unknown and k == 0 else ITEMS[k % 6] for k in range(n)],
                         "propensity": rng.uniform(0, 1, n), "raw_score": raw, "scaled_unclipped": scaled,
                         "osr_score": np.clip(scaled, 0, 1)})


def test_scores_within_range_pass(tmp_path):
    assert require(scores(outside=1), "s", suites.osr_scores(ITEMS), tmp_path).success  # 0.5 % outside: tolerated


@pytest.mark.parametrize("kwargs", [{"outside": 10}, {"unknown": True}])
def test_uncovered_range_or_unknown_item_fails(tmp_path, kwargs):
    with pytest.raises(GateFailed):
        require(scores(**kwargs), "s", suites.osr_scores(ITEMS), tmp_path)
