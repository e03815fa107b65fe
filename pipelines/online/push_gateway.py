"""The push gateway: approved pushes (push.approved) become notifications exactly once.

Why a stage of its own. A push is an external side effect, and the tuner runs in Faust at
least once: after a crash it may send an approved push again (its decision is idempotent by
event id, so the copy is identical, but it is still a copy). Faust's own exactly-once mode
did not hold across a kill -9 here (STACK-NOTES). So the last hop is a plain Kafka
consume-transform-produce loop with a transactional producer: each batch's notifications
and the input offsets commit in one transaction, and every (person, moment) already on
`notifications` is dropped. After a crash the set of delivered moments is rebuilt from
`notifications` itself (read_committed), which is exactly consistent with the committed
input offsets. A reader with `isolation.level=read_committed` therefore sees each
moment's push once.

Co-location: push.approved and notifications are keyed by person and have the same number
of partitions; a push is written to the partition it came from, so rebuilding the
delivered set of the assigned input partitions reads only those output partitions.
"""

from __future__ import annotations

import json
import logging
import signal
import time
from dataclasses import dataclass, field

from pipelines import config
from pipelines.contracts import TOPICS, Notification, problem
from pipelines.ingest.kafka_clients import consumer_config, producer_config
from pipelines.rate_limited_log import RateLimitedLog

log = logging.getLogger(__name__)

GROUP = "osr-push-gateway"
#: How far back the delivered set reaches: longer than any replay of the tuner can.
DEDUPE_WINDOW_S = 3 * 86400.0
#: A transaction's calls into librdkafka that have not returned after this long are taken as hung.
#: Seen here: after a one-minute broker outage, send_offsets_to_transaction / commit_transaction
#: (confluent-kafka 2.16.1) blocked for minutes past their own timeouts while the broker timed the
#: transaction out. A blocked C call cannot be interrupted, so the gateway re-executes itself (same
#: pid, same transactional name): the new producer fences the old one, nothing uncommitted was
#: delivered, and the batch is replayed and de-duplicated.
TXN_HANG_S = 45.0


@dataclass
class GatewayStats:
    received: int = 0
    delivered: int = 0
    duplicates: int = 0
    invalid: int = 0
    transactions: int = 0
    aborted: int = 0
    restarts: int = 0
    paused: list = field(default_factory=list)
    rebuilt: dict[int, int] = field(default_factory=dict)


def moment_key(note: dict) -> tuple[str, str]:
    """One push per (person, moment): the unit the guarantee is about."""
    return note["user_id"], note["event_id"]


def delivered_moments(partitions: list[int], since_s: float = DEDUPE_WINDOW_S, timeout: float = 30.0
                      ) -> dict[int, set[tuple[str, str]]]:
    """Every (person, moment) committed on `notifications` in these partitions (within the window)."""
    from confluent_kafka import Consumer, TopicPartition

    topic = config.topic(TOPICS.notifications)
    out: dict[int, set] = {p: set() for p in partitions}
    if not partitions:
        return out
    reader = Consumer(consumer_config(f"{GROUP}-rebuild", auto_commit=False, **{"isolation.level": "read_committed"}))
    try:
        since_ms = int((time.time() - since_s) * 1000)
        starts = reader.offsets_for_times([TopicPartition(topic, p, since_ms) for p in partitions], timeout=timeout)
        ends = {}
        assign = []
        for tp in starts:
            low, high = reader.get_watermark_offsets(TopicPartition(topic, tp.partition), timeout=timeout)
            start = tp.offset if tp.offset >= 0 else high
            if start < high:
                ends[tp.partition] = high
                assign.append(TopicPartition(topic, tp.partition, start))
        if not assign:
            return out
        reader.assign(assign)
        deadline = time.monotonic() + timeout
        while ends and time.monotonic() < deadline:
            for m in reader.consume(1000, timeout=0.5):
                if m.error():
                    continue
                try:
                    out[m.partition()].add(moment_key(json.loads(m.value())))
                except (TypeError, ValueError, KeyError):
                    pass  # nothing but the gateway writes here; a foreign message is no delivered push
                if m.offset() + 1 >= ends.get(m.partition(), 0):
                    ends.pop(m.partition(), None)
            # read_committed stops at the last stable offset, which may lie before the high watermark
            for p in list(ends):
                pos = reader.position([TopicPartition(topic, p)])[0].offset
                low, lso = reader.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout, cached=False)
                if pos >= 0 and pos >= min(ends[p], lso):
                    ends.pop(p)
        if ends:
            raise TimeoutError(f"could not read notifications partitions {sorted(ends)} to their end in {timeout} s")
        return out
    finally:
        reader.close()


class _Restart(Exception):
    """The producer is fenced or fatally broken (e.g. the broker timed out our transaction while it was
    away): start over in-process with a new producer of the same name and a new consumer."""


