"""The embedded default, end to end: store, population, nightly batch, broker, Faust
worker, sink, a streamed day of sensor uploads, and a summary of what came out.

Each step prints what it is doing; services this run started are stopped at the end
(or on Ctrl-C), services that were already running are left alone.
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone

from pipelines import config
from pipelines.contracts import TOPICS
from pipelines.reco import nightly
from pipelines.synthetic import population as P
from pipelines.ingest.lag import group_lag
from pipelines.store.population_loader import load_population
from pipelines.ingest.producer import produce_population
from pipelines.ops.services import broker, topics
from pipelines.ops.services.processes import Service, ServiceError, port_open, wait_until
from pipelines.online.push_gateway import GROUP as GATEWAY_GROUP
from pipelines.store.db import REPORTS_SQL, connect, execute_write, migrate, run_sql_file

class FaustWorkerService(Service):
    """A Faust worker renames its process (setproctitle) to
    "[Faust:Worker] -<state>- <app id> -p <port> <datadir>", so it is ours when either the
    launch command line or that title (with this home's datadir) matches."""

    def matches(self, pid: int, started: float | None = None) -> bool:
        if super().matches(pid, started):
            return True
        titled = Service(self.name, ("[Faust:Worker]", str(config.path("OSR_HOME") / "faust")))
        return titled.matches(pid, started)


FAUST_WORKER = FaustWorkerService("faust-worker", ("faust", "streams.app", "worker"))
SINK = Service("sink", ("pipelines.ops.cli", "sink"))
SINK_GROUP = "osr-sink"
GATEWAY = Service("push-gateway", ("pipelines.ops.cli", "push-gateway"))


def say(msg: str) -> None:
    print(f"[osr {datetime.now():%H:%M:%S}] {msg}", flush=True)


def worker_service(index: int = 0) -> FaustWorkerService:
    """The index-th Faust worker of this home (0 is the demo's one); each has its own pid file and log."""
    return FAUST_WORKER if index == 0 else FaustWorkerService(f"faust-worker-{index}", FAUST_WORKER.signature)


def start_worker(index: int = 0, web_port: int | None = None) -> int:
    """A real Faust worker for streams.app, logging to OSR_LOG_DIR/faust-worker[-index].log.

    Several workers of one app form one consumer group and share the partitions; each needs its
    own web port (OSR_FAUST_WEB_PORT + index unless given)."""
    import os

    exe = str(config.PROJECT_ROOT / ".venv" / "bin" / "faust")
    if not (config.PROJECT_ROOT / ".venv" / "bin" / "faust").exists():
        exe = "faust"
    port = web_port or int(config.get("OSR_FAUST_WEB_PORT")) + index
    if port_open("127.0.0.1", port):
        raise ServiceError(f"port {port} (OSR_FAUST_WEB_PORT + {index}) is taken, by another Faust worker perhaps "
                           "(`pgrep -af Faust:Worker`); stop it or choose another port")
    argv = [exe, "-A", "streams.app", "worker", "-l", "info", "--web-host", "127.0.0.1", "--web-port", str(port)]
    env = {**os.environ, "OSR_FAUST_WEB_PORT": str(port)}
    return worker_service(index).start(argv, env=env, cwd=config.path("OSR_HOME", create=True))


def wait_worker_ready(pid: int, timeout: float = 120.0, progress=say, index: int = 0) -> None:
    """Block until the worker started as `pid` logs "Worker ready"; wait_until fails with the log's
    tail if it dies first (e.g. its web port is taken) rather than let the run wait on a stream
    nobody reads."""
    service = worker_service(index)
    log = service.log_file

    def ready() -> bool:
        # only what this start logged: after the last "=== ... starting:" line Service.start wrote
        text = log.read_bytes() if log.exists() else b""
        return b"Worker ready" in text[text.rfind(b"\n=== "):]

    wait_until(ready, f"Faust worker {index}", timeout, service, pid, progress)


def start_sink() -> int:
    return SINK.start([sys.executable, "-m", "pipelines.ops.cli", "sink"], cwd=config.PROJECT_ROOT)


def start_gateway() -> int:
    return GATEWAY.start([sys.executable, "-m", "pipelines.ops.cli", "push-gateway"], cwd=config.PROJECT_ROOT)


def stream_groups() -> dict[str, list[str]]:
    """Every consumer group of the stream and the topics it must drain."""
    t, q = TOPICS, config.topic
    return {
        config.get("OSR_FAUST_APP_ID"): [q(t.sensor_raw)],  # one agent: uploads in, every result out
        GATEWAY_GROUP: [q(t.push_approved)],
        SINK_GROUP: [q(t.state_features), q(t.osr_scores), q(t.tuner_decisions), q(t.notifications),
                     q(t.sensor_deadletter)],
    }


def wait_drained(timeout: float, progress=say, every: float = 5.0) -> dict:
    """Wait until every group has committed everything on its topics (two checks in a row, so a
    message in flight between two agents is not mistaken for the end) and no moment is held for a
    device that never reported (its partner upload was dead-lettered, say): a tick releases it after
    OSR_MOMENT_HOLD_S, and until then its uploads are consumed but not yet in any result."""
    deadline = time.monotonic() + timeout
    last_print, clean = 0.0, 0
    from confluent_kafka import KafkaException

    from pipelines.ingest.changelog import waiting_for_devices

    while True:
        try:
            lags = {g: group_lag(g, ts) for g, ts in stream_groups().items()}
        except KafkaException as exc:  # e.g. a group coordinator still loading after a broker restart
            lags = {"(broker not ready)": {str(exc)[:80]: 1}}
        pending = sum(sum(v.values()) for v in lags.values())
        # clean: 0 = lag seen, 1 = no lag, 2 = no lag and nothing held; no lag once more after that is
        # the end (a moment released as the held check read the changelog has its results out by then)
        held: list[str] = []
        if pending:
            clean = 0
        elif clean == 0:
            clean = 1
        elif clean == 1:
            try:
                held = waiting_for_devices()
            except (KafkaException, TimeoutError, RuntimeError) as exc:
                held = [f"(changelog unreadable: {str(exc)[:80]})"]
            clean = 1 if held else 2
        else:
            return lags
        now = time.monotonic()
        if now > deadline:
            raise TimeoutError(f"stream not drained after {timeout:.0f} s; lag per group/topic: {lags}; "
                               f"moments held for a device: {held[:10]}{_worker_log_tails()}")
        if now - last_print >= every:
            progress("waiting for the stream to drain: " + ", ".join(
                f"{topic} {n}" for g in lags.values() for topic, n in g.items() if n) if pending else
                f"{len(held)} moments held for a device" if held else "stream drained; confirming")
            last_print = now
        time.sleep(1.0)


def _worker_log_tails(lines: int = 25) -> str:
    """The last lines of each Faust worker log of this home: a drain that never ends is explained
    there (a stuck agent, a rebalance loop), and a CI run keeps nothing else."""
    out = []
    for log in sorted(config.path("OSR_LOG_DIR").glob("faust-worker*.log")):
        tail = log.read_text(errors="replace").splitlines()[-lines:]
        out.append(f"\n--- {log.name} (last {len(tail)} lines) ---\n" + "\n".join(t[:300] for t in tail))
    return "".join(out)


@dataclass
class DemoReport:
    run_id: str
    produced: dict = field(default_factory=dict)
    nightly: dict = field(default_factory=dict)
    counts: dict = field(default_factory=dict)
    top_notifications: list = field(default_factory=list)
    lift: dict = field(default_factory=dict)
    seconds: dict = field(default_factory=dict)
    figures: dict = field(default_factory=dict)  # readings/s, latency, stale share (ops.stream_figures)


def summarize(run_id: str) -> tuple[dict, list]:
    con = connect(read_only=True)
    try:
        counts = run_sql_file(con, "stream_reconciliation", REPORTS_SQL).iloc[0].to_dict()
        top = run_sql_file(con, "top_notifications", REPORTS_SQL).head(10).to_dict("records")
    finally:
        con.close()
    return {k: (int(v) if v is not None and float(v).is_integer() else v) for k, v in counts.items()}, top


def run_demo(params: P.PopulationParams, malformed_share: float = 0.02, drain_timeout: float = 600.0,
             keep_services: bool = False, via: str = "kafka", cluster: bool = False) -> DemoReport:
    """`cluster`: run on the cluster of `osr cluster up` (its OSR_* settings; its sink, push gateway and two
    Faust workers keep running; the preferences train on its Dask workers)."""
    if cluster:
        from pipelines.ops import cluster as multi_process

        multi_process.use(multi_process.Plan.load())
    run_id = f"demo-{datetime.now(timezone.utc):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:4]}"
    rep = DemoReport(run_id)
    t0 = time.monotonic()
    started_broker = False
    try:
        say(f"store: {config.get('OSR_STORE_CATALOG')} (data {config.get('OSR_STORE_DATA')})")
        con = connect()
        applied = migrate(con)
        say(f"migrations applied: {applied or 'none (up to date)'}")
        say(f"generating a population of {params.n_users} people, {params.n_items} items (seed {params.seed})")
        pop = P.generate(params)
        counts = load_population(con, pop, progress=lambda k: say(f"  backfilled features of {k} history uploads"))
        con.close()
        say("loaded: " + ", ".join(f"{t} +{n}" for t, n in counts.items()))
        rep.seconds["population"] = round(time.monotonic() - t0, 1)

        t = time.monotonic()
        say("nightly batch: gate inputs -> ALS -> propensity -> snapshot -> gate outputs -> publish")
        rep.nightly = nightly.run_all(**({"algorithm": "dask_als"} if cluster else {}))
        say(f"live model {rep.nightly['model_id']} (propensity AUC {rep.nightly['propensity']['auc']:.3f})")
        rep.seconds["nightly"] = round(time.monotonic() - t, 1)

        t = time.monotonic()
        status = broker.status()
        if status.get("state") != "up":
            say(f"starting the {broker.kind()} broker at {config.get('OSR_KAFKA_BOOTSTRAP')}")
            broker.start(progress=lambda m: say("  " + m))
            started_broker = broker.kind() != "external"
        topics.create_topics()
        say(f"topics ready ({int(config.get('OSR_TOPIC_PARTITIONS'))} partitions each)")
        if cluster:
            from pipelines.ops.cluster import faust_services

            missing = [s.name for s in (SINK, GATEWAY, *faust_services()) if s.running_pid() is None]
            if missing:
                raise ServiceError(f"cluster parts not running: {', '.join(missing)} (`osr cluster status`; "
                                   "`osr cluster up` starts them)")
            say(f"cluster: sink, push gateway and {len(faust_services())} Faust workers running "
                f"(logs in {config.get('OSR_LOG_DIR')})")
        else:
            start_sink()
            start_gateway()
            wait_worker_ready(start_worker(), progress=lambda m: say("  " + m))
            say(f"Faust worker and sink started (logs in {config.get('OSR_LOG_DIR')})")
        rep.seconds["services"] = round(time.monotonic() - t, 1)

        t = time.monotonic()
        say(f"streaming {params.stream_contexts_per_user} moments per person through sensor.raw "
            f"({malformed_share:.0%} deliberately malformed)")
        if via == "mqtt":  # devices -> Mosquitto -> MQTT bridge -> sensor.raw (pipelines.ingest.mqtt_bridge)
            from pipelines.ingest.mqtt_publish import publish_population
            from pipelines.ops.services.mosquitto_local import bridged, wait_bridge_handled

            with bridged(progress=lambda m: say("  " + m)):
                produced = publish_population(pop, malformed_share, progress_every=1000,
                                              on_progress=lambda r: say(f"  published {r.total} uploads over MQTT"))
                wait_bridge_handled(produced.total, drain_timeout, progress=lambda m: say("  " + m))
        else:
            produced = produce_population(pop, malformed_share,
                                          on_progress=lambda r: say(f"  sent {r.total} uploads"), progress_every=1000)
        rep.produced = {"valid": produced.valid, "malformed": produced.malformed, "total": produced.total}
        say(f"sent {produced.total} uploads; waiting for the worker and the sink")
        wait_drained(drain_timeout)
        rep.seconds["stream"] = round(time.monotonic() - t, 1)
        from pipelines.ops.stream_figures import stream_figures

        rep.figures = stream_figures()
    finally:
        if not cluster:  # the cluster's processes keep running (`osr cluster down` stops them)
            say("push gateway: " + GATEWAY.stop(60))
            say("sink: " + SINK.stop(60))
            say("Faust worker: " + FAUST_WORKER.stop(60))
        if started_broker and not keep_services:
            say("broker: " + broker.stop())
    rep.counts, rep.top_notifications = summarize(run_id)
    if rep.counts.get("notifications"):
        from pipelines.reco.lift import osr_lift

        con = connect(read_only=True)
        try:
            rep.lift = osr_lift(con, pop)
        finally:
            con.close()
    rep.seconds["total"] = round(time.monotonic() - t0, 1)
    con = connect()
    try:
        migrate(con)
        summary = json.dumps({"produced": rep.produced, "counts": rep.counts, "lift": rep.lift, "figures": rep.figures,
                              "model_id": rep.nightly.get("model_id")}, default=str)
        execute_write(con, "INSERT INTO ops.runs VALUES (?, 'demo', now() - to_seconds(?), now(), 'ok', ?)",
                      [run_id, rep.seconds["total"], summary])
    finally:
        con.close()
    return rep


def print_summary(rep: DemoReport) -> None:
    c = rep.counts
    print()
    print("=" * 72)
    print(f"OSR demo run {rep.run_id} finished in {rep.seconds.get('total')} s "
          f"(population {rep.seconds.get('population')} s, nightly {rep.seconds.get('nightly')} s, "
          f"stream {rep.seconds.get('stream')} s)")
    print(f"  uploads in            {rep.produced.get('total')} ({rep.produced.get('malformed')} malformed on purpose)")
    print(f"  dead-lettered         {c.get('deadlettered')}")
    print(f"  moments (fused)       {c.get('features')} from {c.get('uploads_fused')} uploads")
    print(f"  reconciliation        in {rep.produced.get('total')} = fused {c.get('uploads_fused')} "
          f"+ dead-lettered {c.get('deadlettered')}: "
          f"{'OK' if rep.produced.get('total') == c.get('uploads_fused', 0) + c.get('deadlettered', 0) else 'MISMATCH'}")
    print(f"  OSR scores (CRM)      {c.get('scores')} for {c.get('scored_events')} moments")
    f = rep.figures
    if f:
        print(f"  stream speed          {f.get('readings_per_s')} readings/s fused (first upload to last decision; "
              "the demo offers its uploads as fast as the broker takes them)")
        print(f"  push latency          produce -> notification p50 {f.get('p50_ms')} ms, p99 {f.get('p99_ms')} ms "
              f"over {f.get('notifications_timed')} pushes (record timestamps; includes the backlog's queueing)")
    decided = c.get("decisions") or 0
    print(f"  tuner decisions       {decided}, dropped as stale {c.get('dropped_stale')} "
          f"({(c.get('dropped_stale') or 0) / max(decided, 1):.1%}: the person's state had moved on before the push)")
    print(f"  notifications         {c.get('notifications')} to {c.get('notified_people')} people")
    print(f"  live model            {rep.nightly.get('model_id')}")
    if rep.lift:
        print(f"  OSR lift              {rep.lift['lift']:.2f}x: expected purchase rate of the pushes "
              f"{rep.lift['osr_purchase_rate']:.1%} vs {rep.lift['state_blind_purchase_rate']:.1%} for ALS top-1 "
              "at random moments (same number of pushes, generator's ground truth)")
    if rep.top_notifications:
        print("  top notifications (true state from the generator):")
        for n in rep.top_notifications:
            print(f"    {n['ts']:%H:%M} {n['user_id']} <- {n['item_id']} ({n['category']}) "
                  f"score {n['osr_score']:.3f} while {n['true_state']}")
    print("Where to look:")
    print(f"  store          {config.get('OSR_STORE_CATALOG')}   (try: osr query notifications_by_state)")
    print(f"  quality        {config.path('OSR_REPORTS_DIR') / 'data_docs' / 'index.html'}")
    print(f"  logs           {config.get('OSR_LOG_DIR')}")
    print(f"  snapshots      {config.get('OSR_SNAPSHOT_DIR')}")
    print("  Airflow UI     osr services up --only airflow  ->  http://127.0.0.1:"
          f"{config.get('OSR_AIRFLOW_PORT')} (password: osr services status)")
    print("=" * 72)
