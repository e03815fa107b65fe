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
    "OSR_SNAPSHOT_POLL_S": ("5", "seconds between a worker's checks of the LIVE pointer (announcements on control.models reload at once)"),
    "OSR_PUSH_GATEWAY_ID": ("push-gateway-0", "transactional name of the push gateway; a restarted gateway reuses it so the broker aborts its predecessor's open transaction"),
    "OSR_AIRFLOW_HOME": ("{OSR_HOME}/airflow", "AIRFLOW_HOME for the local Airflow"),
    "OSR_AIRFLOW_PORT": ("8080", "port of the local Airflow UI / API server"),
    "OSR_DASK_SCHEDULER": ("", "address of a Dask scheduler (tcp://host:8786); empty = start a LocalCluster"),
    "OSR_DATA_DIR": (str(PROJECT_ROOT.parent / "shared" / "data"), "folder of the real public datasets (MovieLens 100K, WS-DREAM), read in place, never copied"),
    "OSR_DASK_WORKERS": ("2", "workers of the LocalCluster when no scheduler address is given"),
    "OSR_DASK_PORT": ("8786", "port of the Dask scheduler `osr services up --only dask` starts on 127.0.0.1"),
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
