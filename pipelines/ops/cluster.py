"""`osr cluster`: the platform as separate processes on one machine, the way a real cluster runs it.

A 3-broker Kafka KRaft cluster (replication 3, min ISR 2), PostgreSQL (the DuckLake catalog and, when
a PostgreSQL driver is installed, Airflow's metadata DB with the LocalExecutor), a Dask scheduler with
two worker processes, two Faust workers in one group, the push gateway and the sink. Nothing here is
cluster-only code: every process is started by the same service functions as the embedded default
and finds the others through the same OSR_* settings, which `env()` computes once (own OSR_HOME, own
ports from OSR_CLUSTER_PORT_BASE) and `up` records in <home>/cluster.json so `status`, `down`,
`osr demo --cluster` and `eval "$(osr cluster env)"` in another shell use the very same values.
"""

from __future__ import annotations

import importlib.util
import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psutil

from pipelines import config
from pipelines.ops.services import cluster_kafka, postgres_local
from pipelines.ops.services.processes import ServiceError

#: Set outside the OSR_* table (read only here): where the cluster lives and where its ports start.
HOME_VAR, PORT_BASE_VAR = "OSR_CLUSTER_HOME", "OSR_CLUSTER_PORT_BASE"
DEFAULT_PORT_BASE = 19000
PLAN_FILE = "cluster.json"
FAUST_WORKERS = 2
DASK_WORKERS = 2
LAKE_DB, AIRFLOW_DB = "osr_lake", "airflow"


@dataclass
class Plan:
    """Everything that fixes where the cluster's processes live and listen."""

    home: str
    kafka_ports: list[int]
    controller_ports: list[int]
    postgres_port: int
    dask_port: int
    airflow_port: int
    faust_web_port: int  # worker i listens on faust_web_port + i
    kafka_libs: str
    partitions: int
    kafka_heap: str = "-Xms128m -Xmx384m"
    airflow: bool = True  # start Airflow (needs a PostgreSQL driver in this environment)
    extra_env: dict = field(default_factory=dict)

    @classmethod
    def default(cls, home: str | None = None, port_base: int | None = None) -> "Plan":
        base = int(port_base if port_base is not None else os.environ.get(PORT_BASE_VAR, DEFAULT_PORT_BASE))
        home = home or os.environ.get(HOME_VAR) or str(config.path("OSR_HOME") / "cluster")
        return cls(home=str(Path(home).resolve()), kafka_ports=[base + 92, base + 93, base + 94],
                   controller_ports=[base + 192, base + 193, base + 194], postgres_port=base + 432,
                   dask_port=base + 786, airflow_port=base + 80, faust_web_port=base + 66,
                   kafka_libs=str(config.path("OSR_KAFKA_LIBS")), partitions=int(config.get("OSR_TOPIC_PARTITIONS")))

    @property
    def nodes(self) -> list[cluster_kafka.Node]:
        return cluster_kafka.nodes(Path(self.home), self.kafka_ports, self.controller_ports)

    @property
    def postgres(self) -> postgres_local.Postgres:
        return postgres_local.Postgres(Path(self.home) / "postgres", self.postgres_port)

    def save(self) -> Path:
        f = Path(self.home) / PLAN_FILE
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(json.dumps(asdict(self), indent=2) + "\n")
        return f

    @classmethod
    def load(cls, home: str | None = None) -> "Plan":
        candidates = [home] if home else [os.environ.get(HOME_VAR), str(config.path("OSR_HOME") / "cluster"),
                                          str(config.path("OSR_HOME"))]  # the last: after `eval "$(osr cluster env)"`
        found = [c for c in candidates if c and (Path(c) / PLAN_FILE).is_file()]
        home = found[0] if found else (home or os.environ.get(HOME_VAR) or str(config.path("OSR_HOME") / "cluster"))
        f = Path(home) / PLAN_FILE
        if not f.is_file():
            raise ServiceError(f"no cluster at {home} (no {PLAN_FILE}): start one with `osr cluster up`"
                               + (f" or set {HOME_VAR}" if HOME_VAR not in os.environ else ""))
        return cls(**json.loads(f.read_text()))


