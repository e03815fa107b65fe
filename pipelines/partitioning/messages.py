"""The messages of the live profile stream and its migrations, each defined once.

Why here and not in pipelines.contracts: they travel only between the profile router, the node
agent and the migration coordinator (topics profiles.raw, profiles.updates, control.routing,
already named in contracts.TOPICS); the OSR sink never stores them. Plain dicts, as elsewhere.

  profiles.raw       Cdr (keyed by customer) and RawBarrier (one per partition, from the coordinator)
  profiles.updates   RoutedUpdates, NodeBarrier, StateTransfer (partition = node)
  control.routing    RoutingAnnouncement, Installed (node -> coordinator), NodeSummary (node -> planner)
"""

from __future__ import annotations

import math
from typing import TypedDict

import orjson

from pipelines.partitioning.profiles import TELCO, Schema


class Cdr(TypedDict):
    """One profile update (a call detail record): one value index per feature group of the schema."""

    customer: str
    ts: float  # epoch seconds of the call
    values: list[int]


class RawBarrier(TypedDict):
    """Injected by the coordinator into every profiles.raw partition: records after it route by `barrier`."""

    barrier: int


#: One routed update: [customer, raw partition, raw offset, ts, values]; (partition, offset) is its identity.
Update = list


class RoutedUpdates(TypedDict):
    kind: str  # "updates"
    version: int  # the routing version the router used for every update here
    updates: list[Update]  # of one or more raw partitions


class NodeBarrier(TypedDict):
    kind: str  # "barrier": every update of `source` routed before version `version` is ahead of it
    version: int
    source: int


class StateTransfer(TypedDict):
    kind: str  # "state"
    version: int
    from_node: int
    profiles: list[list]  # [customer, {"state": ..., "seen": {raw partition: offset}}]
    sent_at: float


class RoutingAnnouncement(TypedDict):
    kind: str  # "table"
    version: int
    n_nodes: int
    moves: dict[str, int]  # customer -> node from this version on (others keep their route)


class Installed(TypedDict):
    kind: str  # "installed"
    version: int
    node: int
    keys: list[str]
    pauses_s: list[float | None]  # per key: how long its first held update waited (None: none waited)
    state_bytes: int


class NodeSummary(TypedDict):
    kind: str  # "summary"
    node: int
    version: int
    at: float
    profiles: int
    nmi: float | None  # vs the node's micro-clustering at the last repartitioning (None: no baseline yet)
    clusters: list[dict]  # {"o", "r", "p", "m", "l", "keys"}


def parse_raw(value: bytes, schema: Schema = TELCO) -> Cdr | RawBarrier:
    """A profiles.raw record, checked; raises ValueError naming the reason (the router dead-letters it)."""
    try:
        d = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {exc}") from None
    if not isinstance(d, dict):
        raise ValueError("not a JSON object")
    if "barrier" in d:
        if not isinstance(d["barrier"], int) or isinstance(d["barrier"], bool) or d["barrier"] < 1:
            raise ValueError("barrier version must be an integer >= 1")
        return RawBarrier(barrier=d["barrier"])
    missing = [f for f in ("customer", "ts", "values") if f not in d]
    if missing:
        raise ValueError(f"missing {', '.join(missing)}")
    if not isinstance(d["customer"], str) or not d["customer"] or "|" in d["customer"]:
        raise ValueError("customer must be a non-empty string without '|'")
    ts = d["ts"]
    if not isinstance(ts, (int, float)) or isinstance(ts, bool) or not math.isfinite(ts):
        raise ValueError("ts must be a finite number")
    vals = d["values"]
    if not isinstance(vals, list) or len(vals) != len(schema.groups):
        raise ValueError(f"values must be a list of {len(schema.groups)} value indices")
    for v, size in zip(vals, schema.sizes):
        if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v < size:
            raise ValueError(f"value index {v!r} outside its group (0..{size - 1})")
    return Cdr(customer=d["customer"], ts=float(ts), values=vals)
