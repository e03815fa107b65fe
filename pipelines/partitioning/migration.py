"""Live migration of profiles between nodes: the router's and the node's side, as pure functions.

Why this protocol (in-band barriers, buffering at the new owner):
  - The coordinator announces routing version w (its moves) on control.routing, then writes a
    RawBarrier(w) into EVERY profiles.raw partition. A router routes each raw record by the last
    barrier before it in its partition, so every router switches at the same point of the input
    (the version barrier), and a replay after a crash routes every record exactly as before.
    Which barrier is in force is kept per raw partition with its offset (`version_at`).
  - On the barrier the router sends a NodeBarrier(w, source) to every node partition, behind all
    the updates it routed before it. A node that has the NodeBarrier of every raw partition has
    applied every pre-w update, so it ships the state of each profile leaving it (StateTransfer to
    the new node, on that node's profiles.updates partition) and keeps a forward pointer.
  - Updates routed by w reach the new node at once. It HOLDS them (in its table, so they survive
    a kill -9) until the profile's state arrives, then applies the state, replays the held updates
    and resumes. Only moving profiles wait; every other profile keeps flowing, and no router waits.
  - Each update carries its identity (raw partition, offset); a profile keeps the newest offset it
    applied per raw partition (`seen`), so a redelivered update is never counted twice, and
    transfers, barriers and acks are idempotent. Nothing is acknowledged to Kafka before the
    node's table writes (its changelog) are durable, so nothing is lost either.
  - The coordinator starts version w + 1 only once every move of w is Installed (acks).

Table records (key "<node>|<customer>"): active {"v", "state", "seen"}; awaiting {"v", "await",
"pending", "since"}; moved out {"v", "moved"}. "<node>|#align" holds the barrier alignment.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Callable

import orjson

from pipelines.partitioning import profiles as P
from pipelines.partitioning.hashing import place
from pipelines.partitioning.messages import parse_raw
from pipelines.partitioning.routing import RoutingTable

ALIGN = "#align"
CHUNK = 500  # profiles per StateTransfer message (stays far below the broker's 1 MB)


class MissingVersion(Exception):
    """A record needs routing version `version`, which this process has not read yet: wait, retry."""

    def __init__(self, version: int):
        super().__init__(f"routing version {version} not known yet")
        self.version = version


def record_key(node: int, customer: str) -> str:
    return f"{node}|{customer}"


# --- routing versions ----------------------------------------------------------------------------

class Versions:
    """Every routing version from 0 (consistent hashing) on, built from control.routing announcements."""

    def __init__(self, n_nodes: int):
        self.n_nodes = n_nodes
        self.tables: dict[int, RoutingTable] = {0: RoutingTable(0, n_nodes)}
        self._moves: dict[int, dict[str, tuple[int, int]]] = {0: {}}
        self._hashed: dict[str, int] = {}

    @property
    def latest(self) -> int:
        return max(self.tables)

    def add(self, ann: dict) -> bool:
        """Take one RoutingAnnouncement; False when already known. Versions must come in order."""
        v, moves = int(ann["version"]), {str(k): int(n) for k, n in ann["moves"].items()}
        if int(ann["n_nodes"]) != self.n_nodes:
            raise ValueError(f"announcement for {ann['n_nodes']} nodes, this stream has {self.n_nodes}")
        if v in self.tables:
            return False
        if v != self.latest + 1:
            raise ValueError(f"routing version {v} announced after {self.latest}: a version is missing")
        old = self.tables[self.latest]
        self.tables[v] = old.next(list(moves), list(moves.values()))
        self._moves[v] = {k: (self.route(k, v - 1), n) for k, n in moves.items() if self.route(k, v - 1) != n}
        return True

    def route(self, key: str, version: int) -> int:
        table = self.tables.get(version)
        if table is None:
            raise MissingVersion(version)
        node = table.assignment.get(key)
        if node is None:
            node = self._hashed.get(key)
            if node is None:
                node = self._hashed[key] = int(place([key], self.n_nodes)[0])
        return node

    def moves(self, version: int) -> dict[str, tuple[int, int]]:
        """customer -> (source, target) of the profiles version `version` moves."""
        if version not in self._moves:
            raise MissingVersion(version)
        return self._moves[version]

    def arrived_at(self, key: str, node: int, version: int) -> int:
        """The version since which `key` has been routed to `node` without a break (0: from the start)."""
        w = version
        while w > 0 and self.route(key, w - 1) == node:
            w -= 1
        return w


# --- the router ----------------------------------------------------------------------------------

def version_at(history: list, offset: int) -> int:
    """The routing version in force at `offset` of a raw partition: the last barrier before it."""
    offsets = [b for b, _ in history]
    i = bisect.bisect_left(offsets, offset)
    return history[i - 1][1] if i else 0


@dataclass
class RouterOutput:
    sends: list = field(default_factory=list)  # (node, message), in send order
    history: dict = field(default_factory=dict)  # raw partition -> new barrier history (changed ones)
    dead: list = field(default_factory=list)  # (reason, "topic:partition:offset", payload bytes)
    routed: int = 0


def route_records(records, histories: dict, versions: Versions) -> RouterOutput:
    """Route one batch of profiles.raw records [(raw partition, offset, value bytes)], each partition's
    in offset order. Pure: raises MissingVersion before anything is decided if a table is missing."""
    out = RouterOutput()
    hist = {r: list(h) for r, h in histories.items()}
    # (node, version) -> updates of any raw partition (each names its own), one message per node and
    # version; flushed before every barrier so that the barrier stays behind them
    groups: dict[tuple[int, int], list] = {}

    def flush():
        for (node, version), ups in groups.items():
            out.sends.append((node, {"kind": "updates", "version": version, "updates": ups}))
        groups.clear()

    for r, offset, value in records:
        h = hist.setdefault(r, [])
        try:
            rec = parse_raw(value)
        except ValueError as exc:
            out.dead.append((str(exc), r, offset, value))
            continue
        if "barrier" in rec:
            w = rec["barrier"]
            if w <= version_at(h, offset):
                continue  # an old barrier injected again: already in force
            versions.moves(w)  # the table must be known before anything routes by it
            if not any(b == offset for b, _ in h):
                h.append([offset, w])
                h.sort()
                out.history[r] = h
            flush()
            out.sends.extend((node, {"kind": "barrier", "version": w, "source": r}) for node in range(versions.n_nodes))
            continue
        u = version_at(h, offset)
        node = versions.route(rec["customer"], u)
        groups.setdefault((node, u), []).append([rec["customer"], r, offset, rec["ts"], rec["values"]])
        out.routed += 1
    flush()
    return out


# --- the node ------------------------------------------------------------------------------------

@dataclass
class NodeOutput:
    writes: dict = field(default_factory=dict)  # table key -> record (dict)
    sends: list = field(default_factory=list)  # (node, StateTransfer)
    acks: list = field(default_factory=list)  # Installed messages
    applied: int = 0
    held: int = 0
    duplicates: int = 0
    stale: int = 0


@dataclass(frozen=True)
class NodeParams:
    n_raw: int  # profiles.raw partitions: a node aligns on one barrier from each
    window: P.Window = P.Window(bucket_s=6 * 3600.0, buckets=28)
    schema: P.Schema = P.TELCO


def _apply(rec: dict, up: list, p: NodeParams) -> bool:
    """Apply one update to an active record in place unless already seen; True when applied."""
    _, r, offset, ts, values = up
    seen = rec["seen"]
    if offset <= seen.get(str(r), -1):
        return False
    rec["state"] = P.update(rec["state"], values, ts, p.window, p.schema)
    seen[str(r)] = offset
    return True


def _fresh(version: int) -> dict:
    return {"v": version, "state": P.empty_state(), "seen": {}}


def handle_node_batch(node: int, messages: list, get: Callable[[str], dict | None], versions: Versions,
                      p: NodeParams, now: float) -> NodeOutput:
    """One batch of profiles.updates messages of `node`, in order. `get` reads the node's table;
    what this batch wrote is read back from `out.writes`. Pure apart from `get`."""
    out = NodeOutput()

    def read(key):
        return out.writes[key] if key in out.writes else get(key)

    for msg in messages:
        kind = msg.get("kind")
        if kind == "updates":
            _updates(node, msg, read, versions, p, now, out)
        elif kind == "state":
            _install(node, msg, read, p, now, out)
        elif kind == "barrier":
            _barrier(node, msg, read, versions, p, now, out)
        else:
            raise ValueError(f"unknown profiles.updates message kind {kind!r}")
    return out


def _updates(node, msg, read, versions, p, now, out) -> None:
    u = int(msg["version"])
    for up in msg["updates"]:
        c = up[0]
        key = record_key(node, c)
        rec = read(key)
        if rec is not None and "moved" in rec and u < rec["v"]:
            out.stale += 1  # routed here before the profile left: a redelivery of an update it took along
            continue
        if rec is None or "moved" in rec:
            if versions.route(c, u) != node:
                raise ValueError(f"update of {c} routed by version {u} to node {versions.route(c, u)} reached node {node}")
            w = versions.arrived_at(c, node, u)
            rec = _fresh(w) if w == 0 else {"v": w, "await": True, "pending": [], "since": now}
        else:
            rec = dict(rec)
        if rec.get("await"):
            if u < rec["v"]:
                out.stale += 1
                continue
            ident = (up[1], up[2])
            if any((q[1], q[2]) == ident for q in rec["pending"]):
                out.duplicates += 1
                continue
            rec["pending"] = [*rec["pending"], up]
            out.held += 1
        else:
            rec["seen"] = dict(rec["seen"])
            if _apply(rec, up, p):
                out.applied += 1
            else:
                out.duplicates += 1
        out.writes[key] = rec


def _install(node, msg, read, p, now, out) -> None:
    w = int(msg["version"])
    keys, pauses, size = [], [], 0
    for c, payload in msg["profiles"]:
        key = record_key(node, c)
        rec = read(key)
        installed = rec is not None and "state" in rec and rec["v"] >= w
        moved_on = rec is not None and "moved" in rec and rec["v"] > w
        if installed or moved_on:
            keys.append(c)  # installed before (a redelivered transfer): acknowledge again, change nothing
            pauses.append(None)
            continue
        new = {"v": w, "state": payload["state"], "seen": dict(payload["seen"])}
        pending = rec["pending"] if rec is not None and rec.get("await") else []
        for up in sorted(pending, key=lambda q: (q[1], q[2])):
            if _apply(new, up, p):
                out.applied += 1
            else:
                out.duplicates += 1
        out.writes[key] = new
        keys.append(c)
        pauses.append(now - rec["since"] if pending else None)
        size += len(orjson.dumps(payload))
    out.acks.append({"kind": "installed", "version": w, "node": node, "keys": keys, "pauses_s": pauses,
                     "state_bytes": size})


def _barrier(node, msg, read, versions, p, now, out) -> None:
    w, source = int(msg["version"]), int(msg["source"])
    akey = record_key(node, ALIGN)
    align = read(akey) or {"v": 0, "seen": [], "done": True}
    if w < align["v"] or (w == align["v"] and align["done"]):
        return  # a redelivered barrier of a finished migration
    if w > align["v"]:
        align = {"v": w, "seen": [], "done": False}
    align = {**align, "seen": sorted(set(align["seen"]) | {source})}
    if len(align["seen"]) >= p.n_raw:
        by_target: dict[int, list] = {}
        for c, (src, dst) in sorted(versions.moves(w).items()):
            if src != node:
                continue
            key = record_key(node, c)
            rec = read(key)
            if rec is not None and "moved" in rec and rec["v"] >= w:
                continue  # shipped before a crash: the transfer was durable before this pointer
            if rec is not None and rec.get("await"):
                raise ValueError(f"{c} still waits for its state of version {rec['v']} while version {w} moves "
                                 "it on: the coordinator must not start a version before the last one is installed")
            payload = {"state": rec["state"], "seen": rec["seen"]} if rec is not None else \
                {"state": P.empty_state(), "seen": {}}
            by_target.setdefault(dst, []).append([c, payload])
            out.writes[key] = {"v": w, "moved": dst}
        for dst, items in sorted(by_target.items()):
            for i in range(0, len(items), CHUNK):
                out.sends.append((dst, {"kind": "state", "version": w, "from_node": node,
                                        "profiles": items[i:i + CHUNK], "sent_at": now}))
        align["done"] = True
    out.writes[akey] = align


def active_profiles(items) -> dict[str, dict]:
    """customer -> active record, from (table key, record) pairs of one or more nodes."""
    out = {}
    for key, rec in items:
        node, _, c = key.partition("|")
        if c != ALIGN and rec is not None and "state" in rec:
            out[c] = rec
    return out
