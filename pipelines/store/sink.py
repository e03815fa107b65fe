"""The sink: the one process that writes stream results into DuckDB.

Reads state.features, osr.scores, notifications and sensor.deadletter in batches,
inserts them keyed by their ids (replays insert nothing twice), commits the DuckDB
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
from pipelines.contracts import (DeadLetter, FeatureRow, Notification, ScoredEvent, ScoredItem, fields,
                                 problem)
from pipelines.ingest.kafka_clients import consumer_config
from pipelines.store.db import connect, migrate, upsert_ignore

log = logging.getLogger(__name__)

# Table columns, derived from the message contracts (pipelines.contracts); the DDL in
# sql/migrations/001 is held to them by tests/unit/test_contracts.py.
FEATURE_COLUMNS = fields(FeatureRow)
#: One row per candidate: the key, the moment's fields (without the nested list), the item's fields.
SCORE_COLUMNS = ["score_id", *[f for f in fields(ScoredEvent) if f != "scores"], *fields(ScoredItem)]
NOTIFICATION_COLUMNS = fields(Notification)
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


def deadletter_frame(values: list[dict]) -> pd.DataFrame:
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    rows = [{**{f: v.get(f) for f in fields(DeadLetter)}, "deadletter_id": v["source"], "received_at": now}
            for v in values]
    return pd.DataFrame(rows, columns=DEADLETTER_COLUMNS)


@dataclass(frozen=True)
class Route:
    """Where one topic's messages land: the table, its key, the converter, and the message contract."""

    table: str
    key: list[str]
    frame: object
    contract: type

    def problem(self, value) -> str | None:
        """Why `value` cannot be stored in this route's table, or None."""
        return problem(self.contract, value)


def routes() -> dict[str, Route]:
    """Topic -> (table, primary key, converter, contract). Why here: one place says where each stream result lands."""
    t = TOPICS
    return {
        config.topic(t.state_features): Route("features.state_features", ["event_id"], features_frame, FeatureRow),
        config.topic(t.osr_scores): Route("stream.osr_scores", ["score_id"], scores_frame, ScoredEvent),
        config.topic(t.notifications): Route("stream.notifications", ["notification_id"], notifications_frame,
                                             Notification),
        config.topic(t.sensor_deadletter): Route("stream.deadletter", ["deadletter_id"], deadletter_frame,
                                                 DeadLetter),
    }


@dataclass
class SinkStats:
    messages: dict[str, int] = field(default_factory=dict)
    new_rows: dict[str, int] = field(default_factory=dict)
    undecodable: int = 0
    batches: int = 0


def write_batch(con, msgs, table_routes: dict[str, Route], stats: SinkStats) -> None:
    """Decode, insert (ignoring known keys) and record one polled batch, in one DuckDB transaction."""
    by_topic: dict[str, list[dict]] = {}
    bad = []
    for m in msgs:
        try:
            value = json.loads(m.value())
            problem = table_routes[m.topic()].problem(value)
        except (TypeError, ValueError) as exc:
            problem = f"not JSON: {exc}"
        if problem is None:
            by_topic.setdefault(m.topic(), []).append(value)
        else:
            bad.append({"source": f"{m.topic()}:{m.partition()}:{m.offset()}", "event_id": None,
                        "reason": f"sink could not decode a {m.topic()} message: {problem}",
                        "payload": (m.value() or b"").decode("utf-8", "replace")[:10_000]})
    con.execute("BEGIN")
    try:
        for topic, values in by_topic.items():
            r = table_routes[topic]
            n = upsert_ignore(con, r.table, r.frame(values), r.key)
            stats.messages[topic] = stats.messages.get(topic, 0) + len(values)
            stats.new_rows[r.table] = stats.new_rows.get(r.table, 0) + n
            con.execute("INSERT INTO ops.sink_batches VALUES (?, ?, ?, ?, now())",
                        [uuid.uuid4().hex, topic, len(values), n])
        if bad:
            upsert_ignore(con, "stream.deadletter", deadletter_frame(bad), ["deadletter_id"])
            stats.undecodable += len(bad)
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise
    stats.batches += 1


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
                    log.warning("consumer error: %s", m.error())
                else:
                    good.append(m)
            if good:
                write_batch(con, good, table_routes, stats)
                consumer.commit(asynchronous=False)  # only after the DuckDB commit
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
