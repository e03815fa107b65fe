"""Eq. 3 / Eq. 4 (direct similarity), the baselines' PCC, and Eq. 7 (location weight), against hand computation."""

import math

import numpy as np
import pytest

from pipelines.qos import location, similarity
from pipelines.qos.data import Locations

NAN = np.nan
Q = np.array([[1.0, 2.0, NAN, 4.0],
              [2.0, 4.0, 1.0, NAN],
              [NAN, 1.0, 1.0, 1.0]])
MASK = ~np.isnan(Q)


def test_eq3_by_hand():
    # means: u0 = 7/3, u1 = 7/3, u2 = 1
    # (0,1) common {0,1}: centred u0 = (-4/3, -1/3), u1 = (-1/3, 5/3): diffs (-1, -2) -> d = sqrt(5/2)
    # (0,2) common {1,3}: u0 = (-1/3, 5/3), u2 = (0, 0) -> d = sqrt(26/9 / 2)
    # (1,2) common {1,2}: u1 = (5/3, -4/3), u2 = (0, 0) -> d = sqrt(41/9 / 2)
    s = similarity.penalized_euclidean(Q, MASK, gamma=1, sigma=1.0)
    assert s[0, 1] == pytest.approx(1 / (1 + math.sqrt(2.5)))
    assert s[0, 2] == pytest.approx(1 / (1 + math.sqrt(13 / 9)))
    assert s[1, 2] == pytest.approx(1 / (1 + math.sqrt(41 / 18)))
    assert np.allclose(s, s.T) and np.all(np.diag(s) == 0)
    # sigma is the distance unit; gamma shrinks pairs with fewer than gamma co-invocations
    s2 = similarity.penalized_euclidean(Q, MASK, gamma=4, sigma=0.5)
    assert s2[0, 1] == pytest.approx(2 / 4 * 1 / (1 + math.sqrt(2.5) / 0.5))
    # an edge needs min_common co-invocations
    assert similarity.penalized_euclidean(Q, MASK, gamma=1, sigma=1.0, min_common=3)[0, 1] == 0


def _eq3_loop(values, mask, gamma, sigma):
    n = values.shape[0]
    means = [values[i, mask[i]].mean() for i in range(n)]
    out = np.zeros((n, n))
    for a in range(n):
        for b in range(n):
            common = np.flatnonzero(mask[a] & mask[b])
            if a == b or len(common) == 0:
                continue
            diff = (values[a, common] - means[a]) - (values[b, common] - means[b])
            d = math.sqrt(float((diff ** 2).sum()) / len(common))
            out[a, b] = min(len(common), gamma) / gamma / (1 + d / sigma)
    return out


def test_eq3_and_eq4_match_the_definition_on_random_sparse_data():
    rng = np.random.default_rng(3)
    v = rng.gamma(2.0, 0.5, (12, 30))
    mask = rng.random(v.shape) < 0.4
    v = np.where(mask, v, np.nan)
    assert np.allclose(similarity.penalized_euclidean(v, mask, gamma=5, sigma=0.7), _eq3_loop(v, mask, 5, 0.7))
    # Eq. 4: services are the rows of the transposed matrix
    assert np.allclose(similarity.penalized_euclidean(v.T, mask.T, gamma=5, sigma=0.7),
                       _eq3_loop(v.T, mask.T, 5, 0.7))
    f32 = similarity.penalized_euclidean(v.T, mask.T, gamma=5, sigma=0.7, dtype=np.float32)
    assert f32.dtype == np.float32 and np.allclose(f32, _eq3_loop(v.T, mask.T, 5, 0.7), atol=1e-5)


def test_pcc_matches_wsdream_reference_semantics():
    rng = np.random.default_rng(5)
    v = rng.gamma(2.0, 0.5, (10, 25))
    mask = rng.random(v.shape) < 0.5
    v = np.where(mask, v, np.nan)
    got = similarity.pcc(v, mask)
    means = [v[i, mask[i]].mean() for i in range(10)]
    for a in range(10):
        for b in range(10):
            common = np.flatnonzero(mask[a] & mask[b])
            want = 0.0
            if a != b and len(common) >= 2:
                x, y = v[a, common] - means[a], v[b, common] - means[b]
                den = math.sqrt((x * x).sum() * (y * y).sum())
                if den > 0:
                    want = max(0.0, float((x * y).sum() / den))
            assert got[a, b] == pytest.approx(want, abs=1e-9)


# Four users: u0, u1 share AS1 (country A); u2 is in country A on AS2; u3 is in country B (AS3).
LOC4 = Locations(asn=np.array([0, 0, 1, 2]), country=np.array([0, 0, 0, 1]), lat=np.zeros(4), lon=np.zeros(4),
                 as_names=["AS1", "AS2", "AS3"], country_names=["A", "B"], ids=list("0123"))
V4 = np.array([[1.0, 2.0, 3.0],
               [1.2, 2.4, 2.7],
               [2.0, 2.5, 1.0],
               [5.0, 1.0, 2.0]])
M4 = np.ones_like(V4, dtype=bool)


def _sim_to(x, ref, gamma, sigma):
    d = math.sqrt(float((((x - x.mean()) - (ref - ref.mean())) ** 2).mean()))
    return min(len(x), gamma) / gamma / (1 + d / sigma)


def test_eq7_location_weight_by_hand():
    g, sig = 10.0, 1.0
    as1 = V4[[0, 1]].mean(axis=0)
    country_a = V4[[0, 1, 2]].mean(axis=0)
    everyone = V4.mean(axis=0)
    w_as = [_sim_to(V4[i], as1, g, sig) for i in (0, 1)]
    w_c = [_sim_to(V4[i], country_a, g, sig) for i in (0, 1, 2)]
    w_all = [_sim_to(V4[i], everyone, g, sig) for i in range(4)]
    om = location.omega(V4, M4, LOC4, gamma=g, sigma=sig, mode="symmetric")
    assert om[0, 1] == pytest.approx(math.sqrt(w_as[0] * w_as[1]))  # shared AS
    assert om[0, 2] == pytest.approx(math.sqrt(w_c[0] * w_c[2]))  # shared country only
    assert om[1, 2] == pytest.approx(math.sqrt(w_c[1] * w_c[2]))
    assert om[0, 3] == pytest.approx(math.sqrt(w_all[0] * w_all[3]))  # nothing shared: everyone
    assert np.allclose(om, om.T)
    nb = location.omega(V4, M4, LOC4, gamma=g, sigma=sig, mode="neighbour")
    assert nb[0, 1] == pytest.approx(w_as[1]) and nb[2, 0] == pytest.approx(w_c[0]) and nb[0, 3] == pytest.approx(
        w_all[3])
    # a member is closer to its own AS's mean than to everyone's: sharing the AS weighs more here
    assert om[0, 1] > om[0, 3]


def test_eq7_off_or_unknown_means_omega_one():
    assert location.omega(V4, M4, LOC4, gamma=10, sigma=1, enabled=False) is None
    assert location.omega(V4, M4, Locations.unknown(4), gamma=10, sigma=1) is None
    assert location.omega(V4, M4, None, gamma=10, sigma=1) is None


def test_shared_level_and_same_as():
    lvl = location.shared_level(LOC4)
    assert lvl[0, 1] == 2 and lvl[0, 2] == 1 and lvl[0, 3] == 0
    same = location.same_as(LOC4, 4)
    assert same[0, 1] and not same[0, 2]
    assert location.same_as(Locations.unknown(4), 4) is None
