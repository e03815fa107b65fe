"""A local Airflow 3 for development: scheduler, DAG processor, triggerer and API server on 127.0.0.1.

Why not plain `airflow standalone`: its scheduler and triggerer also serve task logs on
ports 8793/8794 of *every* interface (Airflow hard-codes the host), which this project's
services must not do, and it cannot pass `--skip-serve-logs` to them. So this module runs
`airflow db migrate`, then the four components itself under one `sh` in its own process
group, each logging to OSR_LOG_DIR/airflow-<component>.log. The API server reads task
logs from local files, so nothing needs the log servers here.

From STACK-NOTES: the components need the venv's bin on PATH (they are run as `airflow
...`, else FileNotFoundError); default parallelism spawns ~40 processes on a 2-core
machine, so it is lowered; signalling the parent alone leaves children holding ports, so
the whole process group is signalled. This module never imports airflow: it drives the
`airflow` command.

Authentication is on (SimpleAuthManager, never `all_admins`): one `admin` user whose password
this module generates before the first start into OSR_HOME/secrets/airflow-passwords.json
(mode 0600, folder 0700) and hands to Airflow as its passwords file, so Airflow neither
generates nor logs one. `status()` names the file; it returns the password only when asked.
"""

from __future__ import annotations

import json
import os
import secrets
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from pipelines import config
from pipelines.ops.services.processes import Service, ServiceError, port_open, wait_until

#: The four components in the background, each with its own log ($1 = log folder). On SIGTERM (sent to the
#: whole group by stop()) the shell waits for its children, so they are reaped, and exits last.
_SUPERVISOR = (
    'd="$1"; trap "wait; exit 0" TERM INT; '
    'airflow scheduler --skip-serve-logs >>"$d/airflow-scheduler.log" 2>&1 & '
    'airflow dag-processor >>"$d/airflow-dag-processor.log" 2>&1 & '
    'airflow triggerer --skip-serve-logs >>"$d/airflow-triggerer.log" 2>&1 & '
    'airflow api-server >>"$d/airflow-api-server.log" 2>&1 & '
    "wait"
)
COMPONENTS = ("scheduler", "dag-processor", "triggerer", "api-server")
SERVICE = Service("airflow", ("osr-airflow", "airflow api-server"), child_signature=("airflow",))
#: The one user of the local Airflow (role admin); its password lives in passwords_file().
ADMIN_USER = "admin"


def venv_bin() -> Path:
    """The bin folder of the Python running this code (the venv's, where `airflow` lives)."""
    return Path(sys.executable).parent


def port() -> int:
    return int(config.get("OSR_AIRFLOW_PORT"))


def base_url() -> str:
    return f"http://127.0.0.1:{port()}"


def airflow_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for any `airflow` command of this project (components, CLI, `dags test`, tests).

    Starts from `base` (default: os.environ), so OSR_* settings reach the tasks.
    """
    env = dict(os.environ if base is None else base)
    home = config.path("OSR_AIRFLOW_HOME")
    env.update({
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(config.PROJECT_ROOT / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": "4",
        "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
        # A DAG file parse waits up to 2 minutes (30 s by default: on a loaded 2-core machine one import of
        # Great Expectations took 25 s and a DAG vanished from the UI), and files are re-parsed every
        # minute, not every 30 s, which halves the parsing load.
        "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "120",
        "AIRFLOW__DAG_PROCESSOR__DAG_FILE_PROCESSOR_TIMEOUT": "180",
        "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "60",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port()),
        "AIRFLOW__API__WORKERS": "1",
        # Log in as a real user: SimpleAuthManager with one admin, password from our 0600 file.
        "AIRFLOW__CORE__AUTH_MANAGER": "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN_USER}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords_file()),
        # Task runners reach the API server here (the default assumes localhost:8080).
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{base_url()}/execution/",
        # ... and wait for it up to 30 s a call (default 5 s: on a loaded 2-core machine the first call of a
        # task timed out five times and the task was killed before it started).
        "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "30",
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
        # DAG files import the pipelines package from this checkout.
        "PYTHONPATH": os.pathsep.join(p for p in (str(config.PROJECT_ROOT), env.get("PYTHONPATH", "")) if p),
        "PATH": os.pathsep.join(p for p in (str(venv_bin()), env.get("PATH", "")) if p),
    })
    return env


def _airflow() -> str:
    exe = venv_bin() / "airflow"
    if not exe.is_file():
        raise ServiceError(f"no airflow executable in {venv_bin()}; install apache-airflow in this environment")
    return str(exe)


def health() -> dict | None:
    """The API server's /api/v2/monitor/health answer, or None if it does not answer."""
    try:
        with urllib.request.urlopen(f"{base_url()}/api/v2/monitor/health", timeout=2) as resp:
            return json.loads(resp.read())
    except (urllib.error.URLError, OSError, ValueError):
        return None


def _healthy(answer: dict | None) -> bool:
    if not answer:
        return False
    parts = ("metadatabase", "scheduler", "dag_processor", "triggerer")
    return all((answer.get(p) or {}).get("status") == "healthy" for p in parts)


