"""A local single-node Apache Kafka 4 broker (KRaft), installed from Maven Central and run as a plain JVM.

Why not a tarball or Docker: this machine reaches package registries only. Maven resolves
`org.apache.kafka:kafka_2.13` with its dependencies (infra/kafka/pom.xml); the jar folder
is the broker's classpath. Jars (OSR_KAFKA_LIBS) and broker data (OSR_KAFKA_HOME/data)
are kept apart so tests and benchmarks run throw-away brokers on the same jars.
"""

from __future__ import annotations

import base64
import fcntl
import logging
import re
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from string import Template

from pipelines import config
from pipelines.ingest.kafka_clients import broker_answers
from pipelines.ops.services.processes import Service, ServiceError, port_open, split_host_port, wait_until

INFRA_DIR = config.PROJECT_ROOT / "infra" / "kafka"
POM = INFRA_DIR / "pom.xml"
CONFIG_TEMPLATE = INFRA_DIR / "server.properties"
LOG4J_CONFIG = INFRA_DIR / "log4j2.properties"
VERSION_MARKER = ".osr-kafka-version"
LOCAL_HOSTS = {"127.0.0.1", "localhost"}


def kafka_version() -> str:
    """The Kafka version infra/kafka/pom.xml pins (the single place it is written)."""
    match = re.search(r"<kafka\.version>([^<]+)</kafka\.version>", POM.read_text())
    if not match:
        raise ServiceError(f"no <kafka.version> in {POM}")
    return match.group(1).strip()


def home() -> Path:
    return config.path("OSR_KAFKA_HOME")


def data_dir() -> Path:
    return home() / "data"


def config_file() -> Path:
    return home() / "server.properties"


def service() -> Service:
    """Our broker process: a java running kafka.Kafka with *this* OSR_KAFKA_HOME's config file."""
    return Service("kafka", ("java", "kafka.Kafka", str(config_file())))


def _java() -> str:
    java = shutil.which("java")
    if not java:
        raise ServiceError("java not found on PATH; Kafka 4 needs Java 17+ (apt-get install openjdk-17-jre-headless)")
    return java


def installed() -> bool:
    libs = config.path("OSR_KAFKA_LIBS")
    version = kafka_version()
    marker = libs / VERSION_MARKER
    return (
        marker.is_file()
        and marker.read_text().strip() == version
        and (libs / f"kafka_2.13-{version}.jar").is_file()
    )


def install(progress: Callable[[str], None] | None = None) -> dict:
    """Fetch the broker's jars into OSR_KAFKA_LIBS with Maven, once per version (a marker file records it).

    Downloads into a temporary folder next to the target and swaps it in, under a file
    lock, so a failed or concurrent install never leaves a half-filled classpath.
    Returns {"version", "libs", "skipped", "seconds"}.
    """
    libs = config.path("OSR_KAFKA_LIBS")
    version = kafka_version()
    t0 = time.monotonic()
    if installed():
        return {"version": version, "libs": str(libs), "skipped": True, "seconds": round(time.monotonic() - t0, 3)}
    mvn = shutil.which("mvn")
    if not mvn:
        raise ServiceError("mvn not found on PATH; it fetches the Kafka jars (apt-get install maven)")
    libs.parent.mkdir(parents=True, exist_ok=True)
    with open(libs.parent / ".osr-kafka-install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if installed():  # another process finished it while we waited for the lock
            return {"version": version, "libs": str(libs), "skipped": True, "seconds": round(time.monotonic() - t0, 3)}
        if progress:
            progress(f"Fetching Apache Kafka {version} jars from Maven Central into {libs} ...")
        staging = Path(tempfile.mkdtemp(prefix=".kafka-libs-", dir=libs.parent))
        cmd = [mvn, "-q", "-B", "-f", str(POM), "dependency:copy-dependencies", f"-DoutputDirectory={staging}"]
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0:
            shutil.rmtree(staging, ignore_errors=True)
            output = (result.stdout + result.stderr).strip()[-3000:]
            raise ServiceError(f"Maven could not fetch Kafka {version} (exit {result.returncode}):\n{output}")
        if not (staging / f"kafka_2.13-{version}.jar").is_file():
            shutil.rmtree(staging, ignore_errors=True)
            raise ServiceError(f"Maven finished but kafka_2.13-{version}.jar is not in {staging}")
        (staging / VERSION_MARKER).write_text(version + "\n")
        staging.chmod(0o755)
        if libs.exists():
            shutil.rmtree(libs)
        staging.rename(libs)
    return {"version": version, "libs": str(libs), "skipped": False, "seconds": round(time.monotonic() - t0, 3)}


def _addresses() -> tuple[int, int]:
    host, port = split_host_port(config.get("OSR_KAFKA_BOOTSTRAP"))
    if host not in LOCAL_HOSTS:
        raise ServiceError(
            f"OSR_KAFKA_BOOTSTRAP={config.get('OSR_KAFKA_BOOTSTRAP')} is not local; the local broker listens on "
            "127.0.0.1 only. Set OSR_BROKER=external to use a remote broker."
        )
    return port, int(config.get("OSR_KAFKA_CONTROLLER_PORT"))


def render_config() -> Path:
    """Write $OSR_KAFKA_HOME/server.properties from the infra/kafka template and the OSR_* settings."""
    port, controller_port = _addresses()
    text = Template(CONFIG_TEMPLATE.read_text()).substitute(
        port=port,
        controller_port=controller_port,
        data_dir=str(data_dir()),
        partitions=int(config.get("OSR_TOPIC_PARTITIONS")),
    )
    target = config_file()
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)
    return target


