"""Shared fixtures for integration tests: a real broker for the whole session.

`broker` starts the broker named by OSR_TEST_BROKER (kafka — the default, Apache Kafka 4 —
or tansu) on free ports, with OSR_HOME in a
temporary folder, pre-creates every topic of TOPICS, and yields the bootstrap
string. It reuses the developer's Kafka jar cache (OSR_KAFKA_LIBS, resolved before
OSR_HOME moves), so only the first run on a machine downloads jars. While it is active
the OSR_* variables point at the test broker and home, so code under test finds them
through pipelines.config.
"""

from __future__ import annotations

import os

import pytest

from pipelines import config as osr_config
from pipelines.ops.services import broker as broker_service
from pipelines.ops.services import topics
from pipelines.ops.services.processes import find_free_port

_ENV = ("OSR_HOME", "OSR_KAFKA_LIBS", "OSR_BROKER", "OSR_KAFKA_BOOTSTRAP", "OSR_KAFKA_CONTROLLER_PORT")


def pytest_configure(config):  # pytest hook: register the marker
    config.addinivalue_line("markers", "slow: takes a minute or more (e.g. a real Airflow start); deselect with -m 'not slow'")


def _test_ports() -> tuple[int, int]:
    """Free ports, never fixed ones: the broker-restart test stops the broker for a minute, and a fixed
    port would let another test session on this machine take it meanwhile."""
    return find_free_port(), find_free_port()


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory):
    kind = os.environ.get("OSR_TEST_BROKER", "kafka")
    if kind not in ("kafka", "tansu"):
        raise pytest.UsageError(f"OSR_TEST_BROKER={kind!r}; expected kafka or tansu")
    saved = {k: os.environ.get(k) for k in _ENV}
    libs = osr_config.get("OSR_KAFKA_LIBS")
    port, controller_port = _test_ports()
    os.environ.update({
        "OSR_HOME": str(tmp_path_factory.mktemp("osr-home")),
        "OSR_KAFKA_LIBS": libs,
        "OSR_BROKER": kind,
        "OSR_KAFKA_BOOTSTRAP": f"127.0.0.1:{port}",
        "OSR_KAFKA_CONTROLLER_PORT": str(controller_port),
    })
    try:
        info = broker_service.start(timeout=180)
        topics.create_topics()
        yield info["bootstrap"]
    finally:
        try:
            broker_service.stop()
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


@pytest.fixture(autouse=True, scope="module")
def _module_leaves_osr_env_as_found():
    """What a module's fixtures set in OSR_* is undone after the module, whatever they forgot to
    restore. Seen in CI: the live repartitioning test left OSR_STREAM_AGENTS=profiles behind, so the
    next module's worker ran only the profile agents and never read sensor.raw (its drain timed out
    with every upload still lagging). Session fixtures (the broker's variables) are set before this
    snapshot is taken, so they stay."""
    before = {k: v for k, v in os.environ.items() if k.startswith("OSR_")}
    yield
    for k in [k for k in os.environ if k.startswith("OSR_") and k not in before]:
        del os.environ[k]
    os.environ.update(before)
