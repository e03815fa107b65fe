"""Topics and tables of the Faust app. Names come from pipelines.contracts.TOPICS (with the configured
prefix); each topic carries the message of the same name in pipelines.contracts.MESSAGES."""

from __future__ import annotations

from pipelines import config
from pipelines.contracts import TOPICS
from pipelines.online.snapshot import LiveSnapshot
from streams.app import app

PARTITIONS = int(config.get("OSR_TOPIC_PARTITIONS"))


def _topic(name: str, **kw):
    return app.topic(config.topic(name), partitions=PARTITIONS, **kw)


# Uploads arrive as raw bytes so malformed JSON reaches the filter agent (and the dead-letter topic)
# instead of failing inside Faust's deserializer.
sensor_raw = _topic(TOPICS.sensor_raw, key_serializer="raw", value_serializer="raw")
sensor_filtered = _topic(TOPICS.sensor_filtered, key_serializer="raw")
sensor_deadletter = _topic(TOPICS.sensor_deadletter, key_serializer="raw")
state_features = _topic(TOPICS.state_features, key_serializer="raw")
osr_scores = _topic(TOPICS.osr_scores, key_serializer="raw")
push_approved = _topic(TOPICS.push_approved, key_serializer="raw")
control_models = _topic(TOPICS.control_models, key_serializer="raw")

# Per-person Kalman states ({device_id: state}) and tuner states, keyed like the topics (user id).
kalman_states = app.Table("kalman_states", default=dict, partitions=PARTITIONS)
tuner_states = app.Table("tuner_states", default=dict, partitions=PARTITIONS)

#: The live model snapshot, re-checked every few seconds and on control-topic announcements.
live_snapshot = LiveSnapshot()
