"""Topics and tables of the Faust app. Names come from pipelines.contracts.TOPICS (with the configured
prefix); each topic carries the message of the same name in pipelines.contracts.MESSAGES."""

from __future__ import annotations

import logging

import faust

from pipelines import config
from pipelines.contracts import TOPICS
from pipelines.filtering.state_fence import is_late_write
from pipelines.online.snapshot import LiveSnapshot
from streams.app import app

PARTITIONS = int(config.get("OSR_TOPIC_PARTITIONS"))
log = logging.getLogger(__name__)


def _topic(name: str, **kw):
    return app.topic(config.topic(name), partitions=PARTITIONS, **kw)


# Uploads arrive as raw bytes so malformed JSON reaches the process agent (and the dead-letter topic)
# instead of failing inside Faust's deserializer. Ticks share the agent's channel: both topics have
# the same partitions, so Faust assigns partition p of both to the same worker (co-partitioned).
sensor_raw = _topic(TOPICS.sensor_raw, key_serializer="raw", value_serializer="raw")
stream_ticks = _topic(TOPICS.stream_ticks, key_serializer="raw", value_serializer="raw")
uploads_and_ticks = app.topic(config.topic(TOPICS.sensor_raw), config.topic(TOPICS.stream_ticks),
                              key_serializer="raw", value_serializer="raw")
sensor_deadletter = _topic(TOPICS.sensor_deadletter, key_serializer="raw")
state_features = _topic(TOPICS.state_features, key_serializer="raw")
osr_scores = _topic(TOPICS.osr_scores, key_serializer="raw")
tuner_decisions = _topic(TOPICS.tuner_decisions, key_serializer="raw")
push_approved = _topic(TOPICS.push_approved, key_serializer="raw")
control_models = _topic(TOPICS.control_models, key_serializer="raw")

# Each person's whole stream state (filters, held moments, remembered moments, feature history,
# tuner memory: pipelines.filtering.stage.empty_state), keyed by user id like sensor.raw, written
# once per person per micro-batch.
# value_type=bytes: the values are the states' orjson bytes, stored and logged as they are (raw)
class PersonStates(faust.Table):
    """The person table, recovered without the late writes of a worker that had lost the partition
    (pipelines.filtering.state_fence: Faust applies a changelog in order and fences nothing)."""

    late_writes_skipped = 0

    def apply_changelog_batch(self, batch) -> None:
        super().apply_changelog_batch(e for e in batch if not self._late(e))

    def _late(self, event) -> bool:
        key = self._to_key(event.key)
        if is_late_write(self.data.get(key), event.value):
            PersonStates.late_writes_skipped += 1
            # debug only: a re-read from the changelog's start meets many older values behind the one in
            # memory (harmless either way); only the late writes after the newest would change the outcome
            log.debug("person_states: skipped %r at changelog %s:%s: its offsets are behind the state held",
                      key, event.message.partition, event.message.offset)
            return True
        return False


person_states = app.tables.add(PersonStates(app, name="person_states", default=None, beacon=app.tables.beacon,
                                            partitions=PARTITIONS, value_type=bytes))

#: The live model snapshot, re-checked every few seconds and on control-topic announcements.
live_snapshot = LiveSnapshot()
