"""pipelines.partitioning.acks: a batch's acks are awaited; a wedged producer ends the process, an outage waits."""

from __future__ import annotations

import asyncio

import pytest

from pipelines.partitioning.acks import wait_acked


class Wedged(Exception):
    pass


def _run(coro):
    return asyncio.run(coro)


def test_returns_once_every_send_is_acked_and_never_probes():
    async def go():
        loop = asyncio.get_running_loop()
        futs = [loop.create_future() for _ in range(3)]
        for i, f in enumerate(futs):
            loop.call_later(0.01 * (i + 1), f.set_result, i)
        probes = []

        async def probe():
            probes.append(1)
            return True

        def wedged(*_):
            raise Wedged()

        await wait_acked(futs, timeout=1.0, probe=probe, on_wedged=wedged)
        return probes, [f.result() for f in futs]

    probes, results = _run(go())
    assert probes == [] and results == [0, 1, 2]


def test_a_send_error_is_raised():
    async def go():
        loop = asyncio.get_running_loop()
        bad = loop.create_future()
        bad.set_exception(ValueError("no such partition"))

        async def probe():
            return True

        await wait_acked([bad], timeout=1.0, probe=probe, on_wedged=lambda *_: None)

    with pytest.raises(ValueError, match="no such partition"):
        _run(go())


def test_an_unacked_send_while_the_probe_is_acked_means_wedged():
    seen = []

    async def go():
        loop = asyncio.get_running_loop()
        ok, stuck = loop.create_future(), loop.create_future()  # `stuck` never resolves, like the aiokafka batch
        ok.set_result(0)

        async def probe():
            return True

        def wedged(pending, total, waited):
            seen.append((pending, total))
            raise Wedged()

        await wait_acked([ok, stuck], timeout=0.05, probe=probe, on_wedged=wedged)

    with pytest.raises(Wedged):
        _run(go())
    assert seen == [(1, 2)]


def test_an_outage_waits_until_the_acks_come():
    waits = []

    async def go():
        loop = asyncio.get_running_loop()
        late = loop.create_future()
        loop.call_later(0.25, late.set_result, "acked")

        async def probe():  # the broker is away: the probe is not acked either
            return False

        def wedged(*_):
            raise Wedged()

        await wait_acked([late], timeout=0.05, probe=probe, on_wedged=wedged,
                         on_waiting=lambda pending, total, waited: waits.append(pending))
        return late.result()

    assert _run(go()) == "acked"
    assert waits and set(waits) == {1}  # it waited (at least once), never gave up


def test_on_wedged_must_not_return():
    async def go():
        stuck = asyncio.get_running_loop().create_future()

        async def probe():
            return True

        await wait_acked([stuck], timeout=0.01, probe=probe, on_wedged=lambda *_: None)

    with pytest.raises(RuntimeError, match="must end"):
        _run(go())
