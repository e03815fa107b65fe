"""Suite-wide settings: Airflow gets a private home before anything imports it."""

import os
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Airflow reads its configuration at import; point it at a throwaway home and our dags/ first.
_airflow_home = tempfile.mkdtemp(prefix="osr-test-airflow-")
os.environ.setdefault("AIRFLOW_HOME", _airflow_home)
os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(ROOT / "dags"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", f"sqlite:///{_airflow_home}/airflow.db")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
