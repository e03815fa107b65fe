"""Top-K selection (same AS first), Eqs. 18-20, the baselines against loop references, MF."""

import math

import numpy as np
import pytest

from pipelines.qos import models, neighbours, similarity
from pipelines.qos.data import Locations, QoSData


def _brute(weight, prio, mask, dev, k):
    t_n, o_n = mask.shape
    num, den, cnt = np.zeros((t_n, o_n)), np.zeros((t_n, o_n)), np.zeros((t_n, o_n), int)
    for t in range(t_n):
        for o in range(o_n):
            cands = [c for c in range(t_n) if c != t and mask[c, o] and prio[t, c] > neighbours.NOT_A_CANDIDATE]
            cands.sort(key=lambda c: -prio[t, c])
            for c in cands[:k]:
                num[t, o] += weight[t, c] * dev[c, o]
                den[t, o] += weight[t, c]
                cnt[t, o] += 1
    return num, den, cnt


@pytest.mark.parametrize("pool", [None, 3, 6, 1000])
def test_topk_equals_full_scan_whatever_the_pool(pool):
    rng = np.random.default_rng(pool or 0)
    t_n, o_n, k = 25, 40, 4
    w = rng.random((t_n, t_n)) * (rng.random((t_n, t_n)) < 0.7)
    np.fill_diagonal(w, 0)
    same = rng.random((t_n, t_n)) < 0.2
    prio = neighbours.priorities(w, same)
    mask = rng.random((t_n, o_n)) < 0.3
    dev = rng.normal(size=(t_n, o_n)) * mask
    got = neighbours.topk_sums(w, prio, mask, dev, k, pool)
    want = _brute(w, prio, mask, dev, k)
    for g, e in zip(got, want):
        assert np.allclose(g, e)


def test_same_as_candidates_come_first():
    # target 0; candidates 1 (weight 0.9, other AS) and 2 (weight 0.3, same AS), both observed column 0
    w = np.array([[0, 0.9, 0.3], [0.9, 0, 0.1], [0.3, 0.1, 0]])
    same = np.array([[True, False, True], [False, True, False], [True, False, True]])
    mask = np.array([[False], [True], [True]])
    dev = np.array([[0.0], [1.0], [-1.0]])
    num, den, cnt = neighbours.topk_sums(w, neighbours.priorities(w, same), mask, dev, k=1)
    assert cnt[0, 0] == 1 and num[0, 0] == pytest.approx(0.3 * -1.0)  # the same-AS neighbour, not the closer one
    num, den, cnt = neighbours.topk_sums(w, neighbours.priorities(w, None), mask, dev, k=1)
    assert num[0, 0] == pytest.approx(0.9 * 1.0)  # without AS-first: the most similar one
    num, den, cnt = neighbours.topk_sums(w, neighbours.priorities(w, same), mask, dev, k=2)
    assert cnt[0, 0] == 2 and den[0, 0] == pytest.approx(1.2)  # then from everyone


def test_eq18_by_hand():
    # users x services; predict (0, 2) from users 1 and 2 (both observed service 2)
    q = np.array([[1.0, 3.0, np.nan],
                  [2.0, 2.0, 5.0],
                  [1.0, np.nan, 1.0]])
    mask = ~np.isnan(q)
    s_star = np.array([[0, 0.6, 0.2], [0.6, 0, 0.5], [0.2, 0.5, 0]])
    base = similarity.row_means(q, mask)  # 2, 3, 1
    pred, has = neighbours.predict(s_star, neighbours.priorities(s_star), q, mask, base, k=2)
    want = 2.0 + (0.6 * (5 - 3) + 0.2 * (1 - 1)) / (0.6 + 0.2)
    assert pred[0, 2] == pytest.approx(want) and has[0, 2]
    pred1, _ = neighbours.predict(s_star, neighbours.priorities(s_star), q, mask, base, k=1)
    assert pred1[0, 2] == pytest.approx(2.0 + (5 - 3))  # K = 1: only the most similar user
    # a negative prediction falls back to the row mean
    q2 = np.array([[0.5, np.nan], [0.1, 10.0], [np.nan, np.nan]])
    m2 = ~np.isnan(q2)
    p2, _ = neighbours.predict(np.array([[0, 1.0, 0], [1.0, 0, 0], [0, 0, 0]]),
                               neighbours.priorities(np.array([[0, 1.0, 0], [1.0, 0, 0], [0, 0, 0]])),
                               q2[:, ::-1], m2[:, ::-1], similarity.row_means(q2, m2), k=1)
    assert p2[0, 1] == pytest.approx(0.5)


def test_eq19_and_eq20():
    rng = np.random.default_rng(0)
    v = rng.gamma(2, 0.5, (20, 30))
    mask = rng.random(v.shape) < 0.5
    train = QoSData(values=np.where(mask, v, np.nan))
    cfg = models.RWConfig(lam=0.3)
    sl = models.make("SL-RW-tuned", cfg).fit_predict(train)
    # Eq. 19 is Eq. 18 on the transposed matrix (services are the targets)
    side = models.rw_side(train.values.T, mask.T, None, cfg)
    assert np.allclose(sl, side.pred.T)
    hl_model = models.make("HL-RW-tuned", cfg)
    u, s = hl_model.sides(train)
    hl = models.hybrid(u, s, 0.3)
    both = u.has & s.has.T
    assert np.allclose(hl[both], 0.3 * u.pred[both] + 0.7 * s.pred.T[both])
    only_u = u.has & ~s.has.T
    assert np.allclose(hl[only_u], u.pred[only_u])
    assert np.allclose(hl_model.fit_predict(train), hl)


