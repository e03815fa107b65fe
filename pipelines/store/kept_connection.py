"""One read-only store connection a long-running follower keeps between polls (the tuner rules, the
admission plan): opened on first use, dropped after any failed read so the next poll opens a fresh
one, closed on request. A read-only connection never takes the writer lock.

A follower never raises on a failed read: it keeps serving what it last read, says so once per
outage (not once per poll) and says when the store answers again."""

from __future__ import annotations

import logging

from pipelines.store.db import connect

log = logging.getLogger(__name__)


class KeptConnection:
    """Mixin: the subclass sets `store`, `_con = None`, `_failing = None` and `_lock` (a threading.Lock)
    in __init__."""

    def _read_kept(self, read, what: str, serving, logger: logging.Logger = log) -> tuple[bool, object]:
        """(True, read()) or, when it failed, (False, None): the connection dropped, the outage logged
        once ("<what>: cannot read from the store (<why>); serving <serving()> until it answers").
        Call with the lock held."""
        try:
            value = read()
        except Exception as exc:  # noqa: BLE001 - any failure: keep serving what we have
            self._drop_connection()
            why = f"{exc.__class__.__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
            if self._failing is None:
                logger.warning("%s: cannot read from the store (%s); serving %s until it answers", what, why, serving())
            self._failing = why
            return False, None
        if self._failing is not None:
            logger.warning("%s: the store answers again", what)
            self._failing = None
        return True, value

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
