"""Local services against the real thing: broker start/stop discipline, topics, a produce/consume
round trip, Dask, the CLI, and (marked slow) Airflow.

The broker is the session fixture `broker` (conftest.py; OSR_TEST_BROKER=kafka|tansu).
The test that stops it restarts it, so it can run in any order.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import time
import uuid

import psutil
import pytest
from confluent_kafka import Consumer, Producer

from pipelines import config
from pipelines.contracts import TOPICS
from pipelines.ops.services import airflow_local, dask_cluster, kafka_local, tansu_local, topics
from pipelines.ops.services import broker as broker_service
from pipelines.ops.commands import services as services_cli
from pipelines.ops.services.processes import Service, find_free_port, port_open, split_host_port


def _unique(prefix: str) -> str:
    return f"{prefix}.{uuid.uuid4().hex[:8]}"


def _run_cli(*argv: str) -> int:
    """The `osr` subcommands through register(), as the project's CLI will wire them."""
    parser = argparse.ArgumentParser(prog="osr")
    services_cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv))
    return args.func(args)


# --- topics ---------------------------------------------------------------------------------------

def test_every_project_topic_exists_with_configured_partitions(broker):
    listed = topics.list_topics(broker)
    wanted = int(config.get("OSR_TOPIC_PARTITIONS"))
    assert {t: listed.get(t) for t in TOPICS.all()} == {t: wanted for t in TOPICS.all()}


def test_create_topics_is_idempotent_and_waits_for_metadata(broker):
    name = _unique("test.partitions")
    assert topics.create_topics([name], partitions=3, include_defaults=False) == {name: 3}
    assert topics.create_topics([name], partitions=3, include_defaults=False) == {name: 3}
    assert topics.list_topics(broker)[name] == 3
    with pytest.raises(topics.TopicMismatch):
        topics.create_topics([name], partitions=5, include_defaults=False)
    assert topics.delete_topics([name]) == [name]
    assert name not in topics.list_topics(broker)


# --- a round trip through the broker --------------------------------------------------------------

def test_produce_then_consume_reads_exactly_the_messages(broker):
    topic = _unique("test.roundtrip")
    topics.create_topics([topic], include_defaults=False)
    sent = {f"message-{i}".encode() for i in range(1000)}
    producer = Producer({"bootstrap.servers": broker, "linger.ms": 5})
    for i, value in enumerate(sorted(sent)):
        producer.produce(topic, value=value, key=str(i % 37).encode())
    assert producer.flush(30) == 0

    consumer = Consumer({
        "bootstrap.servers": broker,
        "group.id": _unique("test-group"),
        "session.timeout.ms": 6000,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
    })
    consumer.subscribe([topic])
    received: list[bytes] = []
    deadline = time.monotonic() + 60
    try:
        while len(received) < len(sent) and time.monotonic() < deadline:
            for msg in consumer.consume(num_messages=500, timeout=1.0):
                assert msg.error() is None, msg.error()
                received.append(msg.value())
        # nothing beyond the 1,000 arrives
        extra = [m for m in consumer.consume(num_messages=10, timeout=2.0) if m.error() is None]
    finally:
        consumer.close()
    assert len(received) == len(sent)
    assert set(received) == sent
    assert extra == []


# --- status and the CLI ---------------------------------------------------------------------------

def test_status_reports_our_running_broker(broker):
    status = broker_service.status()
    assert status["state"] == "up"
    assert status["answering"] is True
    assert status["bootstrap"] == broker
    assert psutil.pid_exists(status["pid"])


def test_cli_status_topics_and_errors(broker, capsys, monkeypatch):
    assert _run_cli("services", "status", "--json") == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["state"] == "up" and rows[0]["bootstrap"] == broker

    name = _unique("test.cli")
    assert _run_cli("topics", "create", name, "--no-defaults", "--partitions", "2") == 0
    assert f"{name}\t2" in capsys.readouterr().out
    assert _run_cli("topics", "list") == 0
    out = capsys.readouterr().out
    assert f"{name}\t2" in out and TOPICS.all()[0] in out
    assert _run_cli("topics", "delete", name) == 0

    assert _run_cli("services", "up", "--only", "nonsense") == 2
    monkeypatch.setenv("OSR_KAFKA_BOOTSTRAP", f"127.0.0.1:{find_free_port()}")
    assert _run_cli("topics", "list") == 1
    assert "no broker listens" in capsys.readouterr().err


# --- pid-file discipline ----------------------------------------------------------------------------

@pytest.mark.parametrize("module", [kafka_local, tansu_local], ids=["kafka", "tansu"])
def test_stop_leaves_a_process_that_is_not_ours_alone(module, tmp_path, monkeypatch):
    monkeypatch.setenv("OSR_RUN_DIR", str(tmp_path))
    stranger = subprocess.Popen(["sleep", "60"])
    try:
        svc = module.service()
        started = psutil.Process(stranger.pid).create_time()
        for content in (f"{stranger.pid}\n", f"{stranger.pid} {started}\n"):  # plain pid, and pid + right start time
            svc.pid_file.write_text(content)
            outcome = module.stop(timeout=2)
            assert "not ours" in outcome
            assert stranger.poll() is None, "stop() signalled a process it did not start"
            assert not svc.pid_file.exists()
        assert module.status()["state"] == "down"
    finally:
        stranger.kill()
        stranger.wait()


