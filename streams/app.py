"""The Faust application: settings, topics and tables. Agents live in streams/agents/.

Run a worker with `faust -A streams.app worker -l info` (or `osr stream worker`).
Settings come from pipelines.config (OSR_* environment variables).
"""

from __future__ import annotations

import faust

from pipelines import config
from pipelines.snapshot import LiveSnapshot

T = config.TOPICS
PARTITIONS = int(config.get("OSR_TOPIC_PARTITIONS"))


def _broker_url() -> str:
    return ";".join(f"kafka://{h.strip()}" for h in config.get("OSR_KAFKA_BOOTSTRAP").split(","))


DATADIR = config.path("OSR_HOME") / "faust" / config.get("OSR_FAUST_APP_ID")
DATADIR.mkdir(parents=True, exist_ok=True)  # Faust refuses to start without it

app = faust.App(
    config.get("OSR_FAUST_APP_ID"),
    broker=_broker_url(),
    store="memory://",  # tables are rebuilt from their changelog topics on restart
    value_serializer="json",
    topic_partitions=PARTITIONS,
    # join a group in seconds, not ~23 s (see STACK-NOTES)
    broker_session_timeout=6.0,
    broker_heartbeat_interval=1.0,
    web_bind="127.0.0.1",  # the worker's web server listens on loopback only
    web_host="127.0.0.1",
    web_port=int(config.get("OSR_FAUST_WEB_PORT")),
    datadir=str(DATADIR),
)


def _topic(name: str, **kw):
    return app.topic(config.topic(name), partitions=PARTITIONS, **kw)


# Uploads arrive as raw bytes so malformed JSON reaches the filter agent (and the dead-letter topic)
# instead of failing inside Faust's deserializer.
sensor_raw = _topic(T.sensor_raw, key_serializer="raw", value_serializer="raw")
sensor_filtered = _topic(T.sensor_filtered, key_serializer="raw")
sensor_deadletter = _topic(T.sensor_deadletter, key_serializer="raw")
state_features = _topic(T.state_features, key_serializer="raw")
osr_scores = _topic(T.osr_scores, key_serializer="raw")
notifications = _topic(T.notifications, key_serializer="raw")
control_models = _topic(T.control_models, key_serializer="raw")

# Per-person Kalman states ({device_id: state}) and tuner states, keyed like the topics (user id).
kalman_states = app.Table("kalman_states", default=dict, partitions=PARTITIONS)
tuner_states = app.Table("tuner_states", default=dict, partitions=PARTITIONS)

#: The live model snapshot, re-checked every few seconds and on control-topic announcements.
live_snapshot = LiveSnapshot()

from streams.agents import control, scoring, sensors  # noqa: E402,F401  (registers the agents)
