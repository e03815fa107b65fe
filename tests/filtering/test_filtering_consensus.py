"""Consensus (distributed) KF vs the centralized KF, and `fuse_devices` as the stream calls it.

The DKF's check against a literal implementation of Olfati-Saber's equations, and the 1 % bound,
are in test_consensus_reference.py."""

import json

import numpy as np
import pytest

from pipelines.filtering.consensus import (
    FusionParams,
    align_to_grid,
    centralized_kf,
    consensus_dkf,
    cv_model,
    fuse_devices,
    graph_adjacency,
)
from pipelines.filtering.kalman import filter_event
from pipelines.filtering.simulate import simulate_multi_sensor, simulate_trace

H = np.array([[1.0, 0, 0, 0], [0, 0, 1.0, 0]])


# ------------------------------------------------ literal centralized reference (general 4×4 information form)

def reference_ckf(ts, Z, r, q, x0, P0):
    xbar, P = x0.copy(), P0.copy()
    out = []
    for k in range(len(ts)):
        if k:
            F, Q = cv_model(ts[k] - ts[k - 1], q)
            P = F @ M @ F.T + Q
            xbar = F @ xhat
        y, S = np.zeros(4), np.zeros((4, 4))
        for i in range(len(r)):
            if np.isfinite(Z[k, i]).all():
                Rinv = np.eye(2) / r[i] ** 2
                y += H.T @ Rinv @ Z[k, i]
                S += H.T @ Rinv @ H
        M = np.linalg.inv(np.linalg.inv(P) + S)
        xhat = xbar + M @ (y - S @ xbar)
        out.append(xhat)
    return np.array(out)


def _prior(Z, r, q_speed=5.0):
    m = np.median(Z[0][np.isfinite(Z[0]).all(1)], axis=0)
    return np.array([m[0], 0, m[1], 0]), np.diag([max(r) ** 2, q_speed ** 2, max(r) ** 2, q_speed ** 2])


def test_centralized_matches_literal_information_filter():
    ts, truth, Z, std = simulate_multi_sensor(3, n=120, seed=1, missing_rate=0.2)
    x0, P0 = _prior(Z, std)
    ref = reference_ckf(ts, Z, std, 1.0, x0, P0)
    got = centralized_kf(ts, Z, std, q=1.0)["x"]
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-8)
    raw = np.sqrt(np.nanmean(np.sum((Z - truth[:, None]) ** 2, -1), axis=0))
    assert np.sqrt(np.mean(np.sum((got[:, [0, 2]] - truth) ** 2, -1))) < 0.6 * raw.min()


def test_consensus_estimate_converges_to_centralized():
    """3–4 noisy sensors on a simulated walk, complete graph, the paper's low-/band-pass consensus filters."""
    for n_sensors, seed in ((4, 3), (3, 4)):
        ts, truth, Z, std = simulate_multi_sensor(n_sensors, n=300, seed=seed, spike_rate=0.02, missing_rate=0.05)
        ckf = centralized_kf(ts, Z, std, gate_chi2=13.8)
        devs = {}
        for m in (1, 2, 5, 10, 20):
            dkf = consensus_dkf(ts, Z, std, consensus_iters=m, gate_chi2=13.8)
            devs[m] = np.abs(dkf["x"][:, :, [0, 2]] - ckf["x"][:, None, [0, 2]]).max()
        assert devs[2] > devs[5] > devs[10] > devs[20]
        assert devs[10] < 0.05   # metres, worst node and step over the whole trace
        assert devs[20] < 1e-4
        np.testing.assert_array_equal(dkf["accepted"], ckf["accepted"])  # same spikes gated out
        ckf_rmse = np.sqrt(np.mean(np.sum((ckf["x"][:, [0, 2]] - truth) ** 2, -1)))
        assert ckf_rmse < 0.6 * std.min() * np.sqrt(2)  # better than the best sensor's raw fixes


