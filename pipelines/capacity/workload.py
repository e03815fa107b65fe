"""A generated bursty day: the diurnal pattern of the platform's people (morning commute, lunch,
evening workouts, quiet nights) plus flash crowds at random times, as per-minute arrival rates
and as Poisson send times at a compressed time scale.

Why generated: the replay needs a day whose shape the predictive model has seen on past days
(same generator, other seeds) and whose flash crowds it has not (their times are random)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: (hour, width in hours, relative height) of the day's peaks
PEAKS = ((8.0, 0.9, 0.75), (12.5, 0.8, 0.55), (18.0, 1.2, 1.0), (21.0, 1.0, 0.35))
NIGHT = 0.06


def diurnal(hour: np.ndarray) -> np.ndarray:
    """Relative load (peak 1) at each hour of day."""
    hour = np.asarray(hour, float)
    out = np.full_like(hour, NIGHT)
    for centre, width, height in PEAKS:
        d = np.minimum(np.abs(hour - centre), 24 - np.abs(hour - centre))
        out += height * np.exp(-0.5 * (d / width) ** 2)
    return np.minimum(out, 1.0)


@dataclass(frozen=True)
class Day:
    minute_rate: np.ndarray  # uploads/s (at the replay's scale) per day-minute, 1440 values
    crowds: tuple[tuple[float, float, float], ...]  # (start hour, duration hours, extra rate)


def make_day(peak_rate: float, seed: int, crowds: int = 2, crowd_height: float = 0.7,
             noise: float = 0.08) -> Day:
    """Per-minute rates: the diurnal shape times peak_rate, day-to-day noise per minute, and
    `crowds` flash crowds (20-40 day-minutes, +crowd_height x peak) at random daytime hours."""
    rng = np.random.default_rng(seed)
    hours = np.arange(1440) / 60.0
    rate = peak_rate * diurnal(hours) * np.exp(rng.normal(0, noise, 1440))
    found = []
    for _ in range(crowds):
        start, dur = float(rng.uniform(7.0, 22.0)), float(rng.uniform(20, 40)) / 60.0
        extra = crowd_height * peak_rate
        rate[(hours >= start) & (hours < start + dur)] += extra
        found.append((round(start, 3), round(dur, 3), round(extra, 1)))
    return Day(rate, tuple(sorted(found)))


def send_times(day: Day, hour_s: float, seed: int) -> np.ndarray:
    """Poisson arrival times (real seconds from the day's start) when a day-hour lasts hour_s seconds."""
    rng = np.random.default_rng(seed)
    minute_s = hour_s / 60.0
    out = []
    for m, r in enumerate(day.minute_rate):
        n = rng.poisson(r * minute_s)
        out.append(m * minute_s + np.sort(rng.uniform(0, minute_s, n)))
    return np.concatenate(out)


def minute_observations(day: Day, day_index: int, hour_s: float, seed: int) -> list[tuple[int, float, float]]:
    """What a monitor would have recorded on a past day: per day-minute, the Poisson count over its
    real duration as a rate (day, hour, rate), the input of HourlyModel.fit."""
    rng = np.random.default_rng(seed)
    minute_s = hour_s / 60.0
    counts = rng.poisson(day.minute_rate * minute_s)
    return [(day_index, m / 60.0, c / minute_s) for m, c in enumerate(counts)]
