"""Profiles over a window (pure per-customer form == vectorized form) and the seeded workload."""

import json

import numpy as np
import pytest

from pipelines.partitioning import profiles as pr
from pipelines.partitioning.workload import Workload, WorkloadParams, shift, zipf_assign

WIN = pr.Window(bucket_s=10.0, buckets=3)


def test_pure_update_matches_ring_buffer_and_slides():
    rng = np.random.default_rng(0)
    n, m = 5, 400
    cust = rng.integers(0, n, m)
    ts = np.sort(rng.uniform(0, 100, m))
    vals = np.stack([rng.integers(0, s, m) for s in pr.TELCO.sizes], axis=1)
    states = [pr.empty_state() for _ in range(n)]
    for c, t, v in zip(cust, ts, vals):
        states[c] = json.loads(json.dumps(pr.update(states[c], v, float(t), WIN, pr.TELCO)))  # JSON round trip
    ring = pr.WindowCounts(n, WIN, pr.TELCO)
    ring.add(cust, ts, vals)
    now = float(ts[-1])
    states = [pr.expire(s, now, WIN, pr.TELCO) for s in states]
    assert np.allclose(np.stack([pr.profile_vector(s, pr.TELCO) for s in states]), ring.profiles())
    f, mem = ring.costs()
    assert [pr.costs(s, pr.TELCO) for s in states] == list(zip(f.tolist(), mem.tolist()))
    in_window = ts > (np.floor(now / 10) - 3) * 10 + 10 - 1e-9
    assert f.sum() == in_window.sum()  # exactly the updates of the last 3 buckets


def test_profile_shares_sum_to_one_per_group_and_input_is_untouched():
    s0 = pr.empty_state()
    s1 = pr.update(s0, [0, 1, 0, 1], 5.0, WIN, pr.TELCO)
    s2 = pr.update(s1, [3, 1, 1, 1], 6.0, WIN, pr.TELCO)
    assert s0 == {"buckets": []} and len(s1["buckets"][0]) == pr.TELCO.dims + 1
    p = pr.profile_vector(s2, pr.TELCO)
    assert p[:5].tolist() == [0.5, 0, 0, 0.5, 0] and p[5:7].tolist() == [0, 1]
    with pytest.raises(ValueError, match="outside its group"):
        pr.update(s2, [5, 0, 0, 0], 7.0, WIN, pr.TELCO)
    with pytest.raises(ValueError, match="profile state"):
        pr.update({"buckets": [[1, 2]]}, [0, 0, 0, 0], 7.0, WIN, pr.TELCO)


def test_workload_is_seeded_and_follows_its_parameters():
    wp = WorkloadParams(n_nodes=2, customers_per_node=1500, cdrs_per_node=20_000, n_types=4, zipf=1.0, seed=7)
    a, b = Workload.make(wp), Workload.make(wp)
    assert np.array_equal(a.assignment, b.assignment) and np.allclose(a.probs, b.probs)
    ca, cb = a.cdrs(wp.n_cdrs, 0, 100), b.cdrs(wp.n_cdrs, 0, 100)
    assert len(ca.ts) == wp.n_cdrs and np.array_equal(ca.values, cb.values)
    share = np.bincount(a.assignment, minlength=4) / wp.n_customers
    expected = (1 / np.arange(1, 5)) / (1 / np.arange(1, 5)).sum()
    assert np.abs(share - expected).max() < 0.03
    # spread: sd of a customer's attribute around its type's mean is about 0.1 x mean (before renormalising)
    t0 = a.assignment == 0
    rel = a.probs[t0] / a.types.probs[0] - 1
    assert 0.06 < np.median(rel.std(axis=0)) < 0.14
    # per-CDR values follow the caller's probabilities
    top = ca.customer == np.bincount(ca.customer).argmax()
    dest = np.bincount(ca.values[top, 0], minlength=5) / top.sum()
    assert np.abs(dest - a.probs[np.bincount(ca.customer).argmax(), :5]).max() < 0.15


def test_zipf_zero_is_uniform_and_shift_moves_toward_direction():
    rng = np.random.default_rng(1)
    share = np.bincount(zipf_assign(60_000, 3, 0.0, rng)) / 60_000
    assert np.abs(share - 1 / 3).max() < 0.01
    wl = Workload.make(WorkloadParams(n_nodes=1, customers_per_node=500, shift_probability=1.0))
    before = wl.probs.copy()
    moved = wl.step_shifts()
    assert moved.all()
    d0 = np.linalg.norm(before - wl.types.direction[wl.assignment], axis=1)
    d1 = np.linalg.norm(wl.probs - wl.types.direction[wl.assignment], axis=1)
    assert np.allclose(d1, 0.5 * d0)
    _, none = shift(before, wl.types._replace(shift_probability=np.zeros(6)) if hasattr(wl.types, "_replace") else
                    type(wl.types)(wl.types.probs, wl.types.rates, wl.types.direction, np.zeros(6)),
                    wl.assignment, 0.5, rng)
    assert not none.any()
