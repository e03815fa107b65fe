"""The streamed day in the order a live stream delivers it: by time across people.

Why: `population.sensor_events` yields person by person (each person's whole day, then the
next), which is how the backfill wants it. Replayed into the stream in that order, a person's
moments of a whole day arrive within milliseconds of each other, so every moment but the last
looks stale at push time (the person's later state is already known) and the demo would drop
pushes for a reason no live stream has. Sorted by the first reading, a person's moments are as
far apart in the stream as they are in the day; devices of one moment stay next to each other.
"""

from __future__ import annotations

from pipelines.synthetic.population import Population, sensor_events


def live_order(pop: Population, split: str = "stream") -> list[tuple[dict, dict]]:
    """(event, truth) of `split`, ordered by first reading time (stable: a moment's devices keep their order)."""
    return sorted(sensor_events(pop, split), key=lambda et: et[0]["ts"][0])
