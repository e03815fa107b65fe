"""The Kafka-compatible broker the platform talks to, chosen by OSR_BROKER.

kafka    — a local Apache Kafka 4 broker (pipelines.ops.services.kafka_local), the reference;
tansu    — a local tansu broker (pipelines.ops.services.tansu_local), light but with known bugs;
external — someone else's broker at OSR_KAFKA_BOOTSTRAP: we start and stop nothing, only check it answers.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from pipelines import config
from pipelines.ops.services import kafka_local, tansu_local
from pipelines.ops.services.kafka_local import answers
from pipelines.ops.services.processes import ServiceError, wait_until

KINDS = ("kafka", "tansu", "external")


def kind() -> str:
    value = config.get("OSR_BROKER").strip().lower()
    if value not in KINDS:
        raise ServiceError(f"OSR_BROKER={value!r}; expected one of {', '.join(KINDS)}")
    return value


def start(progress: Callable[[str], None] | None = None, timeout: float | None = None, fresh: bool = False) -> dict:
    """Start the configured local broker (or check the external one) and return once it answers."""
    k = kind()
    if k == "kafka":
        return {"broker": k, **kafka_local.start(progress, timeout, fresh)}
    if k == "tansu":
        return {"broker": k, **tansu_local.start(progress, timeout, fresh)}
    bootstrap = config.get("OSR_KAFKA_BOOTSTRAP")
    t0 = time.monotonic()
    wait_until(lambda: answers(bootstrap), f"external broker at {bootstrap}",
               float(timeout if timeout is not None else config.get("OSR_SERVICE_TIMEOUT")), progress=progress)
    return {"broker": k, "pid": None, "bootstrap": bootstrap, "ready_seconds": round(time.monotonic() - t0, 2)}


def stop(timeout: float = 30.0) -> str:
    k = kind()
    if k == "kafka":
        return kafka_local.stop(timeout)
    if k == "tansu":
        return tansu_local.stop(timeout)
    return "external broker: nothing to stop"


def status() -> dict:
    k = kind()
    if k == "kafka":
        return kafka_local.status()
    if k == "tansu":
        return tansu_local.status()
    bootstrap = config.get("OSR_KAFKA_BOOTSTRAP")
    up = answers(bootstrap)
    return {"service": "external broker", "state": "up" if up else "down", "pid": None, "bootstrap": bootstrap,
            "answering": up}
