"""sensor.raw -> [filter] -> sensor.filtered -> [features] -> state.features; bad uploads -> sensor.deadletter."""

from __future__ import annotations

from pipelines.filtering.stage import filter_upload
from pipelines.online.features import features_stage
from streams.app import app
from streams.topics import kalman_states, live_snapshot, sensor_deadletter, sensor_filtered, sensor_raw
from streams.topics import state_features as state_features_topic


def _source(msg) -> str:
    return f"{msg.topic}:{msg.partition}:{msg.offset}"


@app.agent(sensor_raw)
async def filter_uploads(stream):
    """Validate each upload, check who sent it, run the per-device Kalman filter (once per upload,
    also when it is delivered again); a bad upload is dead-lettered with its reason."""
    async for event in stream.events():
        msg = event.message
        key = msg.key.decode("utf-8", "replace") if isinstance(msg.key, bytes) else str(msg.key)
        snap = live_snapshot.refresh()
        filtered, dead, states = filter_upload(event.value, kalman_states[key], _source(msg), key, snap.registered)
        if dead is not None:
            await sensor_deadletter.send(key=msg.key, value=dead)
            continue
        kalman_states[key] = states
        await sensor_filtered.send(key=msg.key, value=filtered)


@app.agent(sensor_filtered)
async def build_features(stream):
    """Turn a filtered upload into the state vector, using the person's destinations from the live snapshot."""
    async for event in stream.events():
        row, dead = features_stage(event.value, live_snapshot.refresh(), _source(event.message))
        if dead is not None:
            await sensor_deadletter.send(key=event.message.key, value=dead)
        else:
            await state_features_topic.send(key=event.message.key, value=row)
