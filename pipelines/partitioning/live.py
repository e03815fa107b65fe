"""Driving and checking the live profile stream from outside: produce CDRs, wait for the drain, read
the profile table back from its changelog and hold it to a centralized recomputation.

Why from the changelog: it is the state a restarted worker recovers, so a profile that is right
there survives any crash; reading it needs no worker API. Shared by the integration test and
bench/repartition.py --live.
"""

from __future__ import annotations

import threading
import time
import uuid

import numpy as np
import orjson

from pipelines import config
from pipelines.ingest.changelog import read_changelog
from pipelines.ingest.kafka_clients import consumer_config, produce_waiting, producer_config
from pipelines.ingest.lag import group_lag
from pipelines.partitioning import profiles as P
from pipelines.partitioning.coordinator import topic
from pipelines.partitioning.migration import NodeParams, Versions, record_key
from pipelines.partitioning.workload import Workload


class CdrProducer(threading.Thread):
    """Streams a workload's CDRs to profiles.raw (keyed by customer) at `rate_per_s` until stopped or
    `limit` CDRs; keeps what it sent, in order, as (customer, ts, values), and the ones the broker never
    took (`failed`: index, reason), so a check can tell a producer's loss from the stream's."""

    def __init__(self, wl: Workload, rate_per_s: float, limit: int, chunk: int = 50):
        super().__init__(daemon=True)
        self.wl, self.rate, self.limit, self.chunk = wl, rate_per_s, limit, chunk
        self.sent: list[tuple[str, float, list[int]]] = []
        self.stop_event = threading.Event()
        self.error: BaseException | None = None
        self.sent_at: list[float] = []
        self.failed: list[tuple[int, str]] = []

    def delivered(self) -> list[tuple[str, float, list[int]]]:
        """The CDRs the broker acknowledged, in the order they were sent."""
        bad = {i for i, _ in self.failed}
        return [c for i, c in enumerate(self.sent) if i not in bad]

    def run(self) -> None:
        from confluent_kafka import Producer

        try:
            p = Producer(producer_config())
            keys = self.wl.keys()
            raw = topic("profiles_raw")
            t0, ts0 = time.monotonic(), 0.0
            while len(self.sent) < self.limit and not self.stop_event.is_set():
                c = self.wl.cdrs(self.chunk, ts0, ts0 + 600.0)  # ten simulated minutes per chunk, in order
                ts0 += 600.0
                for cust, ts, vals in zip(c.customer, c.ts, c.values):
                    key = keys[int(cust)]
                    values = [int(v) for v in vals]
                    produce_waiting(p, raw, key.encode(), orjson.dumps({"customer": key, "ts": float(ts),
                                                                        "values": values}),
                                    on_delivery=self._on_delivery(len(self.sent)))
                    self.sent.append((key, float(ts), values))
                    self.sent_at.append(time.time())
                p.poll(0)
                ahead = len(self.sent) / self.rate - (time.monotonic() - t0)
                if ahead > 0:
                    time.sleep(ahead)
            if p.flush(60):
                raise RuntimeError("CDRs not delivered within 60 s")
        except BaseException as exc:  # noqa: BLE001 - reported by the caller
            self.error = exc

    def _on_delivery(self, index: int):
        def report(err, _msg) -> None:
            if err is not None:
                self.failed.append((index, str(err)))
        return report


def wait_drained(group: str, timeout: float = 120.0) -> None:
    """Until the Faust group has committed everything on profiles.raw and profiles.updates (twice)."""
    topics = [topic("profiles_raw"), topic("profiles_updates")]
    deadline, clean = time.monotonic() + timeout, 0
    while clean < 2:
        lag = group_lag(group, topics)
        clean = clean + 1 if sum(lag.values()) == 0 else 0
        if time.monotonic() > deadline:
            raise TimeoutError(f"profile stream not drained after {timeout} s: lag {lag}")
        time.sleep(1.0)


