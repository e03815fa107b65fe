"""The paper's equations (sections 5.2-5.4) on a hand-checkable 4-user example, and its worked example.

Each equation is checked against numbers worked out by hand (in the comments) or against a
plain loop written from the paper's text, never against the vectorised code itself.
"""

import math

import numpy as np
import pytest

from pipelines.qos import location, models, neighbours, randomwalk, similarity
from pipelines.qos.data import Locations, QoSData

NAN = np.nan
# 4 users x 5 services (response times); NaN = not invoked
Q = np.array([[1.0, 2.0, NAN, 4.0, NAN],
              [2.0, NAN, 3.0, 5.0, 1.0],
              [NAN, 1.0, 2.0, NAN, 2.0],
              [3.0, 3.0, NAN, 1.0, NAN]])
MASK = ~np.isnan(Q)
# users 0 and 1 share AS 0; user 2 is in another AS of the same country; user 3 in another country
USERS = Locations(asn=np.array([0, 0, 1, 2]), country=np.array([0, 0, 0, 1]), lat=np.zeros(4), lon=np.zeros(4),
                  as_names=["AS1", "AS2", "AS3"], country_names=["X", "Y"], ids=list("0123"))
ALPHA = 0.85


def paper_sim(a, b):
    """Eq. 3 read literally: 1 / (1 + sqrt(mean over co-invoked i of ((q_ai - qbar_i) - (q_bi - qbar_i))^2)),
    qbar_i the mean of the two users' values on i."""
    both = ~np.isnan(a) & ~np.isnan(b)
    if not both.any():
        return 0.0
    qbar = (a[both] + b[both]) / 2
    return 1.0 / (1.0 + math.sqrt(np.mean(((a[both] - qbar) - (b[both] - qbar)) ** 2)))


def direct(values):
    return similarity.penalized_euclidean(values, ~np.isnan(values), gamma=1.0, sigma=1.0, centring=False)


def test_eq3_hand_numbers_and_the_centring_cancels():
    s = direct(Q)
    assert s[0, 1] == pytest.approx(0.5)  # co-invoked 0, 3: diffs -1, -1 -> d = 1
    assert s[0, 2] == pytest.approx(0.5)  # co-invoked 1: diff 1
    assert s[0, 3] == pytest.approx(1 / (1 + math.sqrt(14 / 3)))  # diffs -2, -1, 3
    assert s[1, 3] == pytest.approx(1 / (1 + math.sqrt(8.5)))  # diffs -1, 4
    assert s[2, 3] == pytest.approx(1 / 3)  # diff -2
    assert np.allclose(s, s.T) and np.all(np.diag(s) == 0)
    for a in range(4):
        for b in range(4):
            if a != b:
                assert s[a, b] == pytest.approx(paper_sim(Q[a], Q[b]))  # pair-mean centring: same value
    # the tuned departures move it: shrinkage, a unit, per-node centring
    shrunk = similarity.penalized_euclidean(Q, MASK, gamma=10.0, sigma=1.0, centring=False)
    assert shrunk[0, 3] == pytest.approx(s[0, 3] * 3 / 10)
    # per-node centring: u0's mean 7/3, u1's 11/4; deviations differ by -7/12 on both co-invoked services
    assert similarity.penalized_euclidean(Q, MASK, gamma=1.0, sigma=1.0, centring=True)[0, 1] == pytest.approx(
        1 / (1 + 7 / 12))


def test_eq4_is_eq3_on_services():
    s = direct(Q.T)
    assert s[0, 3] == pytest.approx(1 / (1 + math.sqrt(22 / 3)))  # users 0, 1, 3: (1,4) (2,5) (3,1)
    assert s[2, 4] == pytest.approx(1 / (1 + math.sqrt((4 + 0) / 2)))  # users 1, 2: (3,1) (2,2)


