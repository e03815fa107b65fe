"""Aggregate profiles over a sliding window: P(d) = per-feature shares of the updates in the window.

Why: the paper clusters aggregate profiles, not updates (sec. 3.1: <P(d), S(d)> <- gamma(P, S, u)).
The state S(d) is a list of time buckets, each holding one count per feature value, so the
window slides by dropping whole buckets and |S(d)| (the memory cost) is the number of buckets
kept. Two forms of the same aggregation:
  - `update` / `profile_vector` / `costs`: pure functions on one customer's JSON-serializable
    state (state in, state out), for the stream's table keyed by customer;
  - `WindowCounts`: the same window for every customer at once as a numpy ring buffer, for the
    offline simulation (no Python loop over profiles). A test holds the two to the same answer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Schema:
    """Feature groups of a profile; each group's shares sum to 1 (e.g. call destination kinds)."""

    groups: tuple[tuple[str, tuple[str, ...]], ...]

    @property
    def sizes(self) -> tuple[int, ...]:
        return tuple(len(values) for _, values in self.groups)

    @property
    def offsets(self) -> np.ndarray:
        return np.concatenate([[0], np.cumsum(self.sizes)[:-1]]).astype(np.int64)

    @property
    def dims(self) -> int:
        return int(sum(self.sizes))

    @property
    def names(self) -> list[str]:
        return [f"{g}.{v}" for g, values in self.groups for v in values]

    def group_of_dim(self) -> np.ndarray:
        return np.repeat(np.arange(len(self.groups)), self.sizes)

    def columns(self, values) -> np.ndarray:
        """Per-group value indices (n, groups) -> the profile dimension of each (n, groups)."""
        values = np.asarray(values, dtype=np.int64)
        if values.ndim != 2 or values.shape[1] != len(self.groups):
            raise ValueError(f"expected one value index per group ({len(self.groups)}), got shape {values.shape}")
        if (values < 0).any() or (values >= np.asarray(self.sizes)).any():
            raise ValueError("a value index is outside its group")
        return values + self.offsets


#: The paper's telco case (sec. 5.2): destination kind, time of day, day of week, call length.
TELCO = Schema((
    ("destination", ("local", "trunk", "gsm", "international", "premium")),
    ("daypart", ("night", "day")),
    ("week", ("weekday", "weekend")),
    ("length", ("short", "long")),
))


@dataclass(frozen=True)
class Window:
    """A window of `buckets` buckets of `bucket_s` seconds; bucket b covers [b*bucket_s, (b+1)*bucket_s)."""

    bucket_s: float = 3600.0
    buckets: int = 168

    def bucket(self, ts: float) -> int:
        return int(np.floor(ts / self.bucket_s))


def shares(counts: np.ndarray, schema: Schema) -> np.ndarray:
    """Counts per dimension (..., D) -> shares within each group; a group with no update gives 0s."""
    counts = np.asarray(counts, dtype=float)
    group = schema.group_of_dim()
    totals = np.zeros(counts.shape[:-1] + (len(schema.groups),))
    for g in range(len(schema.groups)):  # loop over feature groups (4), not over profiles
        totals[..., g] = counts[..., group == g].sum(axis=-1)
    denom = totals[..., group]
    return np.divide(counts, denom, out=np.zeros_like(counts), where=denom > 0)


# --- one customer's state: pure functions for the stream -----------------------------------------

def empty_state() -> dict:
    return {"buckets": []}  # [[bucket index, count per dimension...], ...], oldest first


def _check_state(state: dict, schema: Schema) -> list:
    buckets = state.get("buckets") if isinstance(state, dict) else None
    if not isinstance(buckets, list) or any(not isinstance(b, list) or len(b) != schema.dims + 1 for b in buckets):
        raise ValueError(f"profile state must be {{'buckets': [[index, {schema.dims} counts], ...]}}")
    return buckets


def expire(state: dict, now_ts: float, window: Window, schema: Schema) -> dict:
    """Drop the buckets that fell out of the window ending at now_ts (returns a new state)."""
    newest = window.bucket(now_ts)
    kept = [list(b) for b in _check_state(state, schema) if b[0] > newest - window.buckets]
    return {"buckets": kept}


