"""Helpers of the agent tests (a module of its own, not conftest, so tests can import it by a unique name)."""

from __future__ import annotations

import asyncio
import json
import time
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
