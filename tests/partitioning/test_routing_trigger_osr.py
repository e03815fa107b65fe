"""Routing table versions and diffs, consistent hashing, the adaptive trigger, the OSR mapping."""

import numpy as np
import pytest

from pipelines.partitioning import hashing, trigger
from pipelines.partitioning.osr_events import OSR, to_update
from pipelines.partitioning.routing import Move, RoutingTable, diff


def test_routing_table_versions_and_diff():
    keys = [f"c{i}" for i in range(200)]
    v0 = RoutingTable.hashed(keys, 4)
    assert v0.version == 0 and v0.nodes_of(keys).tolist() == hashing.place(keys, 4).tolist()
    target = [(v0.route(k) + 1) % 4 for k in keys[:10]]
    v1 = v0.next(keys[:10], target)
    assert v1.version == 1 and v0.route(keys[0]) != v1.route(keys[0])  # v0 untouched
    moves = diff(v0, v1)
    assert moves == [Move(k, v0.route(k), t) for k, t in sorted(zip(keys[:10], target))]
    assert RoutingTable.from_json(v1.to_json()) == v1
    assert v1.route("never-seen") == int(hashing.place(["never-seen"], 4)[0])
    with pytest.raises(ValueError, match="forward"):
        diff(v1, v0)
    with pytest.raises(ValueError, match="outside"):
        v1.next(["c1"], [9])


def test_consistent_hash_moves_about_one_in_n_plus_one():
    keys = [f"c{i}" for i in range(20_000)]
    a, b = hashing.place(keys, 8), hashing.place(keys, 9)
    moved = (a != b).mean()
    assert 0.07 < moved < 0.16  # 1/9 = 0.11; a modulo hash would move ~8/9
    assert np.all(b[a != b] == 8)  # keys only move to the new node
    assert np.bincount(a).min() > 0.6 * len(keys) / 8


def test_trigger_is_quiet_without_change_and_fires_on_drift():
    rng = np.random.default_rng(0)
    centres = rng.random((6, 5)) * 4
    x = centres[rng.integers(0, 6, 600)] + 0.3 * rng.standard_normal((600, 5))
    keys = [f"k{i}" for i in range(600)]
    base = trigger.baseline(keys, x)
    assert trigger.drift(base, keys, x) == pytest.approx(1.0)
    drifted = x.copy()
    drifted[:300] = centres[rng.integers(0, 6, 300)] + 0.3 * rng.standard_normal((300, 5))
    nmi = trigger.drift(base, keys, drifted)
    assert nmi < trigger.THRESHOLD
    assert trigger.should_repartition([1.0, nmi]) and not trigger.should_repartition([1.0, 0.95])


def test_osr_interactions_map_onto_a_schema():
    key, ts, values = to_update({"user_id": "u00001", "ts": 1_700_000_000 + 9 * 3600 % 86400, "category": "coffee",
                                 "state": "commute", "kind": "purchase"})
    assert key == "u00001" and len(values) == len(OSR.groups)
    assert OSR.names[values[1] + OSR.offsets[1]] == "category.coffee"
    for bad, reason in [({"user_id": "u", "ts": 1.0, "category": "tea", "state": "idle", "kind": "push"}, "category"),
                        ({"user_id": "u", "ts": float("nan"), "category": "coffee", "state": "idle", "kind": "push"}, "ts"),
                        ({"ts": 1.0, "category": "coffee", "state": "idle", "kind": "push"}, "user_id"),
                        ({"user_id": "u", "ts": 1.0, "category": "coffee", "state": "idle", "kind": "view"}, "kind")]:
        with pytest.raises(ValueError, match=reason):
            to_update(bad)
