"""Eqs. 5-9 and Algorithm 1 of sec. 4, on hand-made micro-clusters."""

import dataclasses
import math

import numpy as np
import pytest

from pipelines.partitioning import microclusters
from pipelines.partitioning.repartition import (RepartitionParams, affinity, balance_disaffinity,
                                                clustering_disaffinity, g_migration, l_scaler, repartition)


def test_g_meets_its_end_points_and_is_concave_decreasing():
    G = 100.0
    assert g_migration(0.0, G) == pytest.approx(1.0)
    assert g_migration(G, G) == pytest.approx(0.0)
    x = np.linspace(0, G, 11)
    y = g_migration(x, G)
    assert (np.diff(y) < 0).all() and (np.diff(y, 2) < 0).all()  # penalises late moves more
    c = 2.0
    assert g_migration(50.0, G, c) == pytest.approx((math.e ** c - math.e ** (c * 0.5)) / (math.e ** c - 1))
    assert g_migration(120.0, G) < 0


def test_l_scaler_meets_its_end_points():
    L = 100.0
    assert l_scaler(0.0, L) == pytest.approx(0.0)
    assert l_scaler(L / 10 - 1e-9, L) == pytest.approx(1.0)
    assert l_scaler(L / 10, L) == 1.0 and l_scaler(70.0, L) == 1.0
    assert l_scaler(5.0, L) == pytest.approx((math.exp(0.1) - 1) / (math.exp(0.2) - 1))


def test_clustering_disaffinity_average_of_k_nearest_and_centre_for_empty_nodes():
    inf = np.inf
    members = np.array([[1.0, 3.0, 5.0, inf], [inf, inf, inf, 2.0], [inf, inf, inf, inf]])
    ac = clustering_disaffinity(members, centre_dist=np.array([9.0, 9.0, 4.0]), k=2)
    raw = np.array([(1 + 3) / 2, 2.0, 4.0])
    assert ac == pytest.approx(raw / raw.sum())
    assert ac.sum() == pytest.approx(1.0)
    assert clustering_disaffinity(np.zeros((3, 2)), np.zeros(3), 1) == pytest.approx([1 / 3] * 3)


def test_balance_disaffinity_and_affinity():
    ab = balance_disaffinity(2.0, np.array([0.0, 4.0, 2.0]))
    assert ab == pytest.approx(np.array([2.0, 6.0, 4.0]) / 12.0)
    a = affinity([1.0, 0.5], [0.2, 0.8], [0.6, 0.4], alpha=0.25)
    assert a == pytest.approx([1.0 * (1 - (0.75 * 0.2 + 0.25 * 0.6)), 0.5 * (1 - (0.75 * 0.8 + 0.25 * 0.4))])


def _blobs(n_nodes=4, per=60, seed=0):
    """4 tight, distant blobs of profiles spread evenly over nodes (a hash-like start)."""
    rng = np.random.default_rng(seed)
    centres = np.eye(4) * 3.0
    truth = np.repeat(np.arange(4), per)
    x = centres[truth] + 0.05 * rng.standard_normal((len(truth), 4))
    nodes = rng.permutation(np.arange(len(truth)) % n_nodes)
    return x, truth, nodes


def test_greedy_collects_each_blob_on_one_node_when_migration_is_free():
    x, truth, nodes = _blobs()
    mc = microclusters.build(x, nodes, np.ones(len(x)), np.ones(len(x)), 4, per_cluster=10)
    res = repartition(mc, 4, RepartitionParams(budget_nodes=4.0 * 100))  # G >> total: moves ~free
    new = res.profile_nodes(mc)
    for t in range(4):
        assert len(np.unique(new[truth == t])) == 1
    assert len(np.unique(new)) == 4


def test_greedy_never_exceeds_the_migration_budget():
    x, truth, nodes = _blobs(seed=1)
    mem = np.random.default_rng(2).uniform(1, 3, len(x))
    mc = microclusters.build(x, nodes, mem, mem, 4, per_cluster=10)
    res = repartition(mc, 4, RepartitionParams())
    moved = mem[res.profile_nodes(mc) != nodes].sum()
    assert res.budget == pytest.approx(2 / 4 * mem.sum())
    assert moved == pytest.approx(res.moved_state) and 0 < moved <= res.budget


def test_alpha_one_balances_alpha_zero_clusters():
    x, truth, nodes = _blobs(seed=3)
    proc = np.where(truth == 0, 5.0, 1.0)  # blob 0 carries most of the load
    mc = microclusters.build(x, nodes, proc, np.ones(len(x)), 4, per_cluster=10)
    free = dict(budget_nodes=400.0, use_memory=False)
    clustered = repartition(mc, 4, RepartitionParams(alpha=0.0, **free)).profile_nodes(mc)
    balanced = repartition(mc, 4, RepartitionParams(alpha=1.0, **free)).profile_nodes(mc)
    cov = lambda n: np.bincount(n, weights=proc, minlength=4).std() / np.bincount(n, weights=proc, minlength=4).mean()  # noqa: E731
    assert cov(balanced) < cov(clustered)
    assert len(np.unique(clustered[truth == 0])) == 1
    assert len(np.unique(balanced[truth == 0])) > 1


def test_scale_in_moves_everything_off_the_removed_node():
    x, truth, nodes = _blobs(n_nodes=4, seed=4)
    mc = microclusters.build(x, nodes, np.ones(len(x)), np.ones(len(x)), 4, per_cluster=10)
    new = repartition(mc, 3, RepartitionParams()).profile_nodes(mc)
    assert new.max() <= 2


def test_microcluster_summaries():
    x = np.array([[0.0, 0.0], [2.0, 0.0], [10.0, 10.0]])
    mc = microclusters.summarise(x, np.array([0, 0, 1]), np.array([1.0, 2.0, 3.0]), np.array([4.0, 5.0, 6.0]),
                                 np.array([0, 1]))
    assert mc.centroid.tolist() == [[1.0, 0.0], [10.0, 10.0]]
    assert mc.radius.tolist() == [1.0, 0.0]
    assert mc.processing.tolist() == [3.0, 3.0] and mc.memory.tolist() == [9.0, 6.0]
    s = mc.summaries()[0]
    assert set(s) == {"o", "r", "p", "m", "l"} and s["l"] == 0
    built = microclusters.build(np.random.default_rng(0).random((95, 3)), np.zeros(95, int), np.ones(95), np.ones(95), 1)
    assert len(built) == math.ceil(95 / 30)
    dataclasses.replace(built)  # frozen dataclass stays replaceable
