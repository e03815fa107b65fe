"""The generated bursty day (pipelines.capacity.workload): its shape, its crowds and its send times."""

import numpy as np

from pipelines.capacity.analyze import dispersion_profile
from pipelines.capacity.predict import HourlyModel
from pipelines.capacity.workload import diurnal, make_day, minute_observations, send_times


def test_diurnal_shape_quiet_nights_evening_peak():
    assert diurnal(np.array([18.0]))[0] == 1.0
    assert diurnal(np.array([3.0]))[0] < 0.1 < diurnal(np.array([8.0]))[0]


def test_flash_crowds_raise_the_rate_where_they_are():
    day = make_day(100.0, seed=1, crowds=1, noise=0.0)
    (start, dur, extra), = day.crowds
    calm = make_day(100.0, seed=1, crowds=0, noise=0.0)
    m = int(start * 60) + 1
    assert day.minute_rate[m] - calm.minute_rate[m] == extra


def test_send_times_follow_the_rates_and_are_bursty():
    day = make_day(100.0, seed=2)
    t = send_times(day, hour_s=6.0, seed=3)
    expected = float(np.sum(day.minute_rate * 0.1))  # a day-minute lasts 0.1 s
    assert abs(len(t) - expected) < 4 * np.sqrt(expected) and np.all(np.diff(t) >= 0)
    per_s = np.histogram(t, bins=np.arange(0, t[-1] + 1, 1.0))[0]
    prof = dispersion_profile(per_s, (1, 60))
    assert prof[60] > prof[1] > 1.5  # far from Poisson, and more so at longer windows


def test_the_model_of_past_days_sees_the_evening_peak():
    obs = [o for d in range(5) for o in minute_observations(make_day(100.0, seed=10 + d), d, 6.0, seed=d)]
    m = HourlyModel.fit(obs, 95)
    assert m.predict(18) > 3 * m.predict(3)