def _upcc_loop(v, mask, k):
    """UPCC written the way the WS-DREAM reference code computes it (per user, per service)."""
    m, n = v.shape
    means = np.array([v[i, mask[i]].mean() for i in range(m)])
    pcc = similarity.pcc(v, mask)
    out = np.zeros((m, n))
    for u in range(m):
        for j in range(n):
            cands = [x for x in range(m) if x != u and mask[x, j] and pcc[u, x] > 0]
            cands = sorted(cands, key=lambda x: -pcc[u, x])[:k]
            w = sum(pcc[u, x] for x in cands)
            p = means[u] + (sum(pcc[u, x] * (v[x, j] - means[x]) for x in cands) / w if w > 0 else 0.0)
            out[u, j] = p if p >= 0 else means[u]
    return out


def test_upcc_ipcc_uipcc_against_loop_reference():
    rng = np.random.default_rng(4)
    v = rng.gamma(2, 0.5, (15, 22))
    mask = rng.random(v.shape) < 0.5
    d = QoSData(values=np.where(mask, v, np.nan))
    vv = d.values
    up = models.make("UPCC").fit_predict(d)
    ip = models.make("IPCC").fit_predict(d)
    assert np.allclose(up, _upcc_loop(vv, mask, 10))
    assert np.allclose(ip, _upcc_loop(vv.T, mask.T, 10).T)
    assert np.allclose(models.make("UIPCC").fit_predict(d), 0.1 * up + 0.9 * ip)


def test_means_and_mf():
    rng = np.random.default_rng(1)
    u, s = rng.random((30, 2)), rng.random((40, 2))
    full = 1.0 + u @ s.T
    mask = rng.random(full.shape) < 0.6
    d = QoSData(values=np.where(mask, full, np.nan))
    um = models.make("UMean").fit_predict(d)
    assert um[3, 0] == pytest.approx(full[3, mask[3]].mean())
    im = models.make("IMean").fit_predict(d)
    assert im[0, 5] == pytest.approx(full[mask[:, 5], 5].mean())
    mf = models.make("MF").fit_predict(d)
    test = ~mask
    assert np.abs(mf[test] - full[test]).mean() < 0.6 * np.abs(im[test] - full[test]).mean()


def test_model_names():
    assert models.make("HL-RW-noloc").cfg.location is False
    assert models.make("HL-RW-noloc").name == "HL-RW-noloc"
    with pytest.raises(ValueError):
        models.make("UPCC-noloc")
    with pytest.raises(ValueError):
        models.make("nope")


def test_location_changes_rw_predictions_and_reports_it():
    rng = np.random.default_rng(2)
    v = rng.gamma(2, 0.5, (24, 30))
    mask = rng.random(v.shape) < 0.4
    loc = Locations(asn=rng.integers(0, 3, 24), country=rng.integers(0, 2, 24), lat=np.zeros(24), lon=np.zeros(24),
                    as_names=list("abc"), country_names=list("xy"), ids=[str(i) for i in range(24)])
    d = QoSData(values=np.where(mask, v, np.nan), users=loc)
    on = models.make("UL-RW")
    p_on = on.fit_predict(d)
    off = models.make("UL-RW-noloc")
    p_off = off.fit_predict(d)
    assert on.info["users"]["omega"] and on.info["users"]["as_first"]
    assert not off.info["users"]["omega"] and not off.info["users"]["as_first"]
    assert not np.allclose(p_on, p_off)
    assert np.isfinite(p_on).all() and (p_on >= 0).all()
    assert math.isfinite(float(p_off.sum()))


def test_sampled_candidate_lists_are_exact_prefixes_of_each_row():
    # large enough for the sampled cut-off path (t > 2048, pool * 4 < t)
    rng = np.random.default_rng(9)
    t = 2100
    prio = rng.random((t, t)).astype(np.float32)
    prio[rng.random((t, t)) < 0.3] = neighbours.NOT_A_CANDIDATE
    np.fill_diagonal(prio, neighbours.NOT_A_CANDIDATE)
    lists, n_cand = neighbours.candidate_lists(prio, 100)
    assert (n_cand == (prio > neighbours.NOT_A_CANDIDATE).sum(axis=1)).all()
    for row in rng.choice(t, 50, replace=False):
        got = lists[row][lists[row] >= 0]
        assert 60 <= len(got) <= 200
        want = np.argsort(-prio[row], kind="stable")[: len(got)]
        assert set(got) == set(want)
        assert (np.diff(prio[row, got]) <= 0).all()


def test_blend_with_mf():
    rng = np.random.default_rng(3)
    v = rng.gamma(2, 0.5, (20, 30))
    mask = rng.random(v.shape) < 0.5
    d = QoSData(values=np.where(mask, v, np.nan))
    fixed = models.make("HL-RW+MF", models.RWConfig(beta=1.0)).fit_predict(d)
    assert np.allclose(fixed, models.make("HL-RW-tuned").fit_predict(d))
    auto = models.make("HL-RW+MF")
    p = auto.fit_predict(d)
    assert 0.0 <= auto.info["beta"] <= 1.0 and np.isfinite(p).all()
