"""Create the stream topics up front, and wait until the broker's metadata shows them.

Why wait: a confluent-kafka consumer that subscribes to a topic before it exists gets
UNKNOWN_TOPIC_OR_PART and does not look again for 300 s (topic.metadata.refresh.interval.ms),
and tansu auto-creates missing topics with 4 partitions whatever we want. So every topic
is created explicitly, with OSR_TOPIC_PARTITIONS partitions, before any worker runs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from pipelines import config
from pipelines.contracts import TOPICS
from pipelines.ops.services.processes import ServiceError, port_open, split_host_port

#: librdkafka's own log lines go here (quiet unless logging is configured) instead of flooding stderr.
_LOG = logging.getLogger("pipelines.ops.services.kafka")


class TopicMismatch(ServiceError):
    """A topic exists with another partition count than the one asked for (Faust would refuse to start)."""


def admin(bootstrap: str | None = None) -> AdminClient:
    """An AdminClient for `bootstrap` (default OSR_KAFKA_BOOTSTRAP); fails at once if nothing listens there."""
    bootstrap = bootstrap or config.get("OSR_KAFKA_BOOTSTRAP")
    host, port = split_host_port(bootstrap)
    if not port_open(host, port):
        raise ServiceError(f"no broker listens at {bootstrap} (start one with `osr services up`, or set OSR_KAFKA_BOOTSTRAP)")
    return AdminClient({"bootstrap.servers": bootstrap, "logger": _LOG})


def list_topics(bootstrap: str | None = None, timeout: float = 10.0) -> dict[str, int]:
    """{topic: partition count} of every non-internal topic on the broker."""
    md = admin(bootstrap).list_topics(timeout=timeout)
    return {name: len(t.partitions) for name, t in sorted(md.topics.items())
            if not name.startswith("__") and t.error is None}


def create_topics(
    names: Iterable[str] | None = None,
    partitions: int | None = None,
    bootstrap: str | None = None,
    timeout: float = 30.0,
    include_defaults: bool = True,
) -> dict[str, int]:
    """Create every topic of TOPICS (unless include_defaults=False) plus `names`; wait until all are listed.

    Idempotent: existing topics with the right partition count are fine; one with another
    count raises TopicMismatch (delete it, or change OSR_TOPIC_PARTITIONS). Replication factor
    OSR_TOPIC_REPLICATION (1 locally).
    Returns {topic: partitions} for the topics asked for, read back from broker metadata.
    """
    wanted = list(dict.fromkeys([*(TOPICS.all() if include_defaults else []), *(names or [])]))
    if not wanted:
        return {}
    count = int(partitions if partitions is not None else config.get("OSR_TOPIC_PARTITIONS"))
    replication = int(config.get("OSR_TOPIC_REPLICATION"))
    client = admin(bootstrap)
    futures = client.create_topics([NewTopic(t, num_partitions=count, replication_factor=replication) for t in wanted],
                                   operation_timeout=timeout, request_timeout=timeout)
    for name, future in futures.items():
        try:
            future.result()
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise ServiceError(f"could not create topic {name!r}: {exc.args[0].str()}") from exc
    return wait_for_topics(wanted, count, client, timeout)


def wait_for_topics(names: list[str], partitions: int, client: AdminClient | None = None,
                    timeout: float = 30.0) -> dict[str, int]:
    """Poll broker metadata until every topic is listed with `partitions` partitions, each with a leader."""
    client = client or admin()
    deadline = time.monotonic() + timeout
    missing: list[str] = list(names)
    while True:
        md = client.list_topics(timeout=max(1.0, min(10.0, deadline - time.monotonic())))
        found: dict[str, int] = {}
        missing = []
        for name in names:
            meta = md.topics.get(name)
            if meta is None or meta.error is not None or not meta.partitions:
                missing.append(name)
                continue
            if any(p.leader < 0 for p in meta.partitions.values()):
                missing.append(name)
                continue
            found[name] = len(meta.partitions)
        wrong = {n: c for n, c in found.items() if c != partitions}
        if wrong:
            raise TopicMismatch(
                f"topics exist with another partition count than {partitions}: {wrong}. Delete them "
                "(`osr topics delete NAME...`) or set OSR_TOPIC_PARTITIONS to match."
            )
        if not missing:
            return found
        if time.monotonic() > deadline:
            raise ServiceError(f"topics not visible in broker metadata after {timeout:.0f} s: {missing}")
        time.sleep(0.2)


def delete_topics(names: Iterable[str], bootstrap: str | None = None, timeout: float = 30.0) -> list[str]:
    """Delete the named topics (missing ones are ignored); wait until metadata no longer lists them."""
    names = list(dict.fromkeys(names))
    if not names:
        return []
    client = admin(bootstrap)
    deleted = []
    for name, future in client.delete_topics(names, operation_timeout=timeout, request_timeout=timeout).items():
        try:
            future.result()
            deleted.append(name)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.UNKNOWN_TOPIC_OR_PART:
                raise ServiceError(f"could not delete topic {name!r}: {exc.args[0].str()}") from exc
    deadline = time.monotonic() + timeout
    while True:
        listed = set(client.list_topics(timeout=10).topics)
        if not listed & set(names):
            return deleted
        if time.monotonic() > deadline:
            raise ServiceError(f"deleted topics still listed after {timeout:.0f} s: {sorted(listed & set(names))}")
        time.sleep(0.2)
