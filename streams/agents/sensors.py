"""sensor.raw -> [filter] -> sensor.filtered -> [features] -> state.features; bad uploads -> sensor.deadletter."""

from __future__ import annotations

import logging

from pipelines.events import deadletter_record, parse_sensor_event
from pipelines.features import state_features
from pipelines.filtering.kalman import filter_event
from streams.app import app, kalman_states, live_snapshot, sensor_deadletter, sensor_filtered, sensor_raw, \
    state_features as state_features_topic

log = logging.getLogger(__name__)


def _key(user_id: str) -> bytes:
    return user_id.encode()


@app.agent(sensor_raw)
async def filter_uploads(stream):
    """Validate each upload and run the per-device Kalman filter; a bad upload is dead-lettered with its reason."""
    async for event in stream.events():
        msg = event.message
        source = f"{msg.topic}:{msg.partition}:{msg.offset}"
        parsed, reason = parse_sensor_event(event.value)
        if reason is None:
            try:
                states = dict(kalman_states[parsed["user_id"]])
                filtered, states[parsed["device_id"]] = filter_event(parsed, states.get(parsed["device_id"]))
            except Exception as exc:  # a reading the filter cannot take must not stop the worker
                log.exception("filter failed on %s", source)
                reason = f"filter error: {exc.__class__.__name__}: {exc}"
        if reason is not None:
            await sensor_deadletter.send(key=msg.key, value=deadletter_record(event.value, reason, source))
            continue
        kalman_states[parsed["user_id"]] = states
        await sensor_filtered.send(key=_key(parsed["user_id"]), value=filtered)


@app.agent(sensor_filtered)
async def build_features(stream):
    """Turn a filtered upload into the state vector, using the person's destinations from the live snapshot."""
    async for filtered in stream:
        snap = live_snapshot.refresh()
        row = state_features(filtered, snap.users.get(filtered["user_id"]), snap.stores_xy)
        await state_features_topic.send(key=_key(row["user_id"]), value=row)