def postgres_drivers() -> tuple[str, str] | None:
    """(sync, async) SQLAlchemy driver names Airflow can use for PostgreSQL here, or None when either is missing.

    Airflow 3 opens its metadata DB twice: a sync engine (sql_alchemy_conn) and an async one
    (sql_alchemy_conn_async, derived as postgresql+asyncpg when unset), so a sync driver alone fails
    at `airflow db migrate` with "No module named 'asyncpg'"."""
    have = {m for m in ("psycopg2", "asyncpg", "psycopg") if importlib.util.find_spec(m) is not None}
    sync = "psycopg2" if "psycopg2" in have else ("psycopg" if "psycopg" in have else None)
    aio = "asyncpg" if "asyncpg" in have else ("psycopg" if "psycopg" in have else None)  # psycopg 3 is both
    return (sync, aio) if sync and aio else None


def postgres_driver() -> str | None:
    """The sync driver name when Airflow can run on PostgreSQL here (see postgres_drivers), else None."""
    drivers = postgres_drivers()
    return drivers[0] if drivers else None


def env(plan: Plan) -> dict[str, str]:
    """The OSR_* settings (and PGPASSFILE) every process of the cluster runs with."""
    pg = plan.postgres
    out = {
        "OSR_HOME": plan.home,
        HOME_VAR: plan.home,
        "OSR_BROKER": "external",  # the brokers are ours, but started here as a cluster, not by `osr services`
        "OSR_KAFKA_BOOTSTRAP": cluster_kafka.bootstrap(plan.nodes),
        "OSR_KAFKA_LIBS": plan.kafka_libs,
        "OSR_KAFKA_HEAP": plan.kafka_heap,
        "OSR_TOPIC_PARTITIONS": str(plan.partitions),
        "OSR_TOPIC_REPLICATION": "3",
        "OSR_STORE_CATALOG": "postgres:" + pg.conninfo(LAKE_DB),
        "OSR_STORE_DATA": str(Path(plan.home) / "store" / "data"),
        "OSR_SNAPSHOT_DIR": str(Path(plan.home) / "snapshots"),  # one folder both Faust workers read
        "OSR_DASK_SCHEDULER": f"tcp://127.0.0.1:{plan.dask_port}",
        "OSR_DASK_PORT": str(plan.dask_port),
        "OSR_DASK_WORKERS": str(DASK_WORKERS),
        "OSR_AIRFLOW_PORT": str(plan.airflow_port),
        "OSR_FAUST_WEB_PORT": str(plan.faust_web_port),
        **pg.env(),
        **plan.extra_env,
    }
    drivers = postgres_drivers()
    if plan.airflow and drivers:
        out["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = pg.sqlalchemy_url(AIRFLOW_DB, drivers[0])
        out["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC"] = pg.sqlalchemy_url(AIRFLOW_DB, drivers[1])
    return out


def use(plan: Plan) -> dict[str, str]:
    """Point this process (and every process it starts) at the cluster. Returns the values set."""
    values = env(plan)
    os.environ.update(values)
    return values


def _demo():  # the Faust worker, sink and push-gateway launchers live with the demo (one definition)
    from pipelines.ops import demo

    return demo


def faust_services() -> list:
    return [_demo().worker_service(i) for i in range(FAUST_WORKERS)]


def up(plan: Plan, progress: Callable[[str], None] | None = None, airflow: bool | None = None,
       timeout: float = 240.0) -> dict:
    """Start every part (each only if not running yet) and return when all answer."""
    from pipelines.ops.services import dask_cluster, topics
    from pipelines.store.db import connect, migrate

    say = progress or (lambda _m: None)
    if airflow is not None:
        plan.airflow = airflow
    plan.save()
    use(plan)
    t0 = time.monotonic()
    seconds: dict[str, float] = {}

    def step(name: str, fn):
        t = time.monotonic()
        result = fn()
        seconds[name] = round(time.monotonic() - t, 1)
        return result

    step("postgres", lambda: postgres_local.start(plan.postgres, (LAKE_DB, AIRFLOW_DB), say))
    step("kafka", lambda: cluster_kafka.start(plan.nodes, plan.partitions, say, timeout))
    created = step("topics", lambda: topics.create_topics(timeout=60))
    say(f"topics ready: {len(created)} with {plan.partitions} partitions x 3 replicas (min ISR 2)")

    def store():
        con = connect()
        try:
            return migrate(con)
        finally:
            con.close()

    applied = step("store", store)
    say(f"store: DuckLake catalog on PostgreSQL ({LAKE_DB}), data {os.environ['OSR_STORE_DATA']}; "
        f"migrations applied: {len(applied) if applied else 'none (up to date)'}")
    step("dask", lambda: dask_cluster.start(say, timeout))
    demo = _demo()

    def stream():
        if demo.SINK.running_pid() is None:
            demo.start_sink()
        if demo.GATEWAY.running_pid() is None:
            demo.start_gateway()
        started = {i: demo.start_worker(i) for i, svc in enumerate(faust_services()) if svc.running_pid() is None}
        for i, pid in started.items():
            demo.wait_worker_ready(pid, timeout=timeout, progress=say, index=i)
        say(f"{FAUST_WORKERS} Faust workers (group {config.get('OSR_FAUST_APP_ID')}), push gateway and sink running")

    step("stream", stream)
    if plan.airflow:
        driver = postgres_driver()
        if driver is None:
            say("Airflow NOT started: no PostgreSQL drivers (psycopg2 + asyncpg, or psycopg 3) in this environment "
                "(`infra/setup.sh` installs requirements.lock). `osr cluster up --no-airflow` skips it on purpose.")
            seconds["airflow"] = None
        else:
            from pipelines.ops.services import airflow_local

            step("airflow", lambda: airflow_local.start(say, timeout))
    seconds["total"] = round(time.monotonic() - t0, 1)
    return {"seconds": seconds, "memory": memory(plan)}


def _services(plan: Plan) -> list[tuple[str, object]]:
    """(name, Service) of every process the cluster starts (pid files under the cluster's OSR_HOME)."""
    from pipelines.ops.services import airflow_local, dask_cluster

    demo = _demo()
    return ([("postgres", plan.postgres.service())]
            + [(f"kafka-{n.node_id}", n.service()) for n in plan.nodes]
            + [("dask-scheduler", dask_cluster.scheduler_service()), ("dask-workers", dask_cluster.workers_service())]
            + [(svc.name, svc) for svc in faust_services()]
            + [("push-gateway", demo.GATEWAY), ("sink", demo.SINK), ("airflow", airflow_local.SERVICE)])


def memory(plan: Plan) -> dict:
    """RSS of every process the cluster started, with their children (Dask's nanny + workers, Airflow's
    components, PostgreSQL's backends), each process counted once. Bytes per service and the total."""
    use(plan)
    per, seen = {}, set()
    for name, svc in _services(plan):
        pid = svc.running_pid()
        if pid is None:
            continue
        total, count = 0, 0
        try:
            procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
        except psutil.Error:
            continue
        for p in procs:
            if p.pid in seen:
                continue
            try:
                total += p.memory_info().rss
                count += 1
                seen.add(p.pid)
            except psutil.Error:
                continue
        per[name] = {"rss_bytes": total, "processes": count}
    return {"services": per, "total_rss_bytes": sum(v["rss_bytes"] for v in per.values()),
            "processes": sum(v["processes"] for v in per.values())}


def down(plan: Plan, progress: Callable[[str], None] | None = None) -> dict[str, str]:
    """Stop everything the cluster started, producers and consumers first, Kafka and PostgreSQL last."""
    from pipelines.ops.services import airflow_local, dask_cluster

    say = progress or (lambda _m: None)
    use(plan)
    demo = _demo()
    out: dict[str, str] = {}
    from concurrent.futures import ThreadPoolExecutor

    first = {"airflow": airflow_local.stop, "push-gateway": lambda: demo.GATEWAY.stop(60),
             **{svc.name: (lambda svc=svc: svc.stop(60)) for svc in faust_services()},
             "sink": lambda: demo.SINK.stop(60), "dask": dask_cluster.stop}
    with ThreadPoolExecutor(len(first)) as pool:  # independent processes: stop them together
        out.update(zip(first, pool.map(lambda fn: fn(), first.values())))
    out.update(cluster_kafka.stop(plan.nodes))
    out["postgres"] = postgres_local.stop(plan.postgres)
    for k, v in out.items():
        say(f"{k}: {v}")
    return out


def discard(plan: Plan) -> None:
    """Remove everything the cluster holds (broker logs, PostgreSQL, the store, snapshots, logs); only when
    none of its processes runs. The next `up` starts from nothing."""
    import shutil

    use(plan)
    running = [name for name, svc in _services(plan) if svc.running_pid() is not None]
    if running:
        raise ServiceError(f"the cluster is running ({', '.join(running)}); `osr cluster down` first")
    shutil.rmtree(plan.home, ignore_errors=True)


def airflow_running_config(pid: int) -> dict:
    """Executor and metadata DB as the running Airflow scheduler sees them (its environment, read from
    /proc), not as this process would compute them: the proof that it runs on PostgreSQL. The URL
    holds no password (libpq reads PGPASSFILE); any `user:secret@` is masked anyway."""
    import re

    try:
        procs = psutil.Process(pid).children(recursive=True)
        sched = next((p for p in procs if "scheduler" in " ".join(p.cmdline()) and "airflow" in " ".join(p.cmdline())), None)
        found = sched.environ() if sched is not None else {}
    except psutil.Error:
        found = {}
    conn = found.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN") or ("sqlite (default)" if found else None)
    if conn:
        conn = re.sub(r"//([^:/@]+):[^@]*@", r"//\1:***@", conn)
    return {"executor": found.get("AIRFLOW__CORE__EXECUTOR"), "metadata_db": conn}


def status(plan: Plan) -> dict:
    """Up/down, pid and address of every part, and the memory they use now."""
    from pipelines.ops.services import airflow_local, dask_cluster

    use(plan)
    demo = _demo()
    rows = [postgres_local.status(plan.postgres), *cluster_kafka.status(plan.nodes), dask_cluster.status()]
    for i, svc in enumerate(faust_services()):
        pid = svc.running_pid()
        rows.append({"service": svc.name, "state": "up" if pid else "down", "pid": pid,
                     "address": f"127.0.0.1:{plan.faust_web_port + i}", "log": str(svc.log_file)})
    for svc in (demo.GATEWAY, demo.SINK):
        pid = svc.running_pid()
        rows.append({"service": svc.name, "state": "up" if pid else "down", "pid": pid, "address": "-",
                     "log": str(svc.log_file)})
    if plan.airflow:
        a = airflow_local.status()
        a.pop("admin_password", None)  # not printed by status (`osr services status` shows it when asked)
        a["address"] = a.pop("url", None)
        if postgres_driver() is None:
            a["state"] = "not started (no PostgreSQL drivers installed)"
        if a.get("pid"):
            a.update(airflow_running_config(a["pid"]))
        rows.append(a)
    return {"home": plan.home, "bootstrap": os.environ["OSR_KAFKA_BOOTSTRAP"], "services": rows,
            "memory": memory(plan)}
