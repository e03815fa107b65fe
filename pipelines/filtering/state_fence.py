"""Which of two logged states of one person is the newer: a fence Faust's tables do not have.

Why: a worker that lost a partition in a rebalance (kicked out of the group while a slow batch ran,
or still finishing one) can write a person's state to the changelog after the new owner's writes.
Faust applies the changelog in order on recovery, so that late, older state would win and the
next owner would have forgotten the uploads the newer state took (a moment waiting for its other
device would never be released, though its uploads' offsets were committed). A person's records
all come from one partition and every logged state is built on the one before, so the highest
sensor offset a state took (`offsets`, pipelines.filtering.stage) never goes down in a sequence of
legitimate writes: a value whose offsets are behind the one already applied is that late write.

Equal offsets (a tick released a moment, or the same batch was processed twice) are not ordered:
the last write wins, as before; either way its moments were published or are still held.
"""

from __future__ import annotations

import orjson

_MARK = b'"offsets":{'


def offsets_of(value: bytes | None) -> dict[str, int] | None:
    """The `offsets` map of a logged state (orjson bytes), read without parsing the whole state."""
    if not value:
        return None
    at = value.rfind(_MARK)
    if at >= 0:
        start = at + len(_MARK) - 1
        end = value.find(b"}", start)  # a flat map of "topic:partition" -> int: its first '}' closes it
        if end > start:
            try:
                found = orjson.loads(value[start:end + 1])
            except orjson.JSONDecodeError:
                found = None
            if isinstance(found, dict) and all(isinstance(v, int) for v in found.values()):
                return found
    try:
        state = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    return state.get("offsets") if isinstance(state, dict) else None


def is_late_write(current: bytes | None, incoming: bytes | None) -> bool:
    """True when `incoming` is older than `current`: behind it on some partition, ahead on none."""
    now, new = offsets_of(current), offsets_of(incoming)
    if not now or new is None:  # nothing applied yet, or a deletion / an unreadable value: apply it
        return False
    behind = any(new.get(tp, -1) < off for tp, off in now.items())
    ahead = any(off > now.get(tp, -1) for tp, off in new.items())
    return behind and not ahead
