"""Agent tests without a broker: each agent runs in Faust's `agent.test_context()`, the topics it
sends to have their `send` replaced by a recorder, and table writes record their changelog
message (with its partition) instead of handing it to a producer.

`streams.app` reads its settings and creates OSR_HOME/faust/<app id> at import, so it is imported
here, once, with every OSR_* variable cleared and OSR_HOME in a throwaway folder; the process
environment is put back as it was right after, so nothing leaks into the rest of the suite.
Each test then gets its own OSR_HOME (and so its own snapshot folder) through monkeypatch.

Async tests (`async def test_...`) run on one event loop shared by the whole streams session:
the Faust app and its tables are module-level singletons and bind to the first loop they see.
"""

from __future__ import annotations

import asyncio
import atexit
import inspect
import os
import shutil
import tempfile
from unittest.mock import AsyncMock, MagicMock, patch

import pytest
from model_fixtures import CATEGORIES, small_items, small_propensity_model

from pipelines import config

# --- import the app with a clean, private environment ---------------------------------------------

_saved_env = {name: os.environ.get(name) for name in config.SETTINGS}
_import_home = tempfile.mkdtemp(prefix="osr-test-streams-")
atexit.register(shutil.rmtree, _import_home, ignore_errors=True)
try:
    for _name in config.SETTINGS:
        os.environ.pop(_name, None)
    os.environ["OSR_HOME"] = _import_home
    import streams.app  # noqa: E402  (must come after the environment is set)
    import streams.topics as topics  # noqa: E402
    from streams.agents import control, moments  # noqa: E402,F401
finally:
    for _name, _value in _saved_env.items():
        if _value is None:
            os.environ.pop(_name, None)
        else:
            os.environ[_name] = _value

from pipelines.online import snapshot as snap  # noqa: E402
from pipelines.online.chain import HeldPeople  # noqa: E402
from pipelines.synthetic.population import PopulationParams, generate, sensor_events  # noqa: E402

#: Seconds an async test may take before it is failed (a lost message must not hang the suite).
ASYNC_TEST_TIMEOUT = 20.0

#: Small enough to generate in well under a second; 4 people so each test has the roles it needs.
STREAM_POP = PopulationParams(n_users=4, n_items=24, history_contexts_per_user=2, stream_contexts_per_user=2,
                              watch_share=0.5, seed=7)


# --- running async tests ---------------------------------------------------------------------------

@pytest.fixture(scope="session", autouse=True)
def stream_loop():
    loop = asyncio.new_event_loop()
    yield loop
    loop.run_until_complete(loop.shutdown_asyncgens())
    loop.close()
    asyncio.set_event_loop(None)


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem):
    """Run `async def` tests of this folder on the shared loop (no pytest-asyncio needed)."""
    if not inspect.iscoroutinefunction(pyfuncitem.obj):
        return None
    loop = pyfuncitem.funcargs["stream_loop"]
    kwargs = {name: pyfuncitem.funcargs[name] for name in pyfuncitem._fixtureinfo.argnames}
    asyncio.set_event_loop(loop)
    loop.run_until_complete(asyncio.wait_for(pyfuncitem.obj(**kwargs), ASYNC_TEST_TIMEOUT))
    return True


# --- per-test isolation ----------------------------------------------------------------------------

@pytest.fixture(autouse=True)
def osr_home(tmp_path, monkeypatch):
    """Every OSR_* setting at its default, OSR_HOME (and so the snapshots) in this test's tmp folder;
    the shared stream singletons (live snapshot, tuner rule books, tables) start empty."""
    for name in config.SETTINGS:
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "osr_home"
    monkeypatch.setenv("OSR_HOME", str(home))
    live = topics.live_snapshot
    monkeypatch.setattr(live, "_snap", None)
    monkeypatch.setattr(live, "_checked", -1e9)
    monkeypatch.setattr(moments.chain.tuner, "_rulebooks", {})
    if moments.chain.tuner.follower is not None:  # no rules read from the store: the snapshot's apply
        monkeypatch.setattr(moments.chain.tuner.follower, "_view", None)
    monkeypatch.setattr(moments, "held", HeldPeople())  # who waits for a device: per worker, so per test
    topics.person_states.data.clear()
    yield home
    topics.person_states.data.clear()


class Clock:
    """The process agent's wall clock (`moments.time.time`), moved only by the test: whether a held
    moment is due then depends on what the test says, not on how fast the machine is."""

    def __init__(self, now: float = 1_800_000_000.0):
        self.now = now

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:  # the agent's idle-partition clock: the test's too
        return self.now

    @staticmethod
    def perf_counter() -> float:  # the agent's batch timing: real time is fine
        import time

        return time.perf_counter()


@pytest.fixture(autouse=True)
def clock(monkeypatch):
    c = Clock()
    monkeypatch.setattr(moments, "time", c)
    return c


@pytest.fixture(autouse=True)
def holes_read_back(monkeypatch):
    """The agent tests number offsets freely, where a broker's are contiguous: a gap between a test's
    offsets reads back nothing here (the read-back itself: test_stream_offset_holes.py). The holes the
    agent asked for are kept, so a test can see them."""
    asked: list[dict] = []

    def fetch(topic, holes, timeout=30.0):
        asked.append(dict(holes))
        return []

    monkeypatch.setattr(moments.offset_holes, "fetch", fetch)
    return asked


