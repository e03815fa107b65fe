import os
import subprocess
import sys

import pytest


@pytest.fixture(scope="session")
def airflow_db():
    """An Airflow metadata DB (SQLite) in the suite's private AIRFLOW_HOME, for dag.test()."""
    airflow = os.path.join(os.path.dirname(sys.executable), "airflow")
    r = subprocess.run([airflow, "db", "migrate"], env=os.environ.copy(), capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    return os.environ["AIRFLOW_HOME"]
