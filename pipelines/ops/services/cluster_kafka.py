"""A 3-broker Apache Kafka KRaft cluster on 127.0.0.1: every node broker and controller, replication 3,
min ISR 2, so one node can die (kill -9) without losing an acknowledged record or stopping writes.

Why beside kafka_local rather than inside it: the single-node path stays as it is (its tests, its
`--standalone` quorum); this module reuses its jars (OSR_KAFKA_LIBS), its JVM command line and its
config template (infra/kafka/server.properties), and overrides only what a multi-node quorum needs.
Each node has its own folder <home>/kafka-<n> (config + data), pid file and log (service kafka-<n>).
"""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from string import Template

from pipelines.ops.services import kafka_local
from pipelines.ops.services.processes import Service, ServiceError, port_open, wait_until

#: Settings that differ from the single-node template: a static 3-voter quorum and 3 replicas everywhere.
REPLICATED = {
    "default.replication.factor": "3",
    "min.insync.replicas": "2",
    "offsets.topic.replication.factor": "3",
    "transaction.state.log.replication.factor": "3",
    "transaction.state.log.min.isr": "2",
    "share.coordinator.state.topic.replication.factor": "3",
    "share.coordinator.state.topic.min.isr": "2",
    "unclean.leader.election.enable": "false",  # never elect a replica that may miss acknowledged records
}


@dataclass(frozen=True)
class Node:
    node_id: int
    port: int             # clients (PLAINTEXT)
    controller_port: int  # KRaft quorum
    home: Path            # <cluster home>/kafka-<id>

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def config_file(self) -> Path:
        return self.home / "server.properties"

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    def service(self) -> Service:
        return Service(f"kafka-{self.node_id}", ("java", "kafka.Kafka", str(self.config_file)))


def nodes(home: Path, ports: list[int], controller_ports: list[int]) -> list[Node]:
    if len(ports) != len(controller_ports) or len(ports) < 3:
        raise ServiceError(f"a replicated cluster needs 3+ nodes with a client and a controller port each, got "
                           f"{ports} / {controller_ports}")
    return [Node(i + 1, p, c, home / f"kafka-{i + 1}") for i, (p, c) in enumerate(zip(ports, controller_ports))]


def bootstrap(ns: list[Node]) -> str:
    return ",".join(n.address for n in ns)


def render(node: Node, ns: list[Node], partitions: int) -> str:
    """The node's server.properties: the single-node template, with the quorum and replication overridden."""
    text = Template(kafka_local.CONFIG_TEMPLATE.read_text()).substitute(
        port=node.port, controller_port=node.controller_port, data_dir=str(node.data_dir), partitions=partitions)
    overrides = {**REPLICATED, "node.id": str(node.node_id),
                 "controller.quorum.voters": ",".join(f"{n.node_id}@127.0.0.1:{n.controller_port}" for n in ns)}
    out, seen = [], set()
    for line in text.splitlines():
        key = line.split("=", 1)[0].strip() if "=" in line and not line.lstrip().startswith("#") else None
        if key == "controller.quorum.bootstrap.servers":
            continue  # dynamic quorum of the standalone template; this cluster has static voters
        if key in overrides:
            line, _ = f"{key}={overrides[key]}", seen.add(key)
        out.append(line)
    out += ["", "# 3-node cluster (pipelines/ops/services/cluster_kafka.py)"]
    out += [f"{k}={v}" for k, v in overrides.items() if k not in seen]
    return "\n".join(out) + "\n"


def _format(node: Node, cluster_id: str) -> None:
    if (node.data_dir / "meta.properties").is_file():
        return
    cmd = kafka_local._java_argv("kafka.tools.StorageTool", "format", "--config", str(node.config_file),
                                 "--cluster-id", cluster_id, "--ignore-formatted")
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise ServiceError(f"formatting {node.data_dir} failed (exit {result.returncode}):\n"
                           f"{(result.stdout + result.stderr)[-3000:]}")