@pytest.mark.parametrize("graph,tol", [("ring", 1e-6), ("path", 0.05)])
def test_average_consensus_converges_on_sparse_graphs(graph, tol):
    ts, _, Z, std = simulate_multi_sensor(4, n=200, seed=5)
    ckf = centralized_kf(ts, Z, std)
    A = graph_adjacency(4, graph)
    devs = [np.abs(consensus_dkf(ts, Z, std, A, consensus_iters=m, mode="average")["x"][:, :, [0, 2]]
                   - ckf["x"][:, None, [0, 2]]).max() for m in (5, 20, 40)]
    assert devs[0] > devs[1] > devs[2]
    assert devs[2] < tol


def test_lowpass_consensus_is_only_exact_on_complete_graphs():
    """The paper's low-pass CF settles on a local weighted average on a ring: more iterations do not help."""
    ts, _, Z, std = simulate_multi_sensor(4, n=200, seed=5)
    ckf = centralized_kf(ts, Z, std)
    ring = graph_adjacency(4, "ring")
    dev = np.abs(consensus_dkf(ts, Z, std, ring, consensus_iters=40)["x"][:, :, [0, 2]] - ckf["x"][:, None, [0, 2]]).max()
    assert dev > 1.0
    with pytest.raises(ValueError, match="complete graph"):
        fuse_devices({"a": {"ts": [0.0], "x": [0.0], "y": [0.0]}}, None, FusionParams(graph="ring"))


def test_align_to_grid():
    ts = np.array([0.0, 0.9, 2.1, 6.0])
    v = np.array([[0.0], [9.0], [21.0], [60.0]])
    out = align_to_grid(ts, v, np.array([0.0, 1.0, 2.0, 3.0, 5.0, 6.0, 7.0]), grid_dt=1.0, max_interp_gap_s=2.5)
    np.testing.assert_allclose(out[:, 0], [0.0, 10.0, 20.0, np.nan, np.nan, 60.0, np.nan])


def _person(kind, seed, n=400, spike_rate=0.03):
    ph = simulate_trace(kind, n=n, seed=seed, device=0, gps_std=5.0, spike_rate=spike_rate)
    wa = simulate_trace(kind, n=n, seed=seed, device=1, gps_std=9.0, spike_rate=spike_rate)
    return ph, wa


def _truth_on(grid, *traces):
    tt = np.concatenate([t.ts for t in traces])
    xy = np.vstack([t.truth_xy for t in traces])
    o = np.argsort(tt)
    return np.column_stack([np.interp(grid, tt[o], xy[o, 0]), np.interp(grid, tt[o], xy[o, 1])])


def _rmse(fused, truth):
    return float(np.sqrt(np.mean(np.sum((np.column_stack([fused["x"], fused["y"]]) - truth) ** 2, -1))))


@pytest.mark.parametrize("method", ["consensus", "centralized"])
def test_fusing_phone_and_watch_beats_the_phone_alone(method):
    ph, wa = _person("walk", seed=21)
    p = FusionParams(method=method, q_pos=0.3)
    both, state = fuse_devices({"phone": dict(ph.event(), r=5.0), "watch": dict(wa.event(), r=9.0)}, None, p)
    alone, _ = fuse_devices({"phone": dict(ph.event(), r=5.0)}, None, p)
    truth_both = _truth_on(np.array(both["ts"]), ph, wa)
    truth_alone = _truth_on(np.array(alone["ts"]), ph)
    assert _rmse(both, truth_both) < 0.95 * _rmse(alone, truth_alone)
    assert _rmse(both, truth_both) < 0.6 * 5.0 * np.sqrt(2)  # well below the phone's raw error
    assert both["devices"] == ["phone", "watch"] and max(both["n_fixes"]) == 2
    assert both["spikes_rejected"] >= ph.spike.sum() + wa.spike.sum() - 5
    json.dumps(state, allow_nan=False)


def test_fuse_devices_consensus_equals_centralized():
    ph, wa = _person("run", seed=22)
    devs = {"phone": dict(ph.event(), r=5.0), "watch": dict(wa.event(), r=9.0)}
    c, _ = fuse_devices(devs, None, FusionParams(method="centralized"))
    d, _ = fuse_devices(devs, None, FusionParams(consensus_iters=20))
    assert c["ts"] == d["ts"]
    np.testing.assert_allclose(d["x"], c["x"], atol=1e-4)
    np.testing.assert_allclose(d["vy"], c["vy"], atol=1e-4)
    assert d["node_spread_m"] < 1e-4


