"""Helpers of the agent tests (a module of its own, not conftest, so tests can import it by a unique name)."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from unittest.mock import AsyncMock


async def wait_until(predicate, timeout: float = 5.0, what: str = "condition", fail: bool = True) -> bool:
    """Poll `predicate` on the loop until it holds (agents run in their own tasks). On timeout: an
    AssertionError, or False with fail=False (to let the test's own assertions say what went wrong)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            if fail:
                raise AssertionError(f"timed out after {timeout}s waiting for {what}")
            return False
        await asyncio.sleep(0.01)
    return True


def on_the_wire(value):
    """What a consumer of the topic would receive: the app serialises values as JSON.
    Fails (TypeError / ValueError) on a value the codec could not send, e.g. a numpy scalar or NaN."""
    return json.loads(json.dumps(value, allow_nan=False))


def sent(mock: AsyncMock) -> list[tuple[object, object]]:
    """(key, value) of every `send` awaited on a patched topic."""
    return [(c.kwargs.get("key"), c.kwargs.get("value")) for c in mock.await_args_list]


# --- the process agent, one micro-batch at a time ---------------------------------------------------

@dataclass(frozen=True)
class Record:
    """One record as the process agent's consumer would hand it over: topic, partition and offset
    are what the agent and the filter stage see (a source is "topic:partition:offset")."""

    topic: str
    partition: int
    offset: int
    value: bytes
    key: bytes | None = None
    timestamp: float | None = None  # the record's time; None = the test clock when it is put

    @property
    def source(self) -> str:
        return f"{self.topic}:{self.partition}:{self.offset}"


def partition_of(user_id: str) -> int:
    """Where Kafka's default partitioner puts a person's records (the agent's tick bookkeeping and the
    changelog partition follow it)."""
    from pipelines.ingest.kafka_clients import partition_for_key
    from streams.topics import PARTITIONS

    return partition_for_key(user_id.encode(), PARTITIONS)


def upload_record(upload: dict | bytes, offset: int, *, user_id: str | None = None, partition: int | None = None,
                  key: bytes | None = None, timestamp: float | None = None) -> Record:
    """A sensor.raw record: a JSON upload (or raw bytes), keyed by its user, on that user's partition."""
    from streams.agents import moments

    raw = upload if isinstance(upload, bytes) else json.dumps(upload).encode()
    user_id = user_id or (upload["user_id"] if isinstance(upload, dict) else None)
    key = key if key is not None else user_id.encode()
    return Record(moments.RAW, partition_of(user_id) if partition is None else partition, offset, raw, key, timestamp)


def tick_record(partition: int, offset: int) -> Record:
    """A stream.ticks record, as the worker's `tick` timer sends one per owned partition."""
    from streams.agents import moments

    return Record(moments.TICKS, partition, offset, b"t", None)


async def _put(agent, rec: Record) -> None:
    """AgentTestWrapper.put, but with the record's own topic, partition and offset: the wrapper's put
    names every message "<internal>" (the agent's channel has two topics) and numbers offsets itself."""
    from faust.types import Message

    from streams.agents import moments

    # the record's time is the test clock's (a held moment's wait is measured in record time)
    message = Message(topic=rec.topic, partition=rec.partition, offset=rec.offset,
                      timestamp=moments.time.time() if rec.timestamp is None else rec.timestamp,
                      timestamp_type=0, headers=None, key=rec.key, value=rec.value, checksum=b"",
                      serialized_key_size=0, serialized_value_size=0,
                      generation_id=agent.app.consumer_generation_id)
    channel = agent.stream().channel
    await channel.put(await channel.decode(message))


PUBLISHED = ("state_features", "osr_scores", "tuner_decisions", "push_approved", "sensor_deadletter")


def _published(outbox) -> int:
    return sum(outbox[n].await_count for n in PUBLISHED)


async def run_batches(records: list[Record], size: int, outbox, monkeypatch) -> list:
    """Run the process agent on these records in micro-batches of exactly `size`, in one running agent;
    returns the chain's ChainOut per micro-batch.

    The batch size is set to `size` with a wait longer than any test, so Faust's take_events hands
    over exactly those records together, however fast or slow the machine; done means the chain ran
    once per batch and everything it produced was sent."""
    from streams.agents import moments

    assert records and len(records) % size == 0, "records must fill whole micro-batches"
    runs = []
    real_run = moments.chain.run

    def recording_run(*args, **kwargs):
        out = real_run(*args, **kwargs)
        runs.append(out)
        return out

    def produced() -> int:
        return sum(len(o.features) + len(o.scored) + len(o.decisions) + len(o.approved) + len(o.dead) for o in runs)

    n_batches = len(records) // size
    monkeypatch.setattr(moments, "BATCH", size)
    monkeypatch.setattr(moments, "WITHIN_S", 3600.0)
    monkeypatch.setattr(moments.chain, "run", recording_run)
    before = _published(outbox)
    try:
        async with moments.process.test_context() as agent:
            for rec in records:
                await _put(agent, rec)
            await wait_until(lambda: len(runs) >= n_batches and _published(outbox) - before == produced(),
                             timeout=15.0, what=f"{n_batches} micro-batch(es) of {size} records")
    finally:
        monkeypatch.setattr(moments.chain, "run", real_run)
    assert len(runs) == n_batches, f"expected {n_batches} micro-batch(es), the chain ran {len(runs)} times"
    return runs


async def run_batch(records: list[Record], outbox, monkeypatch):
    """Run the process agent on exactly these records as ONE micro-batch; returns the chain's ChainOut."""
    [out] = await run_batches(records, len(records), outbox, monkeypatch)
    return out
