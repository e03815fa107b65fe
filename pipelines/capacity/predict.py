"""Predictive provisioning: the arrival rate to provision for, per hour of day, from past days.

Why a high percentile of per-hour histograms (the survey's [5], Urgaonkar et al.): the mean of
an hour hides its bursts; provisioning for, say, the 95th percentile of the per-minute rates
observed in that hour over past days covers the usual peaks of that hour without sizing every
hour for the day's worst flash crowd (the reactive rule handles what was not foreseen).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np


@dataclass
class HourlyModel:
    percentile: float = 95.0
    rates: dict[int, float] = field(default_factory=dict)  # hour of day -> records/s to provision for
    samples: dict[int, int] = field(default_factory=dict)  # hour -> rate samples behind it
    days: int = 0

    @classmethod
    def fit(cls, observations: Iterable[tuple[int, float, float]], percentile: float = 95.0) -> HourlyModel:
        """observations: (day, hour of day 0-23.99, rate records/s), one per sample (e.g. per minute)."""
        if not 0 < percentile <= 100:
            raise ValueError(f"percentile must be in (0, 100], got {percentile}")
        by_hour: dict[int, list[float]] = {}
        days = set()
        for day, hour, rate in observations:
            h = int(hour) % 24
            if rate < 0:
                raise ValueError(f"negative arrival rate {rate} (day {day}, hour {hour})")
            by_hour.setdefault(h, []).append(float(rate))
            days.add(day)
        if not by_hour:
            raise ValueError("no observations to fit the hourly model on")
        return cls(percentile, {h: float(np.percentile(v, percentile)) for h, v in sorted(by_hour.items())},
                   {h: len(v) for h, v in by_hour.items()}, len(days))

    def predict(self, hour: float) -> float:
        """The rate to provision for at `hour` (an hour never seen: the highest hour's, to be safe)."""
        return self.rates.get(int(hour) % 24, max(self.rates.values()))

    def peak_ahead(self, hour: float, lead_hours: float) -> float:
        """The highest rate predicted from `hour` to `hour + lead_hours`: capacity must be there
        before the load, by at least a worker's warm-up."""
        hours = {int(hour) % 24, int(hour + lead_hours) % 24}
        hours |= {int(h) % 24 for h in np.arange(hour, hour + lead_hours, 1.0)}
        return max(self.predict(h) for h in hours)
