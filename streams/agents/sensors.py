"""sensor.raw -> [filter] -> sensor.filtered -> [features] -> state.features; bad uploads -> sensor.deadletter."""

from __future__ import annotations

from pipelines.filtering.stage import filter_upload
from pipelines.online.features import state_features
from streams.app import app
from streams.topics import kalman_states, live_snapshot, sensor_deadletter, sensor_filtered, sensor_raw
from streams.topics import state_features as state_features_topic


@app.agent(sensor_raw)
async def filter_uploads(stream):
    """Validate each upload and run the per-device Kalman filter; a bad upload is dead-lettered with its reason."""
    async for event in stream.events():
        msg = event.message
        key = msg.key.decode("utf-8", "replace") if isinstance(msg.key, bytes) else str(msg.key)
        filtered, dead, states = filter_upload(event.value, kalman_states[key],
                                               f"{msg.topic}:{msg.partition}:{msg.offset}", key)
        if dead is not None:
            await sensor_deadletter.send(key=msg.key, value=dead)
            continue
        kalman_states[key] = states
        await sensor_filtered.send(key=filtered["user_id"].encode(), value=filtered)


@app.agent(sensor_filtered)
async def build_features(stream):
    """Turn a filtered upload into the state vector, using the person's destinations from the live snapshot."""
    async for filtered in stream:
        snap = live_snapshot.refresh()
        row = state_features(filtered, snap.users.get(filtered["user_id"]), snap.stores_xy)
        await state_features_topic.send(key=row["user_id"].encode(), value=row)
