"""The synthetic generator, the evaluation protocol and `osr qos eval` (through pipelines.ops.commands.qos.main)."""

import json

import numpy as np
import pytest

from pipelines.ops.commands import qos as cli
from pipelines.qos import data, evaluate, generate
from pipelines.qos.data import Locations

HAVE_LISTS = (generate.wsdream_dir() / "wslist.txt.gz").exists()


def _small_locations(n, rng, n_as=4, n_c=2):
    return Locations(asn=rng.integers(0, n_as, n), country=rng.integers(0, n_c, n),
                     lat=rng.uniform(-40, 60, n), lon=rng.uniform(-150, 150, n),
                     as_names=[f"AS{i}" for i in range(n_as)], country_names=[f"C{i}" for i in range(n_c)],
                     ids=[str(i) for i in range(n)])


def test_generator_is_seeded_and_calibrated():
    rng = np.random.default_rng(0)
    users, services = _small_locations(40, rng), _small_locations(150, rng, n_as=6)
    a = generate.generate("rt", seed=3, users=users, services=services)
    b = generate.generate("rt", seed=3, users=users, services=services)
    c = generate.generate("rt", seed=4, users=users, services=services)
    assert a.shape == (40, 150) and np.array_equal(a.values, b.values) and not np.array_equal(a.values, c.values)
    assert a.values.mean() == pytest.approx(0.81, rel=1e-3)
    assert a.values.max() <= 20.0 and a.values.min() > 0
    assert np.median(a.values) < a.values.mean()  # heavy right tail
    tp = generate.generate("tp", seed=3, users=users, services=services)
    assert tp.values.mean() == pytest.approx(44.03, rel=1e-3)
    # network location matters: same-AS pairs are faster on average
    same = (users.asn[:, None] == services.asn[None, :])
    assert a.values[same].mean() < a.values[~same].mean()
    assert tp.values[same].mean() > tp.values[~same].mean()
    holes = generate.generate("rt", seed=3, users=users, services=services, missing=0.2)
    assert 0.15 < np.isnan(holes.values).mean() < 0.25


@pytest.mark.skipif(not HAVE_LISTS, reason="shared WS-DREAM lists not present")
def test_generator_uses_the_real_locations():
    users, services = generate.real_locations()
    assert len(users) == 339 and len(services) == 5825
    d = generate.generate("rt", seed=1, users=users, services=services.subset(np.arange(200)))
    assert d.shape == (339, 200)


def test_split_protocol():
    v = np.arange(200, dtype=float).reshape(10, 20)
    v[0, :5] = np.nan
    tr, te = evaluate.split(v, 0.1, seed=1, repeat=0)
    assert not (tr & te).any()
    assert not (tr | te)[0, :5].any()  # unobserved cells are in neither
    assert tr.sum() + te.sum() == 195 and tr.sum() <= 20
    tr2, _ = evaluate.split(v, 0.1, seed=1, repeat=1)
    assert not np.array_equal(tr, tr2)
    assert np.array_equal(tr, evaluate.split(v, 0.1, seed=1, repeat=0)[0])
    assert evaluate.mae(np.array([1.0, 3.0]), np.array([2.0, 2.0])) == 1.0
    assert evaluate.nmae(np.array([1.0, 3.0]), np.array([2.0, 2.0])) == 0.5


def _files(tmp_path, with_lists=True):
    rng = np.random.default_rng(7)
    users, services = _small_locations(30, rng), _small_locations(60, rng)
    d = generate.generate("rt", seed=1, users=users, services=services)
    m = data.write_matrix(d.values, tmp_path / "rt.txt.gz")
    if not with_lists:
        return m, None, None

    def listfile(loc, name, header):
        rows = [header, "=" * 20]
        for i in range(len(loc)):
            rows.append("\t".join([str(i), "1.2.3.4", loc.country_names[loc.country[i]], "1",
                                   f"{loc.as_names[loc.asn[i]]} Some Net", f"{loc.lat[i]:.3f}", f"{loc.lon[i]:.3f}"]))
        p = tmp_path / name
        p.write_text("\n".join(rows) + "\n")
        return p

    header = "[User ID]\t[IP Address]\t[Country]\t[IP No.]\t[AS]\t[Latitude]\t[Longitude]"
    return m, listfile(users, "userlist.txt", header), listfile(services, "wslist.txt", header)


def test_cli_eval_json_with_locations(tmp_path, capsys):
    m, u, s = _files(tmp_path)
    rc = cli.main(["qos", "eval", "--matrix", str(m), "--users", str(u), "--services", str(s), "--density", "0.2",
                   "--repeats", "2", "--seed", "1", "--models", "UPCC,IPCC,UIPCC,UL-RW,SL-RW,HL-RW,HL-RW-noloc",
                   "--json"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["location"]["users"] and out["location"]["services"]
    assert set(out["models"]) == {"UPCC", "IPCC", "UIPCC", "UL-RW", "SL-RW", "HL-RW", "HL-RW-noloc"}
    for r in out["models"].values():
        assert r["mae"] > 0 and r["nmae"] > 0 and r["seconds"] >= 0
    assert out["models"]["HL-RW"]["info"]["users"]["omega"] is True
    assert out["models"]["HL-RW-noloc"]["info"]["users"]["omega"] is False


def test_cli_eval_without_locations_says_omega_is_one(tmp_path, capsys):
    m, _, _ = _files(tmp_path, with_lists=False)
    rc = cli.main(["qos", "eval", "--matrix", str(m), "--density", "0.15", "--repeats", "1", "--models",
                   "HL-RW", "--json"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert not out["location"]["users"] and not out["location"]["services"]
    assert "omega = 1" in out["location"]["note"]
    assert out["models"]["HL-RW"]["info"]["services"]["omega"] is False


def test_cli_help(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["qos", "eval", "--help"])
    assert e.value.code == 0
    assert "--service-index" in capsys.readouterr().out


def test_cli_generate_writes_a_wsdream_matrix(tmp_path, capsys, monkeypatch):
    rng = np.random.default_rng(1)
    small = (_small_locations(12, rng), _small_locations(30, rng))
    monkeypatch.setattr(generate, "real_locations", lambda folder=None: small)
    out = tmp_path / "tp.txt.gz"
    assert cli.main(["qos", "generate", "--metric", "tp", "--seed", "2", "--missing", "0.1", "--out", str(out)]) == 0
    info = json.loads(capsys.readouterr().out)
    m = data.read_matrix(out)
    assert m.shape == (12, 30) == tuple(info["shape"]) and np.isnan(m).any()
