"""Logging that stays readable during an outage: repeated messages are counted, not repeated.

Why: with the broker down for half a minute, a Faust worker logged ~72,000 connection errors
(15 MB) and the sink crashed. Every long-running process (worker, sink, gateway, producer)
logs a repeated warning at most once per interval, with how many were suppressed.
"""

from __future__ import annotations

import logging
import re
import time

_DIGITS = re.compile(r"\d+")


class RateLimitedLog:
    """`warning(fmt, *args)` logs a given format string at most once per `every_s` seconds."""

    def __init__(self, logger: logging.Logger, every_s: float = 10.0, clock=time.monotonic):
        self.logger, self.every_s, self.clock = logger, every_s, clock
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def _emit(self, level: int, fmt: str, *args) -> bool:
        now = self.clock()
        last = self._last.get(fmt)
        if last is not None and now - last < self.every_s:
            self._suppressed[fmt] = self._suppressed.get(fmt, 0) + 1
            return False
        n = self._suppressed.pop(fmt, 0)
        self._last[fmt] = now
        self.logger.log(level, fmt + (f" (and {n} more like it in the last {self.every_s:.0f} s)" if n else ""), *args)
        return True

    def warning(self, fmt: str, *args) -> bool:
        return self._emit(logging.WARNING, fmt, *args)

    def error(self, fmt: str, *args) -> bool:
        return self._emit(logging.ERROR, fmt, *args)


class RateLimitFilter(logging.Filter):
    """A logging.Filter for libraries we do not control (aiokafka, kafka clients): a record whose
    message template repeats is let through at most once per `every_s` seconds per logger."""

    def __init__(self, every_s: float = 10.0, clock=time.monotonic, prefixes: tuple[str, ...] = ()):
        super().__init__()
        self.every_s, self.clock, self.prefixes = every_s, clock, prefixes
        self._last: dict[tuple[str, str], float] = {}
        self._suppressed: dict[tuple[str, str], int] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        if self.prefixes and not record.name.startswith(self.prefixes):
            return True
        # by message with its numbers blanked: "connect to 127.0.0.1:41033 failed (after 0ms)" repeats
        key = (record.name, _DIGITS.sub("#", record.getMessage())[:200])
        now = self.clock()
        last = self._last.get(key)
        if last is not None and now - last < self.every_s:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return False
        n = self._suppressed.pop(key, 0)
        self._last[key] = now
        if n:
            record.msg = f"{record.getMessage()} (and {n} more like it in the last {self.every_s:.0f} s)"
            record.args = ()
        return True


def install(prefixes=("aiokafka", "kafka", "faust", "mode", "confluent_kafka"), every_s: float = 10.0
            ) -> RateLimitFilter:
    """Put one RateLimitFilter on every handler of the root logger (filters on a logger do not reach
    its children's records; handler filters see them all), for records of these libraries."""
    f = RateLimitFilter(every_s, prefixes=tuple(prefixes))
    for h in logging.getLogger().handlers:
        if not any(isinstance(x, RateLimitFilter) for x in h.filters):
            h.addFilter(f)
    return f
