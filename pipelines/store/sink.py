"""The sink: the long-lived process that writes stream results into the store (a DuckLake, so
batch tasks and queries read and write beside it).

Reads state.features, osr.scores, tuner.decisions, notifications and sensor.deadletter in batches,
inserts them keyed by their ids (replays insert nothing twice), commits the store
transaction, and only then commits the Kafka offsets. A crash between the two
replays the batch, which the keys make harmless: at-least-once in, exactly-once
in the store.
"""

from __future__ import annotations

import json
import logging
import signal
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone

import pandas as pd

from pipelines import config
from pipelines.contracts import TOPICS
from pipelines.contracts import (DeadLetter, FeatureRow, Notification, ScoredEvent, ScoredItem, TunerDecision,
                                 fields, problem)
from pipelines.ingest.kafka_clients import consumer_config
from pipelines.rate_limited_log import RateLimitedLog
from pipelines.store.db import connect, migrate, table_key, transaction, upsert_ignore

log = logging.getLogger(__name__)

# Table columns, derived from the message contracts (pipelines.contracts); the DDL in
# sql/migrations/001 is held to them by tests/unit/test_contracts.py.
FEATURE_COLUMNS = fields(FeatureRow)
#: One row per candidate: the key, the moment's fields (without the nested list), the item's fields.
SCORE_COLUMNS = ["score_id", *[f for f in fields(ScoredEvent) if f != "scores"], *fields(ScoredItem)]
NOTIFICATION_COLUMNS = fields(Notification)
DECISION_COLUMNS = fields(TunerDecision)
#: The source (topic:partition:offset) is the key; the sink adds when it stored the letter.
DEADLETTER_COLUMNS = ["deadletter_id", *[f for f in fields(DeadLetter) if f != "source"], "received_at"]


def _to_ts(df: pd.DataFrame) -> pd.DataFrame:
    df["ts"] = pd.to_datetime(df.ts, unit="s")
    return df


def features_frame(values: list[dict]) -> pd.DataFrame:
    return _to_ts(pd.DataFrame(values, columns=FEATURE_COLUMNS))


def scores_frame(values: list[dict]) -> pd.DataFrame:
    rows = [{**s, "score_id": f"{v['event_id']}:{s['item_id']}", "event_id": v["event_id"],
             "user_id": v["user_id"], "ts": v["ts"], "model_id": v["model_id"]}
            for v in values for s in v["scores"]]
    return _to_ts(pd.DataFrame(rows, columns=SCORE_COLUMNS))


def notifications_frame(values: list[dict]) -> pd.DataFrame:
    return _to_ts(pd.DataFrame(values, columns=NOTIFICATION_COLUMNS))


def decisions_frame(values: list[dict]) -> pd.DataFrame:
    return _to_ts(pd.DataFrame(values, columns=DECISION_COLUMNS))


def deadletter_frame(values: list[dict]) -> pd.DataFrame:
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    rows = [{**{f: v.get(f) for f in fields(DeadLetter)}, "deadletter_id": v["source"], "received_at": now}
            for v in values]
    return pd.DataFrame(rows, columns=DEADLETTER_COLUMNS)


@dataclass(frozen=True)
class Route:
    """Where one topic's messages land: the table (keyed by its declared key), the converter, and the
    message contract."""

    table: str
    frame: object
    contract: type

    @property
    def key(self) -> list[str]:
        return list(table_key(self.table))

    def problem(self, value) -> str | None:
        """Why `value` cannot be stored in this route's table, or None."""
        return problem(self.contract, value)


def routes() -> dict[str, Route]:
    """Topic -> (table, converter, contract). Why here: one place says where each stream result lands."""
    t = TOPICS
    return {
        config.topic(t.state_features): Route("features.state_features", features_frame, FeatureRow),
        config.topic(t.osr_scores): Route("stream.osr_scores", scores_frame, ScoredEvent),
        config.topic(t.notifications): Route("stream.notifications", notifications_frame, Notification),
        config.topic(t.tuner_decisions): Route("stream.tuner_decisions", decisions_frame, TunerDecision),
        config.topic(t.sensor_deadletter): Route("stream.deadletter", deadletter_frame, DeadLetter),
    }


@dataclass
class SinkStats:
    messages: dict[str, int] = field(default_factory=dict)
    new_rows: dict[str, int] = field(default_factory=dict)
    undecodable: int = 0
    batches: int = 0
    store_retries: int = 0
    pending: int = 0  # messages polled but not stored yet (the store was unavailable)


def _decode(msgs, table_routes: dict[str, Route]) -> tuple[dict[str, list], list[dict]]:
    """Messages by topic, and a dead letter for each one its route cannot take."""
    by_topic: dict[str, list] = {}
    bad = []
    for m in msgs:
        try:
            value = json.loads(m.value())
            problem = table_routes[m.topic()].problem(value)
        except (TypeError, ValueError, RecursionError) as exc:
            problem = f"not JSON: {exc}"
        if problem is None:
            by_topic.setdefault(m.topic(), []).append((m, value))
        else:
            bad.append(_letter(m, f"sink could not decode a {m.topic()} message: {problem}"))
    return by_topic, bad


def _letter(m, reason: str) -> dict:
    return {"source": f"{m.topic()}:{m.partition()}:{m.offset()}", "event_id": None, "reason": reason,
            "payload": (m.value() or b"").decode("utf-8", "replace")[:10_000]}


