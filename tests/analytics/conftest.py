"""A store filled by a small real run (tests/analytics/small_run.py), shared by the tests of one module."""

from __future__ import annotations

import pytest

from pipelines import config


@pytest.fixture(scope="module")
def filled_store(tmp_path_factory):
    """OSR_HOME (store, snapshots, reports) in a fresh folder, filled once per module; the process
    environment is put back afterwards."""
    import small_run

    mp = pytest.MonkeyPatch()
    for name in config.SETTINGS:
        mp.delenv(name, raising=False)
    home = tmp_path_factory.mktemp("analytics_home")
    mp.setenv("OSR_HOME", str(home))
    try:
        run = small_run.fill_store(home)
        run["home"] = home
        yield run
    finally:
        mp.undo()


@pytest.fixture
def empty_home(tmp_path, monkeypatch):
    """OSR_HOME in a folder without a store."""
    for name in config.SETTINGS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OSR_HOME", str(tmp_path / "nothing_here"))
    return tmp_path / "nothing_here"
