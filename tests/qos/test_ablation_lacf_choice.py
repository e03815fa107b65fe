"""The ablation's rows and end points, LACF's location tiers, the PNG writer, and the refresh's model choice."""

import struct
import zlib
from dataclasses import fields

import numpy as np
import pytest

from pipelines.qos import ablation, models, plot, refresh, sensitivity
from pipelines.qos.data import Locations, QoSData
from pipelines.store.db import connect


def _data(seed=5, n=18, o=26):
    rng = np.random.default_rng(seed)
    v = rng.gamma(2, 0.5, (n, o))
    mask = rng.random(v.shape) < 0.45
    loc = lambda k: Locations(asn=rng.integers(0, 3, k), country=rng.integers(0, 2, k), lat=np.zeros(k),  # noqa: E731
                              lon=np.zeros(k), as_names=list("abc"), country_names=list("xy"),
                              ids=[str(i) for i in range(k)])
    return QoSData(values=np.where(mask, v, np.nan), users=loc(n), services=loc(o), metric="rt")


def test_each_departure_row_changes_exactly_one_field():
    rows = dict(ablation.rows())
    paper, tuned = models.RWConfig.paper(), models.RWConfig.tuned()
    assert rows["paper"] == paper and rows["tuned (all departures)"] == tuned
    changed = set()
    for name, field, _ in models.DEPARTURES:
        cfg = rows[f"+ {name}"]
        diff = [f.name for f in fields(cfg) if getattr(cfg, f.name) != getattr(paper, f.name)]
        assert diff == [field]
        changed.add(field)
    # the departures are all the ways the two models differ
    assert changed == {f.name for f in fields(paper) if getattr(paper, f.name) != getattr(tuned, f.name)}


def test_ablation_end_points_equal_the_named_models():
    d = _data()
    table = ablation.run(d, [0.3], repeats=1, seed=2,
                         only=["paper", "+ K = 10", "paper - AS-first", "tuned (all departures)"])["0.30"]
    from pipelines.qos import evaluate

    train_mask, test_mask = evaluate.split(d.values, 0.3, 2, 0)
    train = QoSData(values=np.where(train_mask, d.values, np.nan), users=d.users, services=d.services, metric="rt")
    for label, name in (("paper", "HL-RW-paper"), ("tuned (all departures)", "HL-RW-tuned")):
        pred = models.make(name).fit_predict(train)
        assert table[label]["hl"] == pytest.approx(evaluate.mae(pred[test_mask], d.values[test_mask]))
    assert table["paper"]["hl"] != pytest.approx(table["tuned (all departures)"]["hl"])
    # rows sharing the paper's s* (computed once) equal separate fits of their configs
    rows = dict(ablation.rows())
    for label in ("+ K = 10", "paper - AS-first"):
        pred = models.make("HL-RW-paper", rows[label], exact=True).fit_predict(train)
        assert table[label]["hl"] == pytest.approx(evaluate.mae(pred[test_mask], d.values[test_mask]))
        assert table[label]["hl"] != pytest.approx(table["paper"]["hl"])


def test_lacf_prefers_neighbours_in_the_same_as_then_country():
    # user 0's best PCC neighbour (user 3) is in another country; users 1 (same AS) and 2 (same country) are weaker
    v = np.array([[1.0, 2.0, 3.0, np.nan],
                  [1.0, 2.5, 2.0, 5.0],
                  [1.5, 2.0, 2.5, 7.0],
                  [1.0, 2.0, 3.0, 1.0]])
    loc = Locations(asn=np.array([0, 0, 1, 2]), country=np.array([0, 0, 0, 1]), lat=np.zeros(4), lon=np.zeros(4),
                    as_names=list("abc"), country_names=list("xy"), ids=list("0123"))
    d = QoSData(values=v, users=loc)
    mask = ~np.isnan(v)
    k1 = models.RWConfig(k=1)
    lacf = models.pcc_side(v, mask, 1, levels=models._levels(loc)).pred
    upcc = models.pcc_side(v, mask, 1).pred
    means = np.nanmean(v, axis=1)
    assert upcc[0, 3] == pytest.approx(means[0] + (1.0 - means[3]))  # plain UPCC: the best PCC, user 3
    assert lacf[0, 3] == pytest.approx(means[0] + (5.0 - means[1]))  # LACF: the same-AS user 1 first
    assert np.isfinite(models.make("LACF", k1).fit_predict(d)).all()


