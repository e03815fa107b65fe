"""Reading what the stream produced straight from the broker, the way a downstream system would."""

from __future__ import annotations

from pipelines.ops.stream_figures import read_records


def read_topic(topic: str, timeout: float = 30.0, isolation: str = "read_committed") -> list:
    """Every message of `topic` (decoded JSON), read with its own group from the beginning to the end."""
    return [v for _ts, v in read_records(topic, timeout, isolation)]


def read_moments(topic: str) -> list[tuple[str, str]]:
    """(person, moment) of every push on a notifications-like topic, duplicates kept."""
    return [(n["user_id"], n["event_id"]) for n in read_topic(topic)]


def store_rows(sql: str) -> list[tuple]:
    """Rows of a read-only query against the configured store (which the sink may be writing meanwhile)."""
    from pipelines.store.db import connect

    con = connect(read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def alive(pid) -> bool:
    import os

    try:
        os.kill(pid, 0)
        return True
    except (ProcessLookupError, TypeError):
        return False


# --- fused moments (pipelines.filtering.moment) ----------------------------------------------------

def fused_upload_ids(rows) -> list[str]:
    """The upload event ids ("<device_id>:<moment>") that feature rows were fused from, duplicates kept.

    rows: (event_id, user_id, device_id) per feature row; event_id is "<user_id>:<moment>" and device_id
    lists the fused devices joined by "+" — so a row stands for exactly these uploads."""
    from pipelines.contracts import event_id_for

    out = []
    for event_id, user_id, device_id in rows:
        assert event_id.startswith(user_id + ":"), f"feature row {event_id!r} is not a moment of {user_id!r}"
        moment = event_id[len(user_id) + 1:]
        out += [event_id_for(d, moment) for d in device_id.split("+")]
    return out


def expected_moment_ids(upload_ids, pop) -> set[str]:
    """The moment ids the valid uploads `upload_ids` must be fused into: moment_id(user_id, moment_of(upload)).
    A moment is expected as soon as one of its uploads is valid (a corrupted partner is dead-lettered,
    the moment is fused from the remaining device)."""
    from pipelines.filtering.moment import moment_id, moment_of

    user_of = dict(zip(pop.devices.device_id, pop.devices.user_id))
    out = set()
    for eid in upload_ids:
        device_id = eid.split(":", 1)[0]
        out.add(moment_id(user_of[device_id], moment_of({"event_id": eid, "device_id": device_id})))
    return out


def stream_feature_rows() -> list[tuple[str, str, str]]:
    """(event_id, user_id, device_id) of every stream feature row in the store."""
    return store_rows("SELECT event_id, user_id, device_id FROM features.state_features WHERE source = 'stream'")


def where_moments_stand(moment_ids, timeout: float = 60.0) -> dict[str, str]:
    """For a failing reconciliation: where each moment stands in its person's last logged state (the
    person_states changelog): still waiting for a device ("pending"), released and remembered
    ("recent"), or not in the state at all (its uploads never reached it, or it left the memory)."""
    from pipelines.ingest.changelog import read_changelog

    last = read_changelog(table="person_states", timeout=timeout)
    out = {}
    for mid in moment_ids:
        user = mid.rsplit(":", 1)[0]
        st = last.get(user)
        if st is None:
            out[mid] = "no logged state for the person"
        elif mid in (st.get("pending") or {}):
            out[mid] = f"pending (waiting for devices), partition offsets {st.get('offsets')}"
        elif any(r[0] == mid for r in st.get("recent") or ()):
            out[mid] = "recent (released and remembered)"
        else:
            out[mid] = f"not in the state; recent {[r[0] for r in st.get('recent') or ()]}"
    return out


def wait_until(what: str, ok, timeout: float = 120.0, every: float = 0.5):
    """Poll `ok()` until it returns something true (returned) or `timeout` s pass (TimeoutError naming `what`)."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        v = ok()
        if v:
            return v
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not reached within {timeout:.0f} s")
        time.sleep(every)