def wait_processed(app_id: str | None = None, timeout: float = 120.0) -> dict[str, int]:
    """Until every profiles.raw and profiles.updates offset has been processed, by the agents' own durable
    watermarks (pipelines.partitioning.gaps: "<r>#pos" in profile_router, "<node>|#pos" in profile_states),
    the same twice in a row. Returns Faust's committed lag at that point, which can stay above 0: Faust's commit
    can stall behind an offset its stream never delivered although another owner processed it (seen live)."""
    from confluent_kafka import Consumer, TopicPartition

    app_id = app_id or config.get("OSR_FAUST_APP_ID")
    raw, upd = topic("profiles_raw"), topic("profiles_updates")
    deadline, last, stable = time.monotonic() + timeout, None, 0
    c = Consumer(consumer_config(f"osr-drain-{uuid.uuid4().hex[:8]}"))
    try:
        while stable < 2:
            ends = {}
            for t in (raw, upd):
                for p in c.list_topics(t, timeout=10).topics[t].partitions:
                    ends[(t, p)] = c.get_watermark_offsets(TopicPartition(t, p), timeout=10)[1] - 1
            router, nodes = read_changelog(app_id, "profile_router"), read_changelog(app_id, "profile_states")
            pos = {(raw, p): (router.get(f"{p}#pos") or {}).get("pos", -1) for t, p in ends if t == raw}
            pos |= {(upd, p): (nodes.get(record_key(p, "#pos")) or {}).get("pos", -1) for t, p in ends if t == upd}
            behind = {f"{t}:{p}": e - pos[(t, p)] for (t, p), e in ends.items() if pos[(t, p)] < e}
            now = (tuple(sorted(ends.items())), tuple(sorted(pos.items())))
            stable = stable + 1 if not behind and now == last else 0
            last = now
            if time.monotonic() > deadline:
                raise TimeoutError(f"profile stream not processed to the end after {timeout} s: behind {behind}")
            time.sleep(1.0)
    finally:
        c.close()
    return group_lag(app_id, [raw, upd])


def recompute(cdrs, params: NodeParams) -> dict[str, dict]:
    """Every profile from the CDRs in the order they were produced (one raw partition per customer)."""
    states: dict[str, dict] = {}
    for c, ts, values in cdrs:
        states[c] = P.update(states.get(c) or P.empty_state(), values, ts, params.window, params.schema)
    return states


def compare(table: dict, versions: Versions, expected: dict[str, dict], schema: P.Schema = P.TELCO) -> dict:
    """Each profile's record on the node its latest routing version names, against the recomputation."""
    v = versions.latest
    lost = double = missing = wrong = 0
    examples = []
    first = schema.sizes[0]
    for c, state in expected.items():
        rec = table.get(record_key(versions.route(c, v), c))
        if not isinstance(rec, dict) or "state" not in rec:
            missing += 1
            lost += int(P.counts_of(state, schema)[:first].sum())
            examples.append((c, "no live record on its node", rec))
            continue
        got, want = P.counts_of(rec["state"], schema)[:first].sum(), P.counts_of(state, schema)[:first].sum()
        lost += int(max(want - got, 0))
        double += int(max(got - want, 0))
        if rec["state"] != state:
            wrong += 1
            if len(examples) < 5:
                route = [versions.route(c, w) for w in range(v + 1)]
                examples.append((c, f"{got:.0f} updates, expected {want:.0f}; nodes by version {route}",
                                 {"v": rec["v"], "seen": rec["seen"]}))
    awaiting = sum(1 for k, r in table.items() if isinstance(r, dict) and r.get("await"))
    updates = int(sum(P.counts_of(s, schema)[:first].sum() for s in expected.values()))
    return {"profiles": len(expected), "updates": updates, "lost": lost, "double_counted": double,
            "missing_profiles": missing, "unequal_profiles": wrong, "still_waiting": awaiting,
            "examples": examples[:5]}


def random_moves(keys, versions: Versions, share: float, seed: int) -> dict[str, int]:
    """A random repartitioning: `share` of the keys, each to another node (for tests and the bench)."""
    rng = np.random.default_rng(seed)
    keys = sorted(keys)
    pick = rng.choice(len(keys), size=max(1, int(len(keys) * share)), replace=False)
    out = {}
    for i in pick:
        k = keys[int(i)]
        now = versions.route(k, versions.latest)
        out[k] = int((now + rng.integers(1, versions.n_nodes)) % versions.n_nodes)
    return out
