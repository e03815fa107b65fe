"""The fence against late changelog writes: which of two logged states of a person is older."""

from __future__ import annotations

import orjson

from pipelines.filtering.stage import empty_state
from pipelines.filtering.state_fence import is_late_write, offsets_of


def _state(**offsets) -> bytes:
    st = empty_state()
    st["offsets"] = {f"osr.sensor.raw:{k[1:]}": v for k, v in offsets.items()}
    st["dead"] = {"osr.sensor.raw:0:3": "a reason with \"offsets\":{ in it"}  # a look-alike after the map
    st["recent"] = [["u1:000007", ["d1:000007"], {"offsets": {"x": 1}}, None]]  # and a nested one before it
    return orjson.dumps(st)


def test_offsets_are_read_from_the_state_itself():
    assert offsets_of(_state(p0=17)) == {"osr.sensor.raw:0": 17}
    assert offsets_of(orjson.dumps(empty_state())) == {}
    assert offsets_of(None) is None and offsets_of(b"") is None


def test_a_state_behind_the_applied_one_is_a_late_write():
    assert is_late_write(_state(p0=20), _state(p0=10))


def test_newer_equal_or_first_states_are_applied():
    assert not is_late_write(_state(p0=10), _state(p0=20))
    assert not is_late_write(_state(p0=10), _state(p0=10))  # a tick's release at the same offset: last wins
    assert not is_late_write(None, _state(p0=10))
    assert not is_late_write(orjson.dumps(empty_state()), _state(p0=1))
    assert not is_late_write(_state(p0=10), None)  # a deletion


def test_behind_on_one_partition_but_ahead_on_another_is_not_ordered():
    assert not is_late_write(_state(p0=20, p1=5), _state(p0=10, p1=9))
