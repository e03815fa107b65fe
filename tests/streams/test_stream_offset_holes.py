"""Records Faust committed past without delivering: the process agent finds them from its logged
watermark and reads them back before the batch (pipelines.ingest.offset_holes)."""

from __future__ import annotations

from agent_harness import run_batch, sent, upload_record
from test_stream_moments import moment

import streams.topics as topics
from pipelines.ingest import offset_holes
from pipelines.ingest.offset_holes import Record
from streams.agents import moments


def test_holes_are_the_offsets_between_the_watermark_and_the_batch():
    assert offset_holes.missing({3: 167}, [(3, 169), (3, 170)]) == {3: (168, 168)}
    assert offset_holes.missing({3: 167}, [(3, 168), (3, 170)]) == {3: (169, 169)}  # inside the batch
    assert offset_holes.missing({3: 167}, [(3, 150), (3, 168)]) == {}  # a redelivery, then the next one
    assert offset_holes.missing({}, [(3, 500)]) == {}  # no watermark yet (a partition never processed)
    assert offset_holes.advanced({3: 167, 1: 4}, [(3, 169), (3, 168)]) == {3: 169}


async def test_a_skipped_upload_is_read_back_and_fused_with_its_partner(outbox, changelog, live, uploads, people,
                                                                        monkeypatch, holes_read_back):
    user = people["known"]
    earlier = moment(uploads, user, 0)
    phone, watch = moment(uploads, user, 1)
    await run_batch([upload_record(u, k) for k, u in enumerate(earlier)], outbox, monkeypatch)  # offsets 0, 1
    p = upload_record(earlier[0], 0).partition
    assert moments.watermarks({p}) == {p: 1}

    skipped = upload_record(phone, 2)  # committed past by Faust, never delivered
    monkeypatch.setattr(moments.offset_holes, "fetch", lambda topic, holes, timeout=30.0: (
        holes_read_back.append(dict(holes)),
        [Record(skipped.partition, 2, skipped.key, skipped.value, phone["ts"][0])])[1])
    gaps = []

    class Consumer:  # Faust's consumer, as far as the read-back uses it
        async def _add_gap(self, tp, first, last):
            gaps.append((tp.topic, tp.partition, first, last))

    monkeypatch.setattr(moments, "_consumer", Consumer)
    await run_batch([upload_record(watch, 3)], outbox, monkeypatch)

    assert holes_read_back == [{p: (2, 2)}]
    assert gaps == [(moments.RAW, p, 2, 2)]  # else Faust's commit stops below the read-back offsets for good
    rows = [row for _k, row in sent(outbox["state_features"])]
    assert [r["device_id"] for r in rows][-1] == f"{user}-phone+{user}-watch"  # not the watch alone
    assert moments.watermarks({p}) == {p: 3}
    assert moments.load_state(topics.person_states.data[user])["offsets"] == {f"{moments.RAW}:{p}": 3}


async def test_a_record_keyed_like_a_watermark_is_dead_lettered_and_leaves_the_mark(outbox, changelog, live, uploads,
                                                                                    people, monkeypatch):
    user = people["known"]
    first = moment(uploads, user, 0)
    await run_batch([upload_record(u, k) for k, u in enumerate(first)], outbox, monkeypatch)
    p = upload_record(first[0], 0).partition
    hostile = upload_record(moment(uploads, user, 1)[0], 2, key=f"{moments.WATERMARK}{p}".encode(), partition=p)
    await run_batch([hostile], outbox, monkeypatch)
    [(_k, letter)] = sent(outbox["sensor_deadletter"])
    assert letter["source"] == hostile.source and "key" in letter["reason"]
    assert moments.watermarks({p}) == {p: 2}  # still a watermark (advanced past the hostile record)


def test_processed_offsets_faust_will_never_ack_are_those_below_the_pending_and_the_watermark():
    f = offset_holes.processed_but_unacked
    # the fresh-clone platform test: committed 129, the first delivery after the rebalance at 401,
    # everything to 400 processed before it
    assert f(129, 401, 400) == (129, 400)
    assert f(129, 401, 300) == (129, 300)  # above the watermark: a hole for `missing`, not for this
    assert f(129, 129, 400) is None  # the normal case: the acks start at the committed offset
    assert f(129, 130, 400) == (129, 129)  # harmless: Faust's _add_gap starts after the committed offset
    assert f(None, 401, 400) is None and f(129, 401, None) is None


async def test_offsets_processed_before_a_rebalance_are_marked_done_for_the_commit(outbox, changelog, live,
                                                                                 uploads, people, monkeypatch):
    """Without the mark, Faust's commit stays at the committed offset for good and the drain never ends."""
    from faust.types import TP

    user = people["known"]
    earlier = moment(uploads, user, 0)
    later = moment(uploads, user, 1)
    await run_batch([upload_record(u, k) for k, u in enumerate(earlier)], outbox, monkeypatch)  # offsets 0, 1
    p = upload_record(earlier[0], 0).partition
    gaps = []

    class Consumer:  # Faust's consumer after the rebalance: committed at 0, nothing acked in this generation
        _committed_offset = {TP(moments.RAW, p): 0}
        _acked: dict = {}

        async def _add_gap(self, tp, first, last):
            gaps.append((tp.partition, first, last))

    monkeypatch.setattr(moments, "_consumer", Consumer)
    await run_batch([upload_record(u, 2 + k) for k, u in enumerate(later)], outbox, monkeypatch)  # offsets 2, 3
    assert gaps == [(p, 0, 1)]
