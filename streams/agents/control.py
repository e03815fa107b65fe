"""control.models: a newly published snapshot makes EVERY worker reload at once.

Why not an agent: an agent's topic is shared by the consumer group, so an announcement would
reach only the worker that owns its partition (others noticed by polling the LIVE pointer).
Each worker instead runs this task: a consumer outside the group, assigned to every partition
of control.models from its end, reloading on each announcement.
"""

from __future__ import annotations

import asyncio
import logging

from pipelines import config
from pipelines.contracts import TOPICS
from pipelines import rate_limited_log
from pipelines.rate_limited_log import RateLimitedLog
from streams.app import app
from streams.topics import live_snapshot

log = logging.getLogger(__name__)
noisy = RateLimitedLog(log)


def handle_announcement(value: bytes | None) -> str | None:
    """Reload the live snapshot for one announcement; returns the model id now served."""
    snap = live_snapshot.refresh(force=True)
    log.info("control: announcement %r, serving %s", (value or b"")[:200], snap.model_id)
    return snap.model_id


@app.task
async def rate_limit_library_logs() -> None:
    """A broker outage must not fill the disk: repeated client warnings are logged once per 10 s
    (a task, so it runs after the worker has set up its log handlers)."""
    rate_limited_log.install()


@app.task
async def follow_model_announcements() -> None:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    topic = config.topic(TOPICS.control_models)
    while True:
        consumer = AIOKafkaConsumer(bootstrap_servers=config.get("OSR_KAFKA_BOOTSTRAP").split(","),
                                    group_id=None, enable_auto_commit=False,
                                    fetch_max_wait_ms=50)  # an announcement is one small record: no batching wait
        try:
            await consumer.start()
            parts = consumer.partitions_for_topic(topic)
            while not parts:
                await consumer._client.force_metadata_update()
                parts = consumer.partitions_for_topic(topic)
                if not parts:
                    await asyncio.sleep(1.0)
            tps = [TopicPartition(topic, p) for p in sorted(parts)]
            consumer.assign(tps)
            await consumer.seek_to_end(*tps)
            async for msg in consumer:
                try:
                    handle_announcement(msg.value)
                except Exception as exc:  # noqa: BLE001 - a bad snapshot must not stop the worker
                    noisy.error("control: could not reload after %r: %s", msg.value, exc)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - broker outage: wait and follow again
            noisy.warning("control: announcement follower lost the broker (%s); retrying", exc)
            await asyncio.sleep(2.0)
        finally:
            try:
                await consumer.stop()
            except Exception:  # noqa: BLE001
                pass