def _store(con, by_topic: dict[str, list], bad: list[dict], table_routes: dict[str, Route], stats: SinkStats) -> None:
    """Insert (ignoring known keys) in one store transaction, run again if another writer wins the
    commit race (the keys make that harmless); the stats count the attempt that committed."""
    def work(c) -> list[tuple[str, str, int, int]]:
        done = []
        for topic, pairs in by_topic.items():
            r = table_routes[topic]
            values = [v for _m, v in pairs]
            n = upsert_ignore(c, r.table, r.frame(values), r.key)
            c.execute("INSERT INTO ops.sink_batches VALUES (?, ?, ?, ?, now())",
                      [uuid.uuid4().hex, topic, len(values), n])
            done.append((topic, r.table, len(values), n))
        if bad:
            upsert_ignore(c, "stream.deadletter", deadletter_frame(bad))
        return done

    for topic, table, n_values, n_new in transaction(con, work):
        stats.messages[topic] = stats.messages.get(topic, 0) + n_values
        stats.new_rows[table] = stats.new_rows.get(table, 0) + n_new
    stats.undecodable += len(bad)


class StoreUnavailable(RuntimeError):
    """Not one message but the store failed (every message of the batch failed alone too): retry later."""


def write_batch(con, msgs, table_routes: dict[str, Route], stats: SinkStats) -> None:
    """Decode, insert (ignoring known keys) and record one polled batch, in one store transaction.

    A message the store refuses (a value its column cannot hold, say) must not stop the sink: when
    the batch fails, each message is stored on its own and the ones that still fail are
    dead-lettered with the store's error. If every one fails, the store itself is the problem:
    StoreUnavailable, nothing dead-lettered, the caller retries the batch.
    """
    by_topic, bad = _decode(msgs, table_routes)
    try:
        _store(con, by_topic, bad, table_routes, stats)
    except Exception as batch_error:  # noqa: BLE001
        singles = [(t, pair) for t, pairs in by_topic.items() for pair in pairs]
        failed = []
        for topic, (m, value) in singles:
            try:
                _store(con, {topic: [(m, value)]}, [], table_routes, stats)
            except Exception as exc:  # noqa: BLE001
                failed.append(_letter(m, f"store refused a {topic} message: {exc.__class__.__name__}: {str(exc)[:300]}"))
        if singles and len(failed) == len(singles) and len(singles) > 1 or not singles:
            raise StoreUnavailable(f"the store refused the whole batch: {batch_error}") from batch_error
        try:
            _store(con, {}, bad + failed, table_routes, stats)
        except Exception as exc:  # noqa: BLE001
            raise StoreUnavailable(f"the store refused even the dead letters: {exc}") from exc
        log.warning("sink: %d of %d messages dead-lettered after the store refused them", len(failed), len(singles))
    stats.batches += 1


def _write_until_stored(con, msgs, table_routes, stats: SinkStats, stop: dict, noisy) -> None:
    """Write one batch, waiting out a store outage (with backoff) instead of exiting."""
    delay = 0.5
    stats.pending = len(msgs)
    while True:
        try:
            write_batch(con, msgs, table_routes, stats)
            stats.pending = 0
            return
        except StoreUnavailable as exc:
            stats.store_retries += 1
            noisy.warning("sink: store unavailable (%s); retrying", exc)
            if stop["now"]:
                return
            time.sleep(delay)
            delay = min(delay * 2, 10.0)


def run_sink(db_path: str | None = None, group_id: str = "osr-sink", max_batch: int = 5000,
             idle_exit_s: float | None = None, max_runtime_s: float | None = None, progress_every_s: float = 10.0,
             on_progress=None) -> SinkStats:
    """Consume until stopped (SIGTERM/SIGINT), idle for `idle_exit_s`, or past `max_runtime_s`."""
    from confluent_kafka import Consumer, KafkaException

    table_routes = routes()
    con = connect(db_path)
    migrate(con)
    consumer = Consumer(consumer_config(group_id, auto_commit=False))
    consumer.subscribe(list(table_routes))
    stats = SinkStats()
    noisy = RateLimitedLog(log, every_s=10.0)
    stop = {"now": False}

    def _stop(signum, frame):
        stop["now"] = True

    old = {s: signal.signal(s, _stop) for s in (signal.SIGTERM, signal.SIGINT)}
    started = last_msg = last_report = time.monotonic()
    try:
        while not stop["now"]:
            msgs = consumer.consume(num_messages=max_batch, timeout=0.5)
            now = time.monotonic()
            good = []
            for m in msgs:
                if m.error():
                    if m.error().fatal():
                        raise KafkaException(m.error())
                    noisy.warning("sink: consumer error: %s", m.error())
                else:
                    good.append(m)
            if good:
                _write_until_stored(con, good, table_routes, stats, stop, noisy)
                if stop["now"] and stats.pending:
                    break  # not stored: do not commit; the next sink replays these
                try:
                    consumer.commit(asynchronous=False)  # only after the store commit
                except KafkaException as exc:
                    # e.g. the broker is away: the rows are stored; a replay after a restart is harmless
                    noisy.warning("sink: offset commit failed (%s); will commit with the next batch", exc)
                last_msg = now
            if on_progress and now - last_report >= progress_every_s:
                on_progress(stats)
                last_report = now
            if idle_exit_s is not None and now - last_msg >= idle_exit_s:
                break
            if max_runtime_s is not None and now - started >= max_runtime_s:
                break
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        consumer.close()
        con.close()
    return stats