def omega_loop(values, loc):
    """Eq. 7 from the text: U = shared AS, else shared country, else all; sim(x, U) = Eq. 3 to U's mean vector."""
    n = values.shape[0]
    out = np.ones((n, n))
    for a in range(n):
        for b in range(n):
            if loc.asn[a] == loc.asn[b]:
                members = loc.asn == loc.asn[a]
            elif loc.country[a] == loc.country[b]:
                members = loc.country == loc.country[a]
            else:
                members = np.ones(n, dtype=bool)
            rows = np.where(members[:, None], values, np.nan)
            seen = (~np.isnan(rows)).sum(axis=0)
            mean = np.where(seen > 0, np.nansum(rows, axis=0) / np.maximum(seen, 1), np.nan)
            out[a, b] = (paper_sim(values[a], mean) + paper_sim(values[b], mean)) / 2
    return out


def test_eq7_location_weight():
    om = location.omega(Q, MASK, USERS, gamma=1.0, sigma=1.0, mode="mean", centring=False)
    # users 0, 1 share AS 0: U = {0, 1}, mean vector (1.5, 2, 3, 4.5, 1);
    # sim(u0, U): diffs -0.5, 0, -0.5 -> d = sqrt(1/6); sim(u1, U): 0.5, 0, 0.5, 0 -> d = sqrt(1/8)
    want = (1 / (1 + math.sqrt(1 / 6)) + 1 / (1 + math.sqrt(1 / 8))) / 2
    assert om[0, 1] == pytest.approx(want)
    assert np.allclose(om, omega_loop(Q, USERS))
    assert np.allclose(om, om.T)
    geo = location.omega(Q, MASK, USERS, gamma=1.0, sigma=1.0, mode="geometric", centring=False)
    assert geo[0, 1] == pytest.approx(math.sqrt(1 / (1 + math.sqrt(1 / 6)) * 1 / (1 + math.sqrt(1 / 8))))


def test_eq8_the_papers_worked_transition_matrix():
    # Section 5.3.1's example (Fig. 4/5): edge weights in the ratio 1-2: 2, 1-3: 1, 2-3: 3, 2-4: 1.5
    a = np.zeros((4, 4))
    for (i, j), w in {(0, 1): 0.4, (0, 2): 0.2, (1, 2): 0.6, (1, 3): 0.3}.items():
        a[i, j] = a[j, i] = w
    m = randomwalk.transition_matrix(a)
    paper = np.array([[0, 2 / 3, 1 / 3, 0], [4 / 13, 0, 6 / 13, 3 / 13], [1 / 4, 3 / 4, 0, 0], [0, 1, 0, 0]])
    assert np.allclose(m, paper)
    # Eq. 13 from P0 = I (the paper's P0 = (1,0,0,0) for u1 is column 0) converges to Eq. 14
    p = np.eye(4)
    for _ in range(300):
        p = (1 - ALPHA) * np.eye(4) + ALPHA * m.T @ p
    p_star = randomwalk.visiting_probabilities(a, ALPHA)
    assert np.allclose(p_star, p, atol=1e-10)
    assert np.allclose(p_star.sum(axis=0), 1.0)
    assert np.allclose(p_star, randomwalk.visiting_probabilities_general(m, ALPHA))


def test_eq8_with_omega_and_eqs_14_to_17():
    s = direct(Q)
    om = omega_loop(Q, USERS)
    a = s * om
    m = a / a.sum(axis=1, keepdims=True)  # Eq. 8
    p = np.eye(4)
    for _ in range(400):
        p = (1 - ALPHA) * np.eye(4) + ALPHA * m.T @ p  # Eq. 13
    pst = p.T  # pst[u, v] = P*_uv: u the start node, visiting v
    phi = np.array([np.mean([s[u, w] / pst[u, w] for w in range(4) if w != u and s[u, w] > 0]) for u in range(4)])
    want = np.array([[0.0 if u == v else (phi[u] * pst[u, v] + phi[v] * pst[v, u]) / 2 for v in range(4)]
                     for u in range(4)])
    got, _ = models.rw_final_similarity(Q, MASK, USERS, models.RWConfig.paper())
    assert np.allclose(got, want)
    # the product reading of Eq. 15 is a different similarity
    prod = randomwalk.paper_similarity(randomwalk.visiting_probabilities(a, ALPHA), s, "product")
    assert not np.allclose(prod, want)