@pytest.fixture(autouse=True)
def owns_every_partition(monkeypatch):
    """The worker under test owns every partition of sensor.raw (there is no real group assignment)."""
    from faust.types import TP

    from streams.agents import moments as m

    owned = {TP(m.RAW, p) for p in range(topics.PARTITIONS)}
    monkeypatch.setattr(streams.app.app.assignor, "assigned_actives", lambda: owned)
    return owned


@pytest.fixture(autouse=True)
def caught_up(monkeypatch):
    """Whether a tick finds its partition caught up (no broker here): yes unless a test says otherwise."""
    from streams.agents import moments as m

    state = {"caught_up": True, "real": m.caught_up}  # the real check, for the test of it

    async def fake(partition: int) -> bool:
        return state["caught_up"]

    monkeypatch.setattr(m, "caught_up", fake)
    return state


@pytest.fixture(autouse=True)
def changelog():
    """Table writes record (partition, key, value) per table instead of producing to the changelog topic."""
    records: dict[str, list[tuple[object, object, object]]] = {}
    patches = []
    for table in (topics.person_states,):
        log = records.setdefault(table.name, [])

        def fake_send_changelog(partition, key, value, key_serializer=None, value_serializer=None, _log=log):
            _log.append((partition, key, value))
            fut = asyncio.get_running_loop().create_future()  # a FutureMessage, acked by the broker at once
            fut.set_result(None)
            return fut

        patches.append(patch.object(table, "send_changelog", side_effect=fake_send_changelog))
    for p in patches:
        p.start()
    yield records
    for p in patches:
        p.stop()


@pytest.fixture
def outbox():
    """Patch `send` on every topic of streams.topics; yields {topic attribute name: AsyncMock}."""
    import faust

    def delivered(*_args, **_kwargs):
        """What a real send returns once awaited: a future of the broker's ack (here: acked at once)."""
        fut = asyncio.get_running_loop().create_future()
        fut.set_result(None)
        return fut

    names = [n for n, v in vars(topics).items() if isinstance(v, faust.TopicT)]
    patches = {n: patch.object(getattr(topics, n), "send", new=AsyncMock(name=f"{n}.send", side_effect=delivered))
               for n in names}
    mocks = {n: p.start() for n, p in patches.items()}
    yield mocks
    for p in patches.values():
        p.stop()


# --- a small population and a snapshot of it --------------------------------------------------------

@pytest.fixture(scope="session")
def stream_pop():
    return generate(STREAM_POP)


@pytest.fixture(scope="session")
def uploads(stream_pop) -> list[dict]:
    """The streamed day's uploads, JSON-ready (tests must not mutate them)."""
    return [e for e, _truth in sensor_events(stream_pop, "stream")]


@pytest.fixture(scope="session")
def people(stream_pop) -> dict[str, str]:
    """Roles of the four people in the snapshot below."""
    ids = list(stream_pop.users.user_id)
    return {"known": ids[0], "opted_out": ids[1], "popular": ids[2], "stranger": ids[3]}


@pytest.fixture(scope="session")
def propensity_model_str() -> str:
    """A small LightGBM model that learned: coffee sells (p ~ 0.9), everything else rarely (p ~ 0.05)."""
    return small_propensity_model(n_estimators=20)


@pytest.fixture
def snapshot_tables(stream_pop, people):
    """known: a top-N list and preferences; opted_out: a top-N list, opted out; popular: in the users
    table but without a top-N (gets the popular items); stranger: unknown to the snapshot.
    devices: the registry, every device of the three known people (known and opted_out have a phone
    and a watch, popular a phone only); the stranger's are not in it."""
    import pandas as pd

    from pipelines.online.tuner import DEFAULT_RULES

    known, opted_out = people["known"], people["opted_out"]
    items = small_items()
    topn = pd.DataFrame({
        "user_id": [known, known, known, opted_out, opted_out],
        "rank": [1, 2, 3, 1, 2],
        "item_id": ["i0", "i1", "i2", "i4", "i3"],
        "score": [2.0, 1.0, 0.5, 0.8, 0.4],
        "preference": [1.0, 0.5, 0.25, 1.0, 0.5],
    })
    users = stream_pop.users[stream_pop.users.user_id != people["stranger"]][
        ["user_id", "peak_hr", "home_x", "home_y", "work_x", "work_y"]].reset_index(drop=True)
    stores = stream_pop.stores[["store_id", "category", "x", "y"]].reset_index(drop=True)
    prefs = pd.DataFrame({"user_id": [known, opted_out], "opted_out": [False, True],
                          "quiet_start_hour": [None, None], "quiet_end_hour": [None, None], "daily_cap": [3, 3]})
    devices = stream_pop.devices[stream_pop.devices.user_id != people["stranger"]][
        ["device_id", "user_id"]].reset_index(drop=True)
    return {"topn": topn, "items": items, "users": users, "stores": stores, "rules": DEFAULT_RULES.copy(),
            "preferences": prefs, "devices": devices}


@pytest.fixture
def snapshot_meta():
    return {"categories": CATEGORIES, "top_n": 3, "raw_min": 0.0, "raw_max": 1.0}


@pytest.fixture
def publish(osr_home, snapshot_tables, propensity_model_str, snapshot_meta):
    """publish(model_id, **table overrides): write a snapshot under OSR_SNAPSHOT_DIR and make it live."""

    def _publish(model_id: str, **tables):
        folder = snap.write_snapshot(model_id, {**snapshot_tables, **tables}, propensity_model_str, snapshot_meta)
        snap.set_live(model_id)
        return folder

    return _publish


@pytest.fixture
def live(publish):
    """Snapshot m1, live."""
    publish("m1")
    return "m1"
