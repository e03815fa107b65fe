"""A versioned routing table: profile key -> node, with a version number and diffs between versions.

Why a plain immutable value: the stream's splitter installs one version at a time and the
migration moves exactly the keys in diff(old, new); JSON round-trips let the table live in a
changelogged table or a control message. Keys not in the table fall back to consistent hashing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np

from pipelines.partitioning import hashing


@dataclass(frozen=True)
class Move:
    key: str
    source: int
    target: int


@dataclass(frozen=True)
class RoutingTable:
    version: int
    n_nodes: int
    assignment: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))

    def __post_init__(self):
        if self.n_nodes < 1:
            raise ValueError("a routing table needs at least one node")
        bad = [k for k, v in self.assignment.items() if not (isinstance(v, int) and 0 <= v < self.n_nodes)]
        if bad:
            raise ValueError(f"{len(bad)} keys routed outside [0, {self.n_nodes}), e.g. {bad[0]!r}")
        if not isinstance(self.assignment, MappingProxyType):
            object.__setattr__(self, "assignment", MappingProxyType(dict(self.assignment)))

    @classmethod
    def hashed(cls, keys, n_nodes: int) -> "RoutingTable":
        """Version 0: consistent hashing of every key (p_0 = H_N)."""
        keys = [str(k) for k in keys]
        return cls(0, n_nodes, dict(zip(keys, (int(v) for v in hashing.place(keys, n_nodes)))))

    def route(self, key: str) -> int:
        node = self.assignment.get(key)
        return int(hashing.place([key], self.n_nodes)[0]) if node is None else node

    def nodes_of(self, keys) -> np.ndarray:
        return np.asarray([self.route(str(k)) for k in keys], dtype=np.int64)

    def next(self, keys, nodes, n_nodes: int | None = None) -> "RoutingTable":
        """Version + 1 with the given keys routed to the given nodes (other keys kept)."""
        keys = [str(k) for k in keys]
        nodes = [int(v) for v in nodes]
        if len(keys) != len(nodes):
            raise ValueError("one node per key expected")
        new = dict(self.assignment)
        new.update(zip(keys, nodes))
        return RoutingTable(self.version + 1, self.n_nodes if n_nodes is None else n_nodes, new)

    def to_json(self) -> str:
        return json.dumps({"version": self.version, "n_nodes": self.n_nodes, "assignment": dict(self.assignment)},
                          sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "RoutingTable":
        d = json.loads(text)
        if not isinstance(d, dict) or not {"version", "n_nodes", "assignment"} <= set(d):
            raise ValueError("routing table JSON needs version, n_nodes and assignment")
        return cls(int(d["version"]), int(d["n_nodes"]), {str(k): v for k, v in d["assignment"].items()})


def diff(old: RoutingTable, new: RoutingTable) -> list[Move]:
    """The profiles that move from old to new (keys of either table; unknown keys route by hash)."""
    if new.version <= old.version:
        raise ValueError(f"diff goes forward: version {old.version} -> {new.version}")
    keys = sorted(set(old.assignment) | set(new.assignment))
    moves = []
    for k in keys:
        a, b = old.route(k), new.route(k)
        if a != b:
            moves.append(Move(k, a, b))
    return moves
