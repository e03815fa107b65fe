"""Burstiness, smoothing and SLA risk (pipelines.capacity.analyze) on synthetic series."""

import numpy as np
import pytest

from pipelines.capacity.analyze import Ewma, counts_per_bin, dispersion_profile, index_of_dispersion, sla_risk


def test_poisson_counts_have_dispersion_near_one_at_every_window():
    counts = np.random.default_rng(1).poisson(20, 20_000)
    for w, i in dispersion_profile(counts, (1, 10, 100)).items():
        assert 0.8 < i < 1.2, (w, i)


def test_bursts_show_at_the_window_of_their_length():
    """On/off load: 100 bins at rate 5, 100 bins at rate 45 (Poisson within each). At one bin the
    index is inflated by the mixture; at 100 bins (a burst's length) it is far above Poisson."""
    rng = np.random.default_rng(2)
    rates = np.repeat(np.tile([5.0, 45.0], 50), 100)
    counts = rng.poisson(rates)
    prof = dispersion_profile(counts, (1, 10, 100))
    assert prof[1] > 5 and prof[100] > prof[10] > prof[1]


def test_constant_series_has_no_dispersion_and_bad_input_is_refused():
    assert index_of_dispersion([3] * 100, 5) == 0.0
    with pytest.raises(ValueError):
        index_of_dispersion([0] * 10)
    with pytest.raises(ValueError):
        index_of_dispersion([1, 2, 3], window=2)


def test_counts_per_bin():
    assert list(counts_per_bin([0.1, 0.2, 1.5, 2.9], 1.0, 0.0, 3.0)) == [2, 1, 1]


def test_ewma_by_hand():
    e = Ewma(0.5)
    assert e.add(10) == 10 and e.add(20) == 15 and e.add(None) == 15 and e.add(5) == 10


def test_sla_risk_levels():
    assert sla_risk(6.0, 5.0).level == "violation"
    assert sla_risk(4.5, 5.0).level == "risk"
    assert sla_risk(2.0, 5.0, lag=100, lag_growth_per_s=10).level == "risk"
    assert sla_risk(1.0, 5.0).level == "low"
    assert sla_risk(2.0, 5.0).level == "ok"