def _java_argv(main_class: str, *args: str) -> list[str]:
    libs = config.path("OSR_KAFKA_LIBS")
    return [
        _java(),
        *config.get("OSR_KAFKA_HEAP").split(),
        "-XX:+ExitOnOutOfMemoryError",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={LOG4J_CONFIG}",
        "-cp",
        f"{libs}/*",
        main_class,
        *args,
    ]


def format_storage() -> bool:
    """Format the KRaft log dir once (standalone controller quorum). Returns True if it formatted now.

    The controller address is written into the formatted metadata, so a data dir formatted
    for another controller port is refused with a clear message rather than started broken.
    """
    _, controller_port = _addresses()
    stamp = data_dir() / ".osr-formatted-for"
    wanted = f"controller=127.0.0.1:{controller_port}"
    if (data_dir() / "meta.properties").is_file():
        if stamp.is_file() and stamp.read_text().strip() != wanted:
            raise ServiceError(
                f"{data_dir()} was formatted for {stamp.read_text().strip()}, not {wanted}. "
                "Use the old OSR_KAFKA_CONTROLLER_PORT, or discard the broker data with `osr services up --fresh`."
            )
        return False
    cluster_id = "-"
    while cluster_id.startswith("-"):  # the storage tool's argument parser takes "-..." for an option
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    cmd = _java_argv(
        "kafka.tools.StorageTool", "format", "--config", str(config_file()),
        "--cluster-id", cluster_id, "--standalone", "--ignore-formatted",
    )
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise ServiceError(f"formatting {data_dir()} failed (exit {result.returncode}):\n{(result.stdout + result.stderr)[-3000:]}")
    stamp.write_text(wanted + "\n")
    (home() / "cluster.id").write_text(cluster_id + "\n")
    return True


#: True when a Kafka AdminClient gets cluster metadata naming at least one broker (one definition,
#: in pipelines.ingest.kafka_clients; kept under this name for the services code).
answers = broker_answers


def start(progress: Callable[[str], None] | None = None, timeout: float | None = None, fresh: bool = False) -> dict:
    """Install (if needed), format (once) and start the broker; return when an AdminClient gets metadata.

    `fresh` discards the broker's data first (only when it is not running).
    Returns {"pid", "bootstrap", "ready_seconds", "install", "formatted", "already_running"}.
    """
    say = progress or (lambda _msg: None)
    bootstrap = config.get("OSR_KAFKA_BOOTSTRAP")
    port, controller_port = _addresses()
    svc = service()
    timeout = float(timeout if timeout is not None else config.get("OSR_SERVICE_TIMEOUT"))
    if (pid := svc.running_pid()) is not None:
        wait_until(lambda: answers(bootstrap), f"Kafka at {bootstrap}", timeout, svc, pid, say)
        return {"pid": pid, "bootstrap": bootstrap, "ready_seconds": 0.0, "install": None, "formatted": False,
                "already_running": True}
    for p in (port, controller_port):
        if port_open("127.0.0.1", p):
            raise ServiceError(
                f"port {p} on 127.0.0.1 is taken by a process that is not our Kafka (no live pid file in "
                f"{svc.pid_file}); stop it, or choose other ports (OSR_KAFKA_BOOTSTRAP / OSR_KAFKA_CONTROLLER_PORT)"
            )
    if fresh and data_dir().exists():
        say(f"Discarding broker data in {data_dir()}")
        shutil.rmtree(data_dir())
    inst = install(say)
    render_config()
    formatted = format_storage()
    if formatted:
        say(f"Formatted KRaft storage in {data_dir()}")
    t0 = time.monotonic()
    pid = svc.start(_java_argv("kafka.Kafka", str(config_file())), cwd=home())
    say(f"Started Kafka {kafka_version()} (pid {pid}); log {svc.log_file}")
    wait_until(lambda: answers(bootstrap), f"Kafka at {bootstrap}", timeout, svc, pid, say)
    ready = time.monotonic() - t0
    say(f"Kafka is up at {bootstrap} after {ready:.1f} s")
    return {"pid": pid, "bootstrap": bootstrap, "ready_seconds": round(ready, 2), "install": inst,
            "formatted": formatted, "already_running": False}


def stop(timeout: float = 30.0) -> str:
    """Stop our broker (only the pid in our pid file, only if it is our java kafka.Kafka)."""
    return service().stop(timeout)


def broker_status(name: str, svc: Service, **extra) -> dict:
    """Status of a local broker process `svc` at OSR_KAFKA_BOOTSTRAP (shared by Kafka and tansu)."""
    pid = svc.running_pid()
    bootstrap = config.get("OSR_KAFKA_BOOTSTRAP")
    return {
        "service": name,
        "state": "up" if pid is not None else "down",
        "pid": pid,
        "bootstrap": bootstrap,
        "answering": bool(pid is not None and answers(bootstrap)),
        "log": str(svc.log_file),
        **extra,
    }


def status() -> dict:
    return broker_status("kafka", service(), version=kafka_version())