def update(state: dict, values, ts: float, window: Window, schema: Schema) -> dict:
    """Add one update (one value index per group) at time ts; returns the new state, input untouched."""
    if not np.isfinite(ts):
        raise ValueError("update time must be finite")
    cols = schema.columns(np.asarray(values).reshape(1, -1))[0]
    new = expire(state, ts, window, schema)
    b = window.bucket(ts)
    buckets = new["buckets"]
    if buckets and buckets[-1][0] > b:
        if b <= buckets[-1][0] - window.buckets:
            return new  # older than the window: nothing to add
        slot = next((x for x in buckets if x[0] == b), None)
        if slot is None:
            slot = [b] + [0] * schema.dims
            buckets.append(slot)
            buckets.sort(key=lambda x: x[0])
    elif buckets and buckets[-1][0] == b:
        slot = buckets[-1]
    else:
        slot = [b] + [0] * schema.dims
        buckets.append(slot)
    for c in cols:
        slot[1 + int(c)] += 1
    return new


def counts_of(state: dict, schema: Schema) -> np.ndarray:
    buckets = _check_state(state, schema)
    if not buckets:
        return np.zeros(schema.dims)
    return np.asarray([b[1:] for b in buckets], dtype=float).sum(axis=0)


def profile_vector(state: dict, schema: Schema) -> np.ndarray:
    """P(d): the shares of each group's values over the window."""
    return shares(counts_of(state, schema), schema)


def costs(state: dict, schema: Schema) -> tuple[float, float]:
    """(processing, memory): f(d) = updates in the window (beta = 1: an update is a few counter
    increments whatever the state), |S(d)| = buckets kept."""
    buckets = _check_state(state, schema)
    first = schema.sizes[0]
    updates = float(sum(sum(b[1:1 + first]) for b in buckets))
    return updates, float(len(buckets))


# --- every customer at once: the offline simulation ----------------------------------------------

class WindowCounts:
    """Ring buffer (customers, buckets, D) of counts; same window semantics as `update`."""

    def __init__(self, n_customers: int, window: Window, schema: Schema):
        self.window, self.schema = window, schema
        self.counts = np.zeros((n_customers, window.buckets, schema.dims), dtype=np.int32)
        self.bucket_of_slot = np.full(window.buckets, -(10 ** 12), dtype=np.int64)
        self.newest = -(10 ** 12)

    def add(self, customers, ts, values) -> None:
        """Add a time-ordered or unordered batch of updates (customer index, time, value per group)."""
        customers = np.asarray(customers, dtype=np.int64)
        ts = np.asarray(ts, dtype=float)
        if customers.size == 0:
            return
        b = np.floor(ts / self.window.bucket_s).astype(np.int64)
        self.advance(int(b.max()))
        keep = b > self.newest - self.window.buckets
        customers, b, cols = customers[keep], b[keep], self.schema.columns(np.asarray(values)[keep])
        slots = b % self.window.buckets
        n, w, d = self.counts.shape
        flat = ((customers * w + slots)[:, None] * d + cols).ravel()
        self.counts += np.bincount(flat, minlength=n * w * d).reshape(n, w, d).astype(np.int32)

    def advance(self, newest_bucket: int) -> None:
        """Move the window's end to newest_bucket, clearing the slots of buckets that fell out."""
        if newest_bucket <= self.newest:
            return
        for b in range(max(self.newest + 1, newest_bucket - self.window.buckets + 1), newest_bucket + 1):
            slot = b % self.window.buckets
            self.counts[:, slot, :] = 0
            self.bucket_of_slot[slot] = b
        self.newest = newest_bucket

    def profiles(self) -> np.ndarray:
        return shares(self.counts.sum(axis=1), self.schema)

    def costs(self) -> tuple[np.ndarray, np.ndarray]:
        first = self.schema.sizes[0]
        per_bucket = self.counts[:, :, :first].sum(axis=2)
        return per_bucket.sum(axis=1).astype(float), (per_bucket > 0).sum(axis=1).astype(float)