@pytest.mark.parametrize("method", ["consensus", "centralized"])
def test_fuse_devices_windows_with_state_equal_one_go(method):
    ts, _, Z, std = simulate_multi_sensor(2, n=240, seed=6, gps_std=(5.0, 9.0), spike_rate=0.02)
    devs = {f"d{i}": {"ts": ts.tolist(), "x": Z[:, i, 0].tolist(), "y": Z[:, i, 1].tolist(), "r": float(std[i])}
            for i in range(2)}
    p = FusionParams(method=method)
    whole, _ = fuse_devices(devs, None, p)
    state, parts = None, []
    for a, b in ((0, 60), (60, 61), (61, 170), (170, 240)):
        win = {d: {k: (v[a:b] if isinstance(v, list) else v) for k, v in rd.items()} for d, rd in devs.items()}
        out, state = fuse_devices(win, state, p)
        state = json.loads(json.dumps(state, allow_nan=False))
        parts.append(out)
    for key in ("ts", "x", "y", "vx", "vy"):
        np.testing.assert_allclose(sum((o[key] for o in parts), []), whole[key], rtol=0, atol=1e-7, err_msg=key)
    assert sum(o["spikes_rejected"] for o in parts) == whole["spikes_rejected"]


def test_fuse_devices_devices_come_and_go():
    ph, wa = _person("walk", seed=23, n=300)
    p = FusionParams()
    out1, st = fuse_devices({"phone": ph.event(0, 100), "watch": wa.event(0, 100)}, None, p)
    out2, st = fuse_devices({"phone": ph.event(100, 200)}, st, p)  # the watch went quiet
    assert out2["devices"] == ["phone"] and out2["ts"][0] == out1["ts"][-1] + 1.0
    out3, st = fuse_devices({"phone": ph.event(200, 300), "watch": wa.event(200, 300)}, st, p)
    assert set(st["tracks"]) == {"phone", "watch"}
    for out in (out2, out3):
        truth = _truth_on(np.array(out["ts"]), ph, wa)
        assert _rmse(out, truth) < 8.0
    empty, same = fuse_devices({"phone": {"ts": [], "x": [], "y": []}}, st, p)
    assert empty["ts"] == [] and same is st
    later = ph.event(200, 260)  # the same walk replayed an hour later: a new track, not 3600 empty steps
    later["ts"] = [t + 3600.0 for t in later["ts"]]
    out4, st4 = fuse_devices({"phone": later}, st, p)
    assert out4["ts"][0] >= later["ts"][0] and len(out4["ts"]) <= 61
    assert _rmse(out4, _truth_on(np.array(out4["ts"]) - 3600.0, ph)) < 10.0


def test_fuse_devices_uses_per_device_rejections():
    ph, wa = _person("walk", seed=24, spike_rate=0.08)
    raw = {"phone": dict(ph.event(), r=5.0), "watch": dict(wa.event(), r=9.0)}
    flagged = {k: dict(v, rejected=filter_event(v, None)[0]["rejected"]) for k, v in raw.items()}
    a, _ = fuse_devices(raw, None)
    b, _ = fuse_devices(flagged, None)
    assert b["spikes_rejected"] < a["spikes_rejected"]  # interpolated half-spikes never reach the grid
    truth = _truth_on(np.array(b["ts"]), ph, wa)
    assert _rmse(b, truth) <= _rmse(a, truth) + 0.05


# ------------------------------------------------ one person's moment, as the stream passes it

def _moment(seed, t0=1_760_000_000.0, n=60, devices=(("u1-phone", 8.0), ("u1-watch", 12.0)), speed=1.3):
    """Uploads of one moment as pipelines.synthetic.population.sensor_events makes them: devices share `ts`."""
    rng = np.random.default_rng(seed)
    ts = t0 + np.arange(n) + rng.uniform(-0.05, 0.05, n)
    truth = np.c_[speed * np.arange(n), 0.5 * speed * np.arange(n)] + 100.0
    ups = {}
    for dev, sd in devices:
        xy = truth + rng.normal(0, sd, (n, 2))
        ups[dev] = {"device_id": dev, "ts": [round(float(t), 3) for t in ts],
                    "x": [round(float(v), 2) for v in xy[:, 0]], "y": [round(float(v), 2) for v in xy[:, 1]],
                    "hr": [None] * n, "acc": [9.8] * n, "r": sd}
    return ups, ts, truth