def run_gateway(instance: str | None = None, group_id: str = GROUP, max_batch: int = 500,
                idle_exit_s: float | None = None, max_runtime_s: float | None = None,
                progress_every_s: float = 10.0, on_progress=None) -> GatewayStats:
    """Consume push.approved until stopped (SIGTERM/SIGINT), idle for `idle_exit_s`, or past `max_runtime_s`.

    `instance` names the transactional producer; a restarted gateway must reuse its name, so
    that the broker aborts whatever transaction its killed predecessor left open. A broker outage
    is ridden out: a transaction that fails is aborted and its batch replayed; a producer the broker
    fenced meanwhile is replaced in-process (nothing was delivered that was not committed).
    """
    instance = instance or config.get("OSR_PUSH_GATEWAY_ID")
    stats = GatewayStats()
    noisy = RateLimitedLog(log, every_s=10.0)
    stop = {"now": False}
    old = {s: signal.signal(s, lambda *_: stop.__setitem__("now", True)) for s in (signal.SIGTERM, signal.SIGINT)}
    clock = {"started": time.monotonic(), "last_msg": time.monotonic(), "last_report": time.monotonic()}
    try:
        while not stop["now"]:
            try:
                _serve(instance, group_id, max_batch, idle_exit_s, max_runtime_s, progress_every_s, on_progress,
                       stats, noisy, stop, clock)
                break
            except _Restart as exc:
                stats.restarts += 1
                noisy.warning("push gateway: restarting its producer and consumer in-process (%s)", exc)
                time.sleep(2.0)
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    return stats


def _serve(instance, group_id, max_batch, idle_exit_s, max_runtime_s, progress_every_s, on_progress,
           stats: GatewayStats, noisy: RateLimitedLog, stop: dict, clock: dict) -> None:
    from confluent_kafka import Consumer, KafkaException, Producer

    source, sink, dead = (config.topic(TOPICS.push_approved), config.topic(TOPICS.notifications),
                          config.topic(TOPICS.sensor_deadletter))
    # 60 s: a transaction open when the broker goes away for a minute is not timed out (and so
    # fenced) on its return; a killed gateway's open transaction is aborted at once by its
    # successor's init_transactions (same name), not after this timeout.
    producer = Producer(producer_config(**{"transactional.id": f"osr-{instance}", "transaction.timeout.ms": 60000,
                                           "linger.ms": 2}))
    try:
        producer.init_transactions(60)  # fences and aborts a killed predecessor's open transaction
    except KafkaException as exc:
        raise _Restart(f"init_transactions: {exc}") from exc
    delivered: dict[int, set] = {}
    # read_uncommitted: push.approved is written by the (non-transactional) Faust workers, so
    # read_committed would filter nothing; but it makes librdkafka fetch the group's offsets with
    # require_stable, and after a one-minute broker outage Kafka 4.4 was seen keeping a finished
    # transaction's offsets "pending" for good (UNSTABLE_OFFSET_COMMIT on every partition, minutes
    # after the transaction coordinator had completed it): the gateway then never fetched again.
    # Without require_stable it starts from the last stable offsets (what the stuck transaction
    # delivered is in the delivered set, so it is not pushed twice) and its next transaction, same
    # producer id, clears the stuck offsets. A killed predecessor's open transaction is still
    # aborted before anything is read: init_transactions above runs first.
    consumer = Consumer(consumer_config(group_id, auto_commit=False, **{"isolation.level": "read_uncommitted"}))

    def on_assign(c, partitions):
        try:
            got = delivered_moments([tp.partition for tp in partitions])
        except Exception as exc:  # noqa: BLE001 - without the delivered set nothing may be delivered
            noisy.warning("push gateway: cannot rebuild the delivered set (%s); pausing those partitions", exc)
            c.pause(partitions)
            stats.paused = sorted({*stats.paused, *(tp.partition for tp in partitions)})
            return
        delivered.update(got)
        clock["last_msg"] = time.monotonic()  # idle time counts from the assignment, not from start-up
        for p, s_ in got.items():
            stats.rebuilt[p] = len(s_)
        log.info("push gateway: assigned %s; delivered moments known: %s",
                 [tp.partition for tp in partitions], {p: len(s_) for p, s_ in got.items()})

    def on_revoke(c, partitions):
        for tp in partitions:
            delivered.pop(tp.partition, None)

    consumer.subscribe([source], on_assign=on_assign, on_revoke=on_revoke)
    try:
        while not stop["now"]:
            if stats.paused:
                raise _Restart(f"partitions {stats.paused} paused without a delivered set")
            # wait for the first push only, then take what is already there: librdkafka's consume()
            # waits its whole timeout for a full batch, which put up to 0.2 s on every push's latency
            first = consumer.consume(num_messages=1, timeout=0.2)
            more = consumer.consume(num_messages=max_batch - 1, timeout=0) if first else []
            msgs = [m for m in (*first, *more) if not _error(m, noisy)]
            now = time.monotonic()
            if msgs:
                clock["last_msg"] = now
                try:
                    _deliver(msgs, producer, consumer, delivered, sink, dead, stats)
                except KafkaException as exc:
                    err = exc.args[0] if exc.args else None
                    stats.aborted += 1
                    if err is not None and err.fatal():
                        raise _Restart(f"fatal producer error: {err}") from exc
                    noisy.warning("push gateway: transaction failed (%s); aborting and replaying the batch", exc)
                    _abort_and_rewind(producer, consumer)
            if on_progress and now - clock["last_report"] >= progress_every_s:
                on_progress(stats)
                clock["last_report"] = now
            if idle_exit_s is not None and now - clock["last_msg"] >= idle_exit_s:
                break
            if max_runtime_s is not None and now - clock["started"] >= max_runtime_s:
                break
    finally:
        stats.paused = []
        try:
            consumer.close()
        except Exception:  # noqa: BLE001
            pass
        try:
            producer.flush(5)
        except Exception:  # noqa: BLE001 - a fenced producer refuses even this
            pass


