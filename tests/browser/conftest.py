"""The Airflow UI in a real browser: a local Airflow (the project's own start, auth on) on a free port over
a small seeded store, and headless Debian Chromium driven by Selenium through Debian's chromedriver.

These tests are marked `browser` and run only when asked (`pytest -m browser tests/browser`, or
OSR_BROWSER_TESTS=1): one run takes minutes on a 2-core machine (see the README), too much for the suite.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from pipelines.ops.services import airflow_local
from pipelines.ops.services.processes import find_free_port
from pipelines.synthetic import population as P

CHROMIUM = os.environ.get("OSR_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("OSR_CHROMEDRIVER", "/usr/bin/chromedriver")
#: The store the DAG runs on: as small as tests/dags/test_nightly_dag.py's, so the run takes a minute or two.
SMALL = P.PopulationParams(n_users=40, n_items=48, history_contexts_per_user=10, stream_contexts_per_user=1,
                           interactions_per_user=12, seed=3)
#: How long Airflow may take to start (a deadline, not a measured figure; 18 s idle, 219 s at load 30).
START_TIMEOUT_S = 420


def pytest_configure(config):  # pytest hook: register the marker
    config.addinivalue_line("markers", "browser: drives the Airflow UI in headless Chromium; "
                                       "run with `pytest -m browser tests/browser` (minutes)")


def pytest_collection_modifyitems(config, items):  # pytest hook: browser tests only when asked
    expr = config.getoption("markexpr") or ""
    asked = ("browser" in expr and "not browser" not in expr) or os.environ.get("OSR_BROWSER_TESTS") == "1"
    if asked:
        return
    skip = pytest.mark.skip(reason="browser test: run `pytest -m browser tests/browser` (or OSR_BROWSER_TESTS=1)")
    for item in items:
        if "browser" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="module")
def airflow_ui(tmp_path_factory):
    """A running local Airflow over a migrated store with a small population; yields its base URL."""
    from pipelines.store.db import connect, migrate
    from pipelines.store.population_loader import load_population

    home = tmp_path_factory.mktemp("osr-ui-home")
    mp = pytest.MonkeyPatch()
    mp.setenv("OSR_HOME", str(home))
    mp.setenv("OSR_AIRFLOW_PORT", str(find_free_port()))
    mp.setenv("OSR_KAFKA_BOOTSTRAP", "127.0.0.1:1")  # no broker: the announce task says so and succeeds
    mp.delenv("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", raising=False)  # the suite's; this Airflow has its own
    con = connect()
    migrate(con)
    load_population(con, P.generate(SMALL))
    con.close()
    try:
        airflow_local.start(timeout=START_TIMEOUT_S)
        yield airflow_local.base_url()
    finally:
        try:
            airflow_local.stop()
        finally:
            mp.undo()


@pytest.fixture(scope="module")
def chrome():
    """Headless Debian Chromium through Debian's chromedriver (no Selenium Manager download)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    for exe in (CHROMIUM, CHROMEDRIVER):
        if not (Path(exe).is_file() or shutil.which(exe)):
            pytest.fail(f"{exe} missing: `apt-get install chromium chromium-driver` (infra/setup.sh does)")
    opts = Options()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1400,900"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.implicitly_wait(0)
    try:
        yield driver
    finally:
        driver.quit()
