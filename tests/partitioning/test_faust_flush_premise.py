"""The premise behind awaiting every table write in streams/agents/profiles.py (the lost-update cause of issue 10).

Faust commits a batch's offsets after `producer.flush()`, whose first step, `ProducerBuffer.flush()`, gives
up as soon as 0.1 s pass without a buffered table write being handed to the Kafka client. With a slow
hand-over (a CPU-starved worker) it returns while writes are still buffered, so the offsets can be committed
before the table writes exist; a kill -9 then loses those writes for good. If Faust ever makes flush wait
for the whole buffer, this test fails and the premise (and this note) can be revisited.
"""

from __future__ import annotations

import asyncio
import types

from faust.transport.producer import ProducerBuffer


def test_faust_flush_returns_while_table_writes_are_still_buffered():
    async def go():
        buf = ProducerBuffer()
        buf.app = types.SimpleNamespace(conf=types.SimpleNamespace(producer_threaded=False))
        handed_over = []

        async def slow_hand_over(fut):
            await asyncio.sleep(0.3)
            handed_over.append(fut)

        buf._send_pending = slow_hand_over
        await buf.start()
        try:
            for i in range(3):
                buf.put(i)
            await buf.flush()
            at_flush = (len(handed_over), buf.size)
            while buf.size or len(handed_over) < 3:
                await asyncio.sleep(0.05)
            return at_flush, len(handed_over)
        finally:
            await buf.stop()

    (handed_at_flush, still_buffered), handed_later = asyncio.run(go())
    assert handed_later == 3
    assert handed_at_flush < 3 and still_buffered > 0  # flush returned before every write left the buffer


def test_faust_commits_over_an_unprocessed_offset_at_the_head():
    """The premise of pipelines.partitioning.gaps: Faust's Consumer._new_offset lets a commit pass an offset
    that was never acked, when the next one was (its head-gap check is `> 1`), and checks nothing at all
    when the committed offset is unknown (as right after a revocation). If Faust fixes this, this fails."""
    from collections import defaultdict

    from intervaltree import IntervalTree

    from faust.transport.consumer import Consumer
    from faust.types import TP

    tp = TP("profiles.raw", 1)

    def new_offset(committed, acked):
        fake = types.SimpleNamespace(_acked=defaultdict(list, {tp: list(acked)}), _gap=defaultdict(IntervalTree),
                                     _committed_offset=defaultdict(lambda: None, {tp: committed}),
                                     _acked_index=defaultdict(set, {tp: set(acked)}))
        return Consumer._new_offset(fake, tp)

    assert new_offset(252, [254, 255]) is None  # a real gap at the head: no commit (right)
    assert new_offset(252, [253, 254]) == 255  # offset 252 was never acked, yet the commit passes it
    assert new_offset(None, [260, 261]) == 262  # committed unknown: 0..259 are passed unchecked