def _error(m, noisy: RateLimitedLog) -> bool:
    if m.error() is None:
        return False
    if m.error().fatal():
        raise _Restart(f"fatal consumer error: {m.error()}")
    noisy.warning("push gateway: consumer error: %s", m.error())
    return True


def _reexec_if_hung(what: str) -> None:
    """Called by the watchdog when a transaction call hung: replace this process with a fresh gateway."""
    import os
    import sys

    log.error("push gateway: %s did not return within %.0f s (librdkafka hang); re-executing itself", what, TXN_HANG_S)
    for h in logging.getLogger().handlers:
        try:
            h.flush()
        except Exception:  # noqa: BLE001
            pass
    # the original command line (`python -m pipelines.ops.cli push-gateway ...`), not sys.argv, whose
    # first item is the module's file: the supervisor recognises its process by that command line
    os.execv(sys.executable, list(sys.orig_argv))


def _deliver(msgs, producer, consumer, delivered: dict[int, set], sink: str, dead: str, stats: GatewayStats) -> None:
    """One transaction: the batch's new pushes, dead letters for what is not a push, and the input offsets."""
    import threading

    watchdog = threading.Timer(TXN_HANG_S, _reexec_if_hung, args=("a transaction",))
    watchdog.daemon = True
    watchdog.start()
    try:
        _deliver_in_transaction(msgs, producer, consumer, delivered, sink, dead, stats)
    finally:
        watchdog.cancel()


def _deliver_in_transaction(msgs, producer, consumer, delivered: dict[int, set], sink: str, dead: str,
                            stats: GatewayStats) -> None:
    staged: dict[tuple[str, str], int] = {}
    producer.begin_transaction()
    for m in msgs:
        stats.received += 1
        try:
            note = json.loads(m.value())
            why = problem(Notification, note)
        except (TypeError, ValueError) as exc:
            note, why = None, f"not JSON: {exc}"
        if why is not None:
            stats.invalid += 1
            letter = {"reason": f"push gateway: not a push: {why}", "source": f"{m.topic()}:{m.partition()}:{m.offset()}",
                      "event_id": None, "payload": (m.value() or b"").decode("utf-8", "replace")[:10_000]}
            producer.produce(dead, key=m.key(), value=json.dumps(letter).encode())
            continue
        key = moment_key(note)
        seen = delivered.setdefault(m.partition(), set())
        if key in seen or key in staged:
            stats.duplicates += 1
            continue
        producer.produce(sink, key=m.key(), value=m.value(), partition=m.partition())
        staged[key] = m.partition()
    producer.send_offsets_to_transaction(consumer.position(consumer.assignment()),
                                         consumer.consumer_group_metadata(), 15)
    producer.commit_transaction(15)
    for key, p in staged.items():
        delivered[p].add(key)
    stats.delivered += len(staged)
    stats.transactions += 1


def _abort_and_rewind(producer, consumer) -> None:
    """After a failed transaction: abort it and go back to the committed input offsets (nothing of the
    batch was delivered), so the batch is processed again."""
    from confluent_kafka import TopicPartition

    try:
        producer.abort_transaction(15)
    except Exception as exc:  # noqa: BLE001 - a fenced or fatal producer cannot continue
        raise _Restart(f"cannot abort the transaction ({exc})") from exc
    assigned = consumer.assignment()
    try:
        committed = consumer.committed(assigned, timeout=15)
    except Exception as exc:  # noqa: BLE001 - the coordinator is away: start over once it is back
        raise _Restart(f"cannot read committed offsets ({exc})") from exc
    for tp in committed:
        consumer.seek(TopicPartition(tp.topic, tp.partition, tp.offset if tp.offset >= 0 else 0))