def test_stop_cleans_up_children_left_in_our_group_by_a_dead_leader(tmp_path, monkeypatch):
    monkeypatch.setenv("OSR_HOME", str(tmp_path))
    svc = Service("orphans", ("osr-orphans-test",), child_signature=("sleep 77",))
    leader = svc.start(["/bin/sh", "-c", "sleep 77 & exit 0", "osr-orphans-test"])
    time.sleep(0.5)  # the shell exits, its `sleep` stays in the group
    children = [p.pid for p in psutil.process_iter() if _pgid(p.pid) == leader and p.pid != leader]
    assert children
    outcome = svc.stop(timeout=5)
    assert "leftover children" in outcome
    assert not [p for p in children if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
    assert not svc.pid_file.exists()


def test_stop_frees_the_port_and_restart_keeps_working(broker):
    kind = config.get("OSR_BROKER")
    svc = kafka_local.service() if kind == "kafka" else tansu_local.service()
    pid = svc.running_pid()
    assert pid is not None and svc.pid_file.exists()
    host, port = split_host_port(broker)
    kept = _unique("test.restart")
    topics.create_topics([kept], include_defaults=False)

    assert "stopped" in broker_service.stop()
    assert not svc.pid_file.exists()
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert not port_open(host, port)
    if kind == "kafka":
        assert not port_open("127.0.0.1", int(config.get("OSR_KAFKA_CONTROLLER_PORT")))
    assert broker_service.stop().startswith("not running")

    # restart on the same data (Apache Kafka: no re-format, topics survive; tansu: memory, starts empty)
    info = broker_service.start(timeout=180)
    assert info["already_running"] is False and info["bootstrap"] == broker
    listed = topics.list_topics(broker)
    assert (kept in listed) == (kind == "kafka")
    topics.create_topics()
    assert set(TOPICS.all()) <= set(topics.list_topics(broker))


# --- Dask -----------------------------------------------------------------------------------------

def test_dask_client_runs_on_a_local_cluster(monkeypatch):
    monkeypatch.setenv("OSR_DASK_SCHEDULER", "")
    with dask_cluster.dask_client(n_workers=2) as client:
        assert len(client.scheduler_info()["workers"]) == 2
        assert client.submit(sum, [1, 2, 3]).result() == 6


def test_dask_services_start_connect_and_stop(tmp_path, monkeypatch):
    monkeypatch.setenv("OSR_HOME", str(tmp_path))
    monkeypatch.setenv("OSR_DASK_PORT", str(find_free_port()))
    monkeypatch.setenv("OSR_DASK_WORKERS", "2")
    info = dask_cluster.start(timeout=120)
    try:
        monkeypatch.setenv("OSR_DASK_SCHEDULER", info["address"])
        with dask_cluster.dask_client() as client:
            assert sorted(client.gather(client.map(lambda x: x * x, range(4)))) == [0, 1, 4, 9]
        workers_group = [p.pid for p in psutil.process_iter() if _pgid(p.pid) == info["workers_pid"]]
        assert len(workers_group) >= 3  # the `dask worker` parent and its two worker processes
    finally:
        outcome = dask_cluster.stop()
    assert outcome.count("stopped") == 2, outcome
    assert not port_open("127.0.0.1", int(config.get("OSR_DASK_PORT")))
    assert not [p for p in workers_group if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


# --- Airflow (a real start takes 35-60 s on a busy 2-core machine) ---------------------------------

@pytest.mark.slow
def test_airflow_starts_healthy_and_stops_with_all_its_processes(tmp_path, monkeypatch):
    monkeypatch.setenv("OSR_HOME", str(tmp_path))
    monkeypatch.setenv("OSR_AIRFLOW_PORT", str(find_free_port()))
    info = airflow_local.start(timeout=240)
    try:
        status = airflow_local.status()
        assert status["state"] == "up" and status["healthy"] is True
        assert airflow_local.admin_password()
        group = [p.pid for p in psutil.process_iter() if _pgid(p.pid) == info["pid"]]
        assert len(group) >= 5  # the shell and the four components
        env = airflow_local.airflow_env()
        assert env["AIRFLOW_HOME"] == str(tmp_path / "airflow")
        assert env["PATH"].split(os.pathsep)[0] == str(airflow_local.venv_bin())
    finally:
        outcome = airflow_local.stop()
    assert outcome.startswith("stopped"), outcome
    assert not airflow_local.SERVICE.pid_file.exists()
    assert not port_open("127.0.0.1", airflow_local.port())
    assert not [p for p in group if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