def _err(out, ts, truth):
    tx = np.interp(out["ts"], ts, truth[:, 0])
    ty = np.interp(out["ts"], ts, truth[:, 1])
    return float(np.sqrt(np.mean((np.array(out["x"]) - tx) ** 2 + (np.array(out["y"]) - ty) ** 2)))


def test_moment_one_device_only_is_that_devices_kalman_filter():
    ups, ts, truth = _moment(40)
    one = {"u1-phone": ups["u1-phone"]}
    d, st = fuse_devices(one, None)
    c, _ = fuse_devices(one, None, FusionParams(method="centralized"))
    assert d["devices"] == ["u1-phone"] and d["node_spread_m"] == 0.0 and len(d["ts"]) >= 58
    np.testing.assert_allclose(d["x"], c["x"], atol=1e-9)  # one node: the DKF is the KF
    assert _err(d, ts, truth) < 8.0
    json.dumps(st, allow_nan=False)


def test_moment_device_with_all_null_positions_is_no_node():
    ups, ts, truth = _moment(41)
    dead = dict(ups["u1-watch"], x=[None] * 60, y=[None] * 60)
    out, st = fuse_devices({"u1-phone": ups["u1-phone"], "u1-watch": dead}, None)
    alone, _ = fuse_devices({"u1-phone": ups["u1-phone"]}, None)
    assert out["devices"] == ["u1-phone"] and out["devices_without_fix"] == ["u1-watch"]
    np.testing.assert_allclose(out["x"], alone["x"], atol=1e-12)
    assert set(st["tracks"]) == {"u1-phone"}
    none, same = fuse_devices({"u1-watch": dead}, st)
    assert none["ts"] == [] and same is st


def test_moment_bad_input_is_a_clear_error():
    ups, _, _ = _moment(42)
    bad = dict(ups["u1-watch"], x=ups["u1-watch"]["x"][:-1])
    with pytest.raises(ValueError, match="u1-watch.*differ in length"):
        fuse_devices({"u1-phone": ups["u1-phone"], "u1-watch": bad}, None)
    with pytest.raises(ValueError, match="u1-phone.*'r'"):
        fuse_devices({"u1-phone": dict(ups["u1-phone"], r=-1.0)}, None)


def test_moments_carry_state_across_gaps_and_device_changes():
    """Moments minutes apart (gaps below gap_reset_s) and back to back, the watch leaving and coming
    back: each moment's grid covers its own readings only, and the state stays JSON."""
    st, prev_end = None, None
    plan = [("both", 0.0), ("phone", 180.0), ("both", 420.0), ("both", 480.0)]
    for k, (who, dt0) in enumerate(plan):
        ups, ts, truth = _moment(50 + k, t0=1_760_000_000.0 + dt0, speed=0.0)  # someone sitting still
        if who == "phone":
            ups = {"u1-phone": ups["u1-phone"]}
        out, st = fuse_devices(ups, st)
        st = json.loads(json.dumps(st, allow_nan=False))
        fresh, _ = fuse_devices(ups, None)
        assert out["devices"] == sorted(ups)
        assert out["ts"][0] >= ts[0] - 1e-9 and out["ts"][-1] <= ts[-1]  # no grid inside the gap
        if prev_end is not None and ts[0] - prev_end < 2.0:
            assert out["ts"][0] == prev_end + 1.0  # back to back: the grid carries on
            assert _err(out, ts, truth) < _err(fresh, ts, truth)  # and so does what the track knew
        else:
            assert _err(out, ts, truth) < 1.2 * _err(fresh, ts, truth)  # after a gap: no worse than fresh
        prev_end = out["ts"][-1]
    assert set(st["tracks"]) == {"u1-phone", "u1-watch"}
