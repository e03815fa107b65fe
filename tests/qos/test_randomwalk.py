"""Eq. 8 (transitions), Eq. 14 (visiting probabilities P*) and Eqs. 15-17 (final similarity).

The four-user example mirrors the paper's Figure 4 / section 5.3.1 walk-through (four users,
two sharing an AS, one sharing only the country, one elsewhere). The paper's own figure
numbers were not available offline, so its inputs here are ours and the expected transition
probabilities are worked out by hand below.
"""

import numpy as np
import pytest

from pipelines.qos import randomwalk

# direct similarities s(u,v) and location weights omega(u,v) of the four users
S4 = np.array([[0.0, 0.8, 0.4, 0.2],
               [0.8, 0.0, 0.6, 0.0],
               [0.4, 0.6, 0.0, 0.5],
               [0.2, 0.0, 0.5, 0.0]])
OMEGA4 = np.array([[1.0, 0.9, 0.7, 0.5],   # u0-u1 same AS, u0-u2 same country, u0-u3 elsewhere
                   [0.9, 1.0, 0.7, 0.5],
                   [0.7, 0.7, 1.0, 0.5],
                   [0.5, 0.5, 0.5, 1.0]])
# by hand: weights a = s * omega; row 0: .72, .28, .10 (sum 1.10); row 1: .72, .42 (1.14);
# row 2: .28, .42, .25 (0.95); row 3: .10, .25 (0.35)
M4_HAND = np.array([[0.0, 0.72 / 1.10, 0.28 / 1.10, 0.10 / 1.10],
                    [0.72 / 1.14, 0.0, 0.42 / 1.14, 0.0],
                    [0.28 / 0.95, 0.42 / 0.95, 0.0, 0.25 / 0.95],
                    [0.10 / 0.35, 0.0, 0.25 / 0.35, 0.0]])


def test_eq8_four_user_example():
    a = randomwalk.edge_weights(S4, OMEGA4)
    m = randomwalk.transition_matrix(a)
    assert np.allclose(m, M4_HAND)
    assert m[0, 1] == pytest.approx(0.654545, abs=1e-6)  # u0 most likely walks to its AS neighbour u1
    assert np.allclose(m.sum(axis=1), 1.0)


def test_eq8_dangling_node_keeps_its_walker():
    s = S4.copy()
    s[3, :] = s[:, 3] = 0.0
    m = randomwalk.transition_matrix(randomwalk.edge_weights(s))
    assert m[3, 3] == 1.0 and m[3, :3].sum() == 0


@pytest.mark.parametrize("symmetric", [True, False])
def test_eq14_columns_are_probability_distributions(symmetric):
    rng = np.random.default_rng(1)
    s = rng.random((30, 30))
    s = (s + s.T) / 2 * (rng.random((30, 30)) < 0.3)
    s = np.triu(s, 1) + np.triu(s, 1).T
    s[7, :] = s[:, 7] = 0.0  # an isolated node
    om = None
    if not symmetric:
        om = rng.uniform(0.3, 1.0, (30, 30))  # a non-symmetric omega (mode "neighbour")
    a = randomwalk.edge_weights(s, om)
    p = randomwalk.visiting_probabilities(a, 0.85)
    assert p.shape == (30, 30)
    assert (p >= -1e-12).all()
    assert np.allclose(p.sum(axis=0), 1.0)  # each start node's visiting probabilities sum to 1
    assert p[7, 7] == pytest.approx(1.0)
    assert (np.diag(p) >= 0.15 - 1e-9).all()  # the restart alone puts 1 - alpha on the start node


def test_eq14_equals_the_walk_series_and_both_solvers_agree():
    a = randomwalk.edge_weights(S4, np.sqrt(np.outer([0.9, 0.8, 0.6, 0.5], [0.9, 0.8, 0.6, 0.5])))
    m = randomwalk.transition_matrix(a)
    alpha = 0.85
    series = sum((1 - alpha) * alpha ** k * np.linalg.matrix_power(m.T, k) for k in range(400))
    p_chol = randomwalk.visiting_probabilities(a, alpha, symmetric=True)
    p_lu = randomwalk.visiting_probabilities_general(m, alpha)
    assert np.allclose(p_chol, series, atol=1e-10)
    assert np.allclose(p_lu, series, atol=1e-10)
    # column u = distribution after restarting walks from u: P* e_u satisfies p = (1-a) e_u + a M^T p
    e0 = np.eye(4)[:, 0]
    assert np.allclose(p_chol[:, 0], (1 - alpha) * e0 + alpha * m.T @ p_chol[:, 0])
    f32 = randomwalk.visiting_probabilities(a.astype(np.float32), alpha, symmetric=True, dtype=np.float32)
    assert f32.dtype == np.float32 and np.allclose(f32, series, atol=1e-5)


def test_top_n_graph_is_symmetric_and_sparser():
    rng = np.random.default_rng(2)
    s = rng.random((20, 20))
    s = (s + s.T) / 2
    np.fill_diagonal(s, 0)
    a = randomwalk.edge_weights(s, top_n=3)
    assert np.allclose(a, a.T)
    assert ((a > 0).sum(axis=1) >= 3).all() and (a > 0).sum() < 20 * 19


def test_eqs15_to_17_by_hand():
    # P* columns = start nodes; row u of r is the walk from u
    p = np.array([[0.5, 0.1, 0.2],
                  [0.3, 0.6, 0.2],
                  [0.2, 0.3, 0.6]])
    s = np.array([[0.0, 0.8, 0.0],
                  [0.8, 0.0, 0.4],
                  [0.0, 0.4, 0.0]])
    r = randomwalk.walk_similarity(p, s)
    # from u0: visits u1 0.3, u2 0.2 -> scaled so the peak equals u0's best direct similarity 0.8
    assert r[0, 1] == pytest.approx(0.8) and r[0, 2] == pytest.approx(0.2 / 0.3 * 0.8)
    # from u2: visits u0 0.2, u1 0.2 -> peak 0.2 scaled to 0.4
    assert r[2, 0] == pytest.approx(0.4) and r[2, 1] == pytest.approx(0.4)
    assert np.all(np.diag(r) == 0)
    common = np.array([[0, 5, 0], [5, 0, 1], [0, 1, 0]], dtype=float)
    phi = randomwalk.trust(common, theta=2)
    assert phi[0, 1] == 1.0 and phi[1, 2] == 0.5 and phi[0, 2] == 0.0
    final = randomwalk.final_similarity(s, r, phi)
    assert final[0, 1] == pytest.approx(0.8)  # fully trusted direct similarity
    assert final[0, 2] == pytest.approx(r[0, 2])  # never co-invoked: the walk's evidence only
    assert final[1, 2] == pytest.approx(0.5 * 0.4 + 0.5 * r[1, 2])
    assert np.all(randomwalk.trust(common, 0) == 1.0)
