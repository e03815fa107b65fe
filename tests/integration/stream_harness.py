"""A running stream for integration tests: its own topics (prefix) and app id on the session's broker,
a population loaded and a model published, and helpers to start, kill -9 and restart every process."""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field

from pipelines import config
from pipelines.contracts import TOPICS
from pipelines.ingest.lag import group_lag
from pipelines.ops import demo
from pipelines.ops.services import topics
from pipelines.ops.services.processes import find_free_port
from pipelines.reco import nightly
from pipelines.store.db import connect, migrate
from pipelines.store.population_loader import load_population
from pipelines.synthetic import population as P

_ENV = ("OSR_FAUST_APP_ID", "OSR_FAUST_WEB_PORT", "OSR_TOPIC_PREFIX", "OSR_PUSH_GATEWAY_ID", "OSR_STORE_CATALOG",
        "OSR_STORE_DATA", "OSR_SNAPSHOT_DIR")


@dataclass
class Stream:
    pop: P.Population
    app_id: str
    prefix: str
    workers: dict[int, int] = field(default_factory=dict)  # index -> pid
    events: list[tuple[float, str]] = field(default_factory=list)  # (monotonic time, what happened)

    def note(self, what: str) -> None:
        self.events.append((time.monotonic(), what))

    # --- processes --------------------------------------------------------------------------------
    def start_worker(self, index: int = 0, wait: bool = True) -> int:
        pid = demo.start_worker(index, web_port=find_free_port())
        self.workers[index] = pid
        if wait:
            demo.wait_worker_ready(pid, timeout=180, progress=lambda m: None, index=index)
        self.note(f"worker {index} up (pid {pid})")
        return pid

    def kill_worker(self, index: int = 0) -> None:
        pid = self.workers.pop(index)
        _kill9(pid)
        self.note(f"worker {index} killed -9 (pid {pid})")

    def start_sink(self) -> int:
        pid = demo.start_sink()
        self.note(f"sink up (pid {pid})")
        return pid

    def kill_sink(self) -> None:
        pid = demo.SINK.running_pid()
        _kill9(pid)
        self.note(f"sink killed -9 (pid {pid})")

    def start_gateway(self) -> int:
        pid = demo.start_gateway()
        self.note(f"gateway up (pid {pid})")
        return pid

    def kill_gateway(self) -> None:
        pid = demo.GATEWAY.running_pid()
        _kill9(pid)
        self.note(f"gateway killed -9 (pid {pid})")

    def stop_all(self) -> list[str]:
        out = [f"sink: {demo.SINK.stop(60)}", f"gateway: {demo.GATEWAY.stop(60)}"]
        for index in sorted(self.workers):
            out.append(f"worker {index}: {demo.worker_service(index).stop(60)}")
        self.workers.clear()
        return out

    # --- progress ---------------------------------------------------------------------------------
    def consumed(self, topic_name: str) -> int:
        """Messages of a topic (by its TOPICS attribute name, e.g. "sensor_raw") the Faust group has committed."""
        from confluent_kafka import Consumer, TopicPartition

        from pipelines.ingest.kafka_clients import consumer_config

        topic = config.topic(getattr(TOPICS, topic_name))
        c = Consumer(consumer_config(self.app_id))
        try:
            parts = [TopicPartition(topic, p) for p in c.list_topics(topic, timeout=10).topics[topic].partitions]
            return sum(max(tp.offset, 0) for tp in c.committed(parts, timeout=10))
        finally:
            c.close()

    def wait_consumed(self, topic_name: str, at_least: int, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while self.consumed(topic_name) < at_least:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{topic_name}: fewer than {at_least} consumed after {timeout} s")
            time.sleep(0.5)

    def drain(self, timeout: float = 600) -> dict:
        return demo.wait_drained(timeout, progress=lambda m: None)

    def lag(self) -> int:
        return sum(sum(v.values()) for v in (group_lag(g, ts) for g, ts in demo.stream_groups().items()))


def _kill9(pid: int | None) -> None:
    assert pid is not None, "process to kill is not running"
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        time.sleep(0.05)


@contextmanager
def running_stream(params: P.PopulationParams, *, rank: int = 16, iterations: int = 6):
    """Own prefix, app id, store and snapshots on the session broker; population + model ready; processes
    stopped at the end (so each test module reconciles only what it sent)."""
    saved = {k: os.environ.get(k) for k in _ENV}
    tag = uuid.uuid4().hex[:6]
    own = config.path("OSR_HOME") / f"stream-{tag}"
    os.environ.update({"OSR_FAUST_APP_ID": f"osr-test-{tag}", "OSR_TOPIC_PREFIX": f"t{tag}.",
                       "OSR_FAUST_WEB_PORT": str(find_free_port()), "OSR_PUSH_GATEWAY_ID": f"gw-{tag}",
                       "OSR_STORE_CATALOG": f"sqlite:{own}/store/catalog.sqlite", "OSR_STORE_DATA": f"{own}/store/data",
                       "OSR_SNAPSHOT_DIR": f"{own}/snapshots"})
    topics.create_topics()
    pop = P.generate(params)
    con = connect()
    migrate(con)
    load_population(con, pop)
    con.close()
    nightly.run_all(rank=rank, iterations=iterations)
    s = Stream(pop, os.environ["OSR_FAUST_APP_ID"], os.environ["OSR_TOPIC_PREFIX"])
    try:
        yield s
    finally:
        s.stop_all()
        for k, v in saved.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)


def produce_in_background(fn, *args, **kwargs) -> tuple[threading.Thread, dict]:
    """Run a producer function in a thread; the dict gets 'result' or 'error'."""
    box: dict = {}

    def run():
        try:
            box["result"] = fn(*args, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            box["error"] = exc

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, box


def topic(name: str) -> str:
    return config.topic(getattr(TOPICS, name))