def test_png_writer_makes_a_valid_image(tmp_path):
    path = plot.line_chart(tmp_path / "x.png", [("a", [0, 1, 2], [0.5, 0.4, 0.45]), ("b", [0, 1, 2], [0.3, 0.35, 0.2], True)],
                           title="t", xlabel="K", ylabel="NMAE", size=(400, 300))
    raw = path.read_bytes()
    assert raw[:8] == b"\x89PNG\r\n\x1a\n"
    w, h = struct.unpack(">II", raw[16:24])
    assert (w, h) == (400, 300)
    idat = raw.index(b"IDAT")
    n = struct.unpack(">I", raw[idat - 4: idat])[0]
    pixels = zlib.decompress(raw[idat + 4: idat + 4 + n])
    assert len(pixels) == h * (1 + 3 * w)
    img = np.frombuffer(pixels, np.uint8).reshape(h, 1 + 3 * w)[:, 1:].reshape(h, w, 3)
    assert (img == plot.PALETTE[0]).all(axis=2).sum() > 50  # the first line is drawn in its colour


def test_sensitivity_sweeps_agree_with_the_models():
    d = _data(seed=8)
    out = sensitivity.run(d, [0.3], repeats=1, seed=3)
    from pipelines.qos import evaluate

    train_mask, test_mask = evaluate.split(d.values, 0.3, 3, 0)
    train = QoSData(values=np.where(train_mask, d.values, np.nan), users=d.users, services=d.services, metric="rt")
    pred = models.make("HL-RW-paper").fit_predict(train)
    lam_at_06 = out["lambda_mae"]["paper"]["0.30"][sensitivity.LAMBDAS.index(0.6)]
    k_at_5 = out["k_mae"]["paper"]["0.30"][sensitivity.KS.index(5)]
    want = evaluate.mae(pred[test_mask], d.values[test_mask])
    assert lam_at_06 == pytest.approx(want) and k_at_5 == pytest.approx(want)


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("OSR_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("OSR_STORE_CATALOG", f"sqlite:{tmp_path / 'store' / 'catalog.sqlite'}")
    monkeypatch.setenv("OSR_STORE_DATA", str(tmp_path / "store" / "data"))
    return tmp_path


def test_refresh_chooses_the_best_candidate_and_records_the_comparison(env):
    from pipelines.qos import store
    from pipelines.store.db import migrate

    d = _data(seed=9, n=20, o=30)
    con = connect()
    try:
        migrate(con)
        store.save_locations(con, d.users, d.services)
        store.save_observations(con, store.observations_frame(d.values, "rt"))
    finally:
        con.close()
    cands = ["UMean", "HL-RW-paper", "HL-RW-tuned", "LACF"]
    out = refresh.refresh("rt", candidates=cands, top=3)
    con = connect()
    try:
        rows = con.execute("SELECT model, holdout_mae, chosen, cells FROM qos.model_choice ORDER BY model").df()
        run = con.execute("SELECT model, holdout_mae FROM qos.runs").df()
    finally:
        con.close()
    assert sorted(rows["model"]) == sorted(cands) and rows["chosen"].sum() == 1
    best = rows.loc[rows["holdout_mae"].idxmin()]
    assert bool(best["chosen"]) and out["model"] == best["model"] == run["model"][0]
    assert run["holdout_mae"][0] == pytest.approx(best["holdout_mae"])
    with pytest.raises(ValueError, match="unknown model"):
        refresh.choose_model({"folder": str(env)}, ["nope"])
