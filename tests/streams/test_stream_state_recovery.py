"""Recovering the person table from its changelog skips a late write of a worker that had lost the
partition (streams.topics.PersonStates, pipelines.filtering.state_fence)."""

from __future__ import annotations

from types import SimpleNamespace

import orjson
import streams.topics as topics

from pipelines.filtering.stage import empty_state


def _state(offset: int, pending: list[str]) -> bytes:
    st = empty_state()
    st["offsets"] = {"osr.sensor.raw:1": offset}
    st["pending"] = {m: {"first_ts": 1.0, "uploads": {}} for m in pending}
    return orjson.dumps(st)


def _event(key: str, value: bytes | None, offset: int):
    message = SimpleNamespace(value=value, partition=1, offset=offset, key=key)
    return SimpleNamespace(key=key, value=value, message=message)


def test_a_late_older_write_does_not_win_the_recovery():
    table = topics.person_states
    newest = _state(20, ["u1:000003"])  # the new owner took the person's later upload: a moment waits
    log = [_event("u1", _state(10, []), 0), _event("u1", newest, 1),
           _event("u1", _state(12, []), 2),  # the old owner's write of a batch it finished after losing the partition
           _event("u2", _state(5, []), 3)]
    before = topics.PersonStates.late_writes_skipped
    table.apply_changelog_batch(log)
    assert table.data["u1"] == newest
    assert orjson.loads(table.data["u2"])["offsets"] == {"osr.sensor.raw:1": 5}
    assert topics.PersonStates.late_writes_skipped == before + 1


def test_writes_in_order_recover_the_last_one():
    table = topics.person_states
    last = _state(30, [])
    table.apply_changelog_batch([_event("u3", _state(10, ["u3:000001"]), 0), _event("u3", _state(30, ["u3:000002"]), 1),
                                 _event("u3", last, 2)])  # same offsets: a tick released the moment, last wins
    assert table.data["u3"] == last