def _cluster_id(home: Path) -> str:
    f = home / "kafka-cluster.id"
    if f.is_file():
        return f.read_text().strip()
    cid = "-"
    while cid.startswith("-"):  # the storage tool takes "-..." for an option
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    home.mkdir(parents=True, exist_ok=True)
    f.write_text(cid + "\n")
    return cid


def brokers_registered(ns: list[Node], timeout: float = 3.0) -> int:
    """How many brokers the cluster's metadata lists (0 when nobody answers)."""
    import logging

    from confluent_kafka.admin import AdminClient

    if not any(port_open("127.0.0.1", n.port) for n in ns):
        return 0
    try:
        md = AdminClient({"bootstrap.servers": bootstrap(ns), "logger": logging.getLogger("pipelines.kafka")}
                         ).list_topics(timeout=timeout)
        return len(md.brokers)
    except Exception:  # noqa: BLE001 - not answering yet
        return 0


def start(ns: list[Node], partitions: int, progress: Callable[[str], None] | None = None,
          timeout: float = 180.0, start_only: list[int] | None = None) -> dict:
    """Install the jars (once), render and format every node (once), start those not running; return when the
    metadata lists every node. `start_only` restarts just those node ids (e.g. after a kill)."""
    say = progress or (lambda _m: None)
    home = ns[0].home.parent
    kafka_local.install(say)
    cid = _cluster_id(home)
    pids, t0 = {}, time.monotonic()
    for node in ns:
        if start_only is not None and node.node_id not in start_only:
            continue
        svc = node.service()
        if (pid := svc.running_pid()) is not None:
            pids[node.node_id] = pid
            continue
        for p in (node.port, node.controller_port):
            if port_open("127.0.0.1", p):
                raise ServiceError(f"port {p} on 127.0.0.1 (Kafka node {node.node_id}) is taken by a process that "
                                   "is not ours; stop it or choose another OSR_CLUSTER_PORT_BASE")
        node.home.mkdir(parents=True, exist_ok=True)
        node.config_file.write_text(render(node, ns, partitions))
        _format(node, cid)
        pids[node.node_id] = svc.start(kafka_local._java_argv("kafka.Kafka", str(node.config_file)), cwd=node.home)
        say(f"Started Kafka node {node.node_id} (pid {pids[node.node_id]}) at {node.address}; log {svc.log_file}")
    for node in ns:
        if node.node_id in pids:
            svc = node.service()
            wait_until(lambda n=node: port_open("127.0.0.1", n.port), f"Kafka node {node.node_id}", timeout, svc,
                       pids[node.node_id], say)
    wait_until(lambda: brokers_registered(ns) >= len(ns), f"{len(ns)} Kafka brokers at {bootstrap(ns)}", timeout,
               progress=say)
    ready = time.monotonic() - t0
    say(f"Kafka cluster of {len(ns)} brokers up at {bootstrap(ns)} after {ready:.1f} s")
    return {"pids": pids, "bootstrap": bootstrap(ns), "ready_seconds": round(ready, 2), "cluster_id": cid}


def kill(node: Node) -> int:
    """kill -9 one node (only if its pid file names our running broker); returns the pid killed."""
    pid = node.service().running_pid()
    if pid is None:
        raise ServiceError(f"Kafka node {node.node_id} is not running")
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while node.service().matches(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    return pid


def stop(ns: list[Node], timeout: float = 30.0) -> dict[str, str]:
    """Stop every node at once (SIGTERM, SIGKILL after `timeout`): stopped one after another, the last node
    loses its controller quorum and cannot finish a controlled shutdown."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(len(ns)) as pool:
        outcomes = list(pool.map(lambda n: n.service().stop(timeout), ns))
    return {f"kafka-{n.node_id}": o for n, o in zip(ns, outcomes)}


def status(ns: list[Node]) -> list[dict]:
    registered = brokers_registered(ns)
    return [{"service": f"kafka-{n.node_id}", "state": "up" if n.service().running_pid() else "down",
             "pid": n.service().running_pid(), "address": n.address, "log": str(n.service().log_file),
             "cluster_brokers": registered} for n in ns]