def migrate(timeout: float = 300.0) -> float:
    """`airflow db migrate` (idempotent; creates the SQLite metadata DB on first run). Returns seconds."""
    t0 = time.monotonic()
    home = config.path("OSR_AIRFLOW_HOME")
    home.mkdir(parents=True, exist_ok=True)
    result = subprocess.run([_airflow(), "db", "migrate"], env=airflow_env(), cwd=home,
                            capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise ServiceError(f"`airflow db migrate` failed (exit {result.returncode}):\n{(result.stdout + result.stderr)[-3000:]}")
    return time.monotonic() - t0


def start(progress: Callable[[str], None] | None = None, timeout: float | None = None) -> dict:
    """Migrate the DB, start the four components; return once /api/v2/monitor/health reports them all healthy."""
    say = progress or (lambda _msg: None)
    timeout = float(timeout if timeout is not None else config.get("OSR_SERVICE_TIMEOUT"))
    if (pid := SERVICE.running_pid()) is not None:
        wait_until(lambda: _healthy(health()), f"Airflow at {base_url()}", timeout, SERVICE, pid, say)
        return {"pid": pid, "url": base_url(), "ready_seconds": 0.0, "already_running": True}
    if port_open("127.0.0.1", port()):
        raise ServiceError(f"port {port()} on 127.0.0.1 is taken by a process that is not our Airflow; set OSR_AIRFLOW_PORT")
    t0 = time.monotonic()
    ensure_admin_password()
    say(f"Migrating the Airflow metadata DB in {config.path('OSR_AIRFLOW_HOME')} ...")
    migrate()
    log_dir = config.path("OSR_LOG_DIR", create=True)
    log_dir.mkdir(parents=True, exist_ok=True)
    pid = SERVICE.start(["/bin/sh", "-c", _SUPERVISOR, "osr-airflow", str(log_dir)], env=airflow_env(),
                        cwd=config.path("OSR_AIRFLOW_HOME"))
    say(f"Started Airflow {', '.join(COMPONENTS)} (process group {pid}); logs {log_dir}/airflow-*.log")
    wait_until(lambda: _healthy(health()), f"Airflow at {base_url()}", timeout, SERVICE, pid, say, interval=1.0)
    ready = time.monotonic() - t0
    say(f"Airflow is up at {base_url()} after {ready:.1f} s (user {ADMIN_USER}, password in {passwords_file()}; "
        "`osr services status --show-password` prints it)")
    return {"pid": pid, "url": base_url(), "ready_seconds": round(ready, 2), "already_running": False}


def stop(timeout: float = 45.0) -> str:
    """SIGTERM to the components' whole process group, wait for every member to exit, SIGKILL after `timeout`."""
    return SERVICE.stop(timeout)


def passwords_file() -> Path:
    """Where the admin password is kept: OSR_HOME/secrets/airflow-passwords.json (SimpleAuthManager's format)."""
    return config.path("OSR_HOME") / "secrets" / "airflow-passwords.json"


def ensure_admin_password() -> Path:
    """Create the passwords file with a new random admin password unless it holds one; return its path.

    The folder is made 0700 and the file 0600 (created with that mode, never world-readable in between);
    an existing file with looser permissions is tightened, one that is not JSON is an error to fix by hand.
    """
    path = passwords_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        if stat.S_IMODE(path.stat().st_mode) & 0o077:
            os.chmod(path, 0o600)
        try:
            known = json.loads(path.read_text() or "{}")
        except ValueError as exc:
            raise ServiceError(f"{path} is not JSON ({exc}); delete it to generate a new Airflow admin password") from None
        if not isinstance(known, dict):
            raise ServiceError(f"{path} must hold a JSON object {{user: password}}; delete it to generate a new one")
        if known.get(ADMIN_USER):
            return path
        known[ADMIN_USER] = _new_password()
        path.write_text(json.dumps(known) + "\n")
        return path
    with os.fdopen(fd, "w") as out:
        out.write(json.dumps({ADMIN_USER: _new_password()}) + "\n")
    return path


def _new_password() -> str:
    return secrets.token_urlsafe(18)


def admin_password() -> str | None:
    """The admin user's password (from passwords_file()), or None before the first start."""
    try:
        return json.loads(passwords_file().read_text() or "{}").get(ADMIN_USER)
    except (OSError, ValueError, AttributeError):
        return None


def status(show_password: bool = False) -> dict:
    """Up/down, pid, URL, health, the admin user and where its password is; the password itself only if asked."""
    pid = SERVICE.running_pid()
    answer = health() if pid is not None else None
    row = {
        "service": "airflow",
        "state": "up" if pid is not None else "down",
        "pid": pid,
        "url": base_url(),
        "healthy": _healthy(answer),
        "admin_user": ADMIN_USER,
        "password_file": str(passwords_file()),
        "log": f"{config.path('OSR_LOG_DIR')}/airflow-*.log",
    }
    if show_password:
        row["admin_password"] = admin_password()
    return row
