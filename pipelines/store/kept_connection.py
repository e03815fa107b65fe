"""One read-only store connection a long-running follower keeps between polls (the tuner rules, the
admission plan): opened on first use, dropped after any failed read so the next poll opens a fresh
one, closed on request. A read-only connection never takes the writer lock."""

from __future__ import annotations

from pipelines.store.db import connect


class KeptConnection:
    """Mixin: the subclass sets `store`, `_con = None` and `_lock` (a threading.Lock) in __init__."""

    def _connection(self):
        if self._con is None:
            self._con = connect(self.store, read_only=True)
        return self._con

    def _drop_connection(self) -> None:
        con, self._con = self._con, None
        if con is not None:
            try:
                con.close()
            except Exception:  # noqa: BLE001 - a broken connection is dropped either way
                pass

    def close(self) -> None:
        with self._lock:
            self._drop_connection()