def eq18_loop(values, sim, same_as, k):
    """Eq. 18 with section 5.4.1: per cell, the K most similar users that invoked it, same AS first."""
    n, o = values.shape
    means = np.array([np.nanmean(r) for r in values])
    out = np.zeros((n, o))
    for u in range(n):
        for i in range(o):
            cands = [v for v in range(n) if v != u and not np.isnan(values[v, i]) and sim[u, v] > 0]
            cands.sort(key=lambda v: (not same_as[u, v], -sim[u, v]))
            nb = cands[:k]
            w = sum(sim[u, v] for v in nb)
            out[u, i] = sum(sim[u, v] * values[v, i] for v in nb) / w if w > 0 else means[u]
    return out


def test_eq18_19_20_and_the_whole_paper_model():
    d = QoSData(values=Q, users=USERS, metric="rt")
    cfg = models.RWConfig.paper()
    assert cfg.k == 5 and cfg.lam_for("rt") == 0.6 and cfg.lam_for("tp") == 0.9
    s_u, same_u = models.rw_final_similarity(Q, MASK, USERS, cfg)
    k2 = models.RWConfig(**{**vars(cfg), "k": 2})
    ul = models.make("UL-RW-paper", k2, exact=True).fit_predict(d)
    assert np.allclose(ul, eq18_loop(Q, s_u, same_u, 2))
    # hand number: user 0, service 2: invoked by users 1 (same AS) and 2 -> weighted mean of 3 and 2
    assert ul[0, 2] == pytest.approx((s_u[0, 1] * 3 + s_u[0, 2] * 2) / (s_u[0, 1] + s_u[0, 2]))
    s_s, _ = models.rw_final_similarity(Q.T, MASK.T, None, cfg)
    sl = models.make("SL-RW-paper").fit_predict(d)
    assert np.allclose(sl, eq18_loop(Q.T, s_s, np.zeros((5, 5), bool), 5).T)  # Eq. 19
    hl = models.make("HL-RW-paper").fit_predict(d)
    ul5 = models.make("UL-RW-paper").fit_predict(d)
    assert np.allclose(hl, 0.6 * ul5 + 0.4 * sl)  # Eq. 20; every cell has neighbours on both sides here
    assert np.allclose(models.make("HL-RW").fit_predict(d), hl)  # the paper's name is the paper's model


def test_node_scope_reads_5_4_1_literally():
    s = np.array([[0, 0.9, 0.5, 0.1], [0.9, 0, 0.2, 0.3], [0.5, 0.2, 0, 0.4], [0.1, 0.3, 0.4, 0]])
    base = similarity.row_means(Q, MASK)
    prio = neighbours.priorities(s)
    node, has = neighbours.predict(s, prio, Q, MASK, base, 1, form="mean", scope="node")
    # user 0's one neighbour is user 1 (0.9); user 1 did not invoke service 1 -> no neighbour, the user mean
    assert node[0, 1] == pytest.approx(base[0]) and not has[0, 1]
    cell, _ = neighbours.predict(s, prio, Q, MASK, base, 1, form="mean", scope="cell")
    assert cell[0, 1] == pytest.approx(1.0)  # per cell: user 2 (0.5) is the best that invoked service 1


def test_the_green_function_route_equals_the_visiting_probability_route():
    rng = np.random.default_rng(3)
    s = rng.random((30, 30))
    s = (s + s.T) / 2
    s[rng.random((30, 30)) < 0.4] = 0
    s = np.minimum(s, s.T)
    np.fill_diagonal(s, 0)
    for form in ("ratio", "product"):
        want = randomwalk.paper_similarity(randomwalk.visiting_probabilities(s, ALPHA), s, form)
        g, d = randomwalk.green(s, ALPHA)
        assert np.allclose(randomwalk.paper_similarity_green(g, d, s, ALPHA, form), want)
    s[4, :] = s[:, 4] = 0  # an isolated node: no Green's-function route, the P* route still works
    assert randomwalk.green(s, ALPHA) is None
    v = np.where(rng.random((30, 8)) < 0.5, rng.random((30, 8)), np.nan)
    v[4] = np.nan
    v[4, 0] = 1.0
    v[:, 0] = np.where(np.arange(30) == 4, 1.0, np.nan)  # node 4 shares no column with anyone
    got, _ = models.rw_final_similarity(v, ~np.isnan(v), None, models.RWConfig.paper())
    assert np.all(got[4] == 0) and np.isfinite(got).all()
