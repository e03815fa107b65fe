"""Samples, decisions and the hourly model round-trip through the store (migration 090)."""

import pytest

from pipelines.capacity import store
from pipelines.capacity.decision import Decision
from pipelines.capacity.monitor import Sample, WorkerStats
from pipelines.capacity.predict import HourlyModel
from pipelines.store import db


@pytest.fixture
def con(tmp_path):
    c = db.connect(tmp_path / "store")
    db.migrate(c)
    yield c
    c.close()


def test_samples_decisions_model_round_trip_and_are_idempotent(con):
    s = Sample(1_800_000_000.0, "g", "t", 4, {0: 10}, {0: 7}, 5.0, 4.0, 3, 1, "Stable", 0.2, 0.9, 1.5, 4,
               {"w0": WorkerStats("w0", 100, 0.5, 2.0)})
    assert store.write_samples(con, "run1", [(s, 8.5, 1)]) == 1
    assert store.write_samples(con, "run1", [(s, 8.5, 1)]) == 0  # replayed: nothing twice
    row = con.execute("SELECT lag, hour, true_rate FROM ops.capacity_samples").fetchone()
    assert row == (3, 8.5, pytest.approx(200.0))
    assert con.execute("SELECT busy_fraction FROM ops.capacity_worker_samples").fetchone()[0] == pytest.approx(0.25)
    d = Decision(3.0, "predictive_reactive", "scale_up", 1, 2, "because", "MIGRATION", {"rate": 1.0})
    assert store.write_decisions(con, "run1", [(d, "started worker 1 (pid 5)")], t0=s.t) == 1
    assert con.execute("SELECT reason, outcome FROM ops.capacity_decisions").fetchone() == \
        ("because", "started worker 1 (pid 5)")
    store.write_model(con, HourlyModel(95, {0: 1.0, 1: 2.0}, {0: 3, 1: 3}, 2), "m1")
    mid, m = store.read_model(con)
    assert mid == "m1" and m.rates == {0: 1.0, 1: 2.0} and m.days == 2
    obs = store.rate_observations(con, "g", days=100_000)
    assert obs and obs[0][1:] == (8.5, 5.0)
