"""One place for every setting: environment variables with local defaults.

Each setting is read when asked for (not at import), so tests and the CLI can
point a process somewhere else just by setting the environment.
"""

from __future__ import annotations

import os
from pathlib import Path

#: The project checkout (the folder holding pyproject.toml).
PROJECT_ROOT = Path(__file__).resolve().parent.parent

#: Every variable the platform reads, with its default and what it is for.
#: `osr config` prints this table with the values in force.
SETTINGS: dict[str, tuple[str, str]] = {
    "OSR_HOME": (str(PROJECT_ROOT / "var"), "runtime folder: data, logs, pid files, reports (ignored by git)"),
    "OSR_STORE_CATALOG": ("sqlite:{OSR_HOME}/store/catalog.sqlite", "catalog of the DuckLake store: sqlite:<file> on one machine, postgres:<libpq string> (e.g. postgres:dbname=osr host=db) on a cluster; every process attaches it, the sink writes while batch tasks and queries read and write"),
    "OSR_STORE_DATA": ("{OSR_HOME}/store/data", "folder of the DuckLake store's Parquet data files (shared storage on a cluster); fixed when the lake is created"),
    "OSR_STORE_INLINE_ROWS": ("10", "DuckLake data inlining: an insert of at most this many rows is kept in the catalog instead of a new Parquet file (0 = never; larger values slow the sink's key checks, see bench/store.py); `osr db compact` moves them to Parquet"),
    "OSR_SNAPSHOT_DIR": ("{OSR_HOME}/snapshots", "published model / reference snapshots the stream loads"),
    "OSR_REPORTS_DIR": ("{OSR_HOME}/reports", "data-quality reports (Great Expectations Data Docs) and run summaries"),
    "OSR_LOG_DIR": ("{OSR_HOME}/log", "service and worker logs"),
    "OSR_RUN_DIR": ("{OSR_HOME}/run", "pid files of the services this project started"),
    "OSR_BROKER": ("kafka", "which local broker `osr services up` starts: kafka (Apache Kafka 4, KRaft), tansu, or external (start nothing)"),
    "OSR_KAFKA_BOOTSTRAP": ("127.0.0.1:9092", "bootstrap servers of the Kafka-compatible broker"),
    "OSR_KAFKA_CONTROLLER_PORT": ("9093", "KRaft controller port of the local Apache Kafka broker"),
    "OSR_KAFKA_HOME": ("{OSR_HOME}/kafka", "where the local Apache Kafka jars and log dirs live"),
    "OSR_KAFKA_LIBS": ("{OSR_KAFKA_HOME}/libs", "Apache Kafka jars fetched by Maven (kept apart from broker data so tests reuse them)"),
    "OSR_KAFKA_HEAP": ("-Xms256m -Xmx512m", "JVM heap flags of the local Apache Kafka broker"),
    "OSR_SERVICE_TIMEOUT": ("90", "seconds `osr services up` waits for a service to answer before failing"),
    "OSR_TOPIC_PARTITIONS": ("4", "partitions of every stream topic (Faust's topic_partitions matches it)"),
    "OSR_TOPIC_REPLICATION": ("1", "replication factor of topics `osr topics create` makes (3 on a 3-broker cluster)"),
    "OSR_TOPIC_PREFIX": ("", "prefix added to every topic name (lets tests and runs share one broker)"),
    "OSR_FAUST_APP_ID": ("osr-stream", "Faust application id (consumer group and changelog topic prefix)"),
    "OSR_FAUST_WEB_PORT": ("6066", "Faust worker web port"),
    "OSR_STREAM_AGENTS": ("moments,control", "the agent modules (streams/agents/<name>.py) a Faust worker runs: the real-time path by default; `profiles` for the repartitioned profile stream, which runs as its own app (its own OSR_FAUST_APP_ID) so its tables never slow or stall the real-time path's recovery"),
    "OSR_STREAM_BATCH": ("500", "most uploads one micro-batch of the stream's process agent takes (validate -> fuse -> features -> score -> tune)"),
    "OSR_STREAM_WITHIN_S": ("0.01", "longest a micro-batch waits to fill before it is processed (adds at most this to the latency)"),
    "OSR_CONSUMER_FETCH_WAIT_MS": ("10", "the worker consumer's fetch.max.wait (Faust hard-codes 1500 ms, which adds up to 1.5 s per hop under load)"),
    "OSR_MOMENT_HOLD_S": ("2", "seconds a moment waits for the rest of a person's devices before it is fused with the devices that reported"),
    "OSR_STREAM_TRACE": ("0", "1: a worker logs the sensor.raw partitions and offsets of every micro-batch (a debugging aid: which worker took which record, in which order)"),
    "OSR_STREAM_LOG_S": ("10", "seconds between a worker's log lines on what its micro-batches cost (records per batch, chain, state ack, publish)"),
    "OSR_TICK_S": ("0.5", "seconds between a worker's ticks (they release moments held past OSR_MOMENT_HOLD_S on quiet partitions)"),
    "OSR_SNAPSHOT_POLL_S": ("5", "seconds between a worker's checks of the LIVE pointer (announcements on control.models reload at once)"),
    "OSR_TUNER_RULES_POLL_S": ("2", "seconds between a worker's reads of the tuner rules' version in the store (`osr tuner set` reaches running workers without a restart)"),
    "OSR_PUSH_GATEWAY_ID": ("push-gateway-0", "transactional name of the push gateway; a restarted gateway reuses it so the broker aborts its predecessor's open transaction"),
    "OSR_AIRFLOW_HOME": ("{OSR_HOME}/airflow", "AIRFLOW_HOME for the local Airflow"),
    "OSR_AIRFLOW_PORT": ("8080", "port of the local Airflow UI / API server"),
    "OSR_DASK_SCHEDULER": ("", "address of a Dask scheduler (tcp://host:8786); empty = start a LocalCluster"),
    "OSR_DATA_DIR": (str(PROJECT_ROOT.parent / "shared" / "data"), "folder of the real public datasets (MovieLens 100K, WS-DREAM), read in place, never copied"),
    "OSR_DASK_WORKERS": ("2", "workers of the LocalCluster when no scheduler address is given"),
    "OSR_DASK_PORT": ("8786", "port of the Dask scheduler `osr services up --only dask` starts on 127.0.0.1"),
    "OSR_MQTT_BIN": ("/usr/sbin/mosquitto", "the Mosquitto broker binary (Debian package mosquitto, installed by infra/setup.sh)"),
    "OSR_MQTT_HOME": ("{OSR_HOME}/mosquitto", "config file and persistence database of the local Mosquitto"),
    "OSR_MQTT_HOST": ("127.0.0.1", "host of the MQTT broker the bridge and the publisher connect to (the local Mosquitto listens on 127.0.0.1 only)"),
    "OSR_MQTT_PORT": ("1883", "port of the MQTT broker (the local Mosquitto's listener)"),
    "OSR_MQTT_TOPIC_MAP": ("*=sensor.raw", "device type -> Kafka topic (without OSR_TOPIC_PREFIX) for uploads on osr/<device_type>/<person>/<device>: comma list of type=topic, * = every other type; a type with no entry is dead-lettered"),
    "OSR_MQTT_CLIENT_ID": ("osr-mqtt-bridge", "fixed MQTT client id of the bridge: its persistent session (subscription + queued QoS-1 uploads) lives under this id, and a second bridge with the same id takes the session over"),
    "OSR_MQTT_SESSION_EXPIRY_S": ("604800", "seconds Mosquitto keeps the bridge's session (and queues uploads for it) while the bridge is away (MQTT 5 session expiry)"),
    "OSR_MQTT_INFLIGHT": ("1000", "QoS-1 uploads Mosquitto may have sent the bridge without an ack (Receive Maximum): the bridge acks only after Kafka confirmed, so this bounds throughput and what a crash redelivers"),
    "OSR_MQTT_MAX_QUEUED": ("200000", "uploads the local Mosquitto queues per offline session beyond those in flight; beyond it Mosquitto drops new uploads for that session (and logs it)"),
    "OSR_MQTT_AUTOSAVE_S": ("5", "seconds between the local Mosquitto's saves of its persistence database (a clean stop saves at once; a kill -9 of Mosquitto loses what came since the last save)"),
}


def get(name: str) -> str:
    """Value of one setting: the environment wins, else the default (with {OSR_HOME}-style references expanded)."""
    if name not in SETTINGS:
        raise KeyError(f"unknown setting {name!r}; known: {', '.join(sorted(SETTINGS))}")
    raw = os.environ.get(name)
    if raw is None:
        raw = SETTINGS[name][0]
    if "{" in raw:
        raw = raw.format(**{k: get(k) for k in SETTINGS if "{" + k + "}" in raw})
    return raw


def path(name: str, create: bool = False) -> Path:
    """A setting that names a path; `create` makes the folder (or the file's parent folder)."""
    p = Path(get(name))
    if create:
        (p if not p.suffix else p.parent).mkdir(parents=True, exist_ok=True)
    return p


def topic(name: str) -> str:
    """Full topic name with the configured prefix."""
    return get("OSR_TOPIC_PREFIX") + name
