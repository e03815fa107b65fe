"""The hourly predictive model (pipelines.capacity.predict): a high percentile per hour of day."""

import pytest

from pipelines.capacity.predict import HourlyModel


def _days():
    """Seven days; hour 8 has per-minute rates 10..69 each day plus one flash crowd of 500 on day 3."""
    obs = []
    for day in range(7):
        for minute in range(60):
            obs.append((day, 8 + minute / 60, 10.0 + minute))
            obs.append((day, 3 + minute / 60, 2.0))
    obs.append((3, 8.5, 500.0))
    return obs


def test_percentile_per_hour_ignores_a_single_flash_crowd():
    m = HourlyModel.fit(_days(), percentile=95)
    # 421 samples in hour 8: 7 copies of 10..69 and one 500; the 95th percentile lies in the 60s
    assert 65 <= m.predict(8) <= 69
    assert m.predict(3) == 2.0
    assert HourlyModel.fit(_days(), percentile=100).predict(8) == 500.0
    assert m.days == 7 and m.samples[8] == 421


def test_peak_ahead_looks_past_midnight_and_unknown_hours_are_safe():
    m = HourlyModel(95, {23: 5.0, 0: 50.0, 1: 7.0})
    assert m.peak_ahead(23.5, 1.0) == 50.0
    assert m.predict(12) == 50.0  # never seen: the highest hour's rate


def test_bad_observations_are_refused():
    with pytest.raises(ValueError):
        HourlyModel.fit([])
    with pytest.raises(ValueError):
        HourlyModel.fit([(0, 1.0, -3.0)])
