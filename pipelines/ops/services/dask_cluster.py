"""A long-lived local Dask scheduler + workers (`osr services up --only dask`).

Batch jobs reach it through `pipelines.recsys.cluster.dask_client` by setting
OSR_DASK_SCHEDULER to the address this prints; without it they start a LocalCluster.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

from pipelines import config
from pipelines.recsys.cluster import HTTP_ADDRESS, dask_client  # noqa: F401  (re-exported for operators)
from pipelines.ops.services.processes import Service, ServiceError, port_open, wait_until


def scheduler_address() -> str:
    return f"tcp://127.0.0.1:{int(config.get('OSR_DASK_PORT'))}"


def _dask() -> str:
    exe = Path(sys.executable).parent / "dask"
    if not exe.is_file():
        raise ServiceError(f"no `dask` executable in {exe.parent}; install dask[distributed] in this environment")
    return str(exe)


def scheduler_service() -> Service:
    # The scheduler retitles itself "dask scheduler [tcp://127.0.0.1:PORT]"; both forms hold these parts.
    return Service("dask-scheduler", ("dask scheduler", str(int(config.get("OSR_DASK_PORT")))))


def workers_service() -> Service:
    return Service("dask-workers", ("dask worker", scheduler_address()), child_signature=("dask worker",))


def _workers_connected(address: str, expected: int) -> bool:
    from distributed import Client

    try:
        with Client(address, timeout=2) as client:
            return len(client.scheduler_info(n_workers=-1)["workers"]) >= expected
    except (OSError, TimeoutError):
        return False


def start(progress: Callable[[str], None] | None = None, timeout: float | None = None) -> dict:
    """Start `dask scheduler` and `dask worker` (OSR_DASK_WORKERS processes, 1 thread each) on 127.0.0.1."""
    say = progress or (lambda _msg: None)
    timeout = float(timeout if timeout is not None else config.get("OSR_SERVICE_TIMEOUT"))
    address = scheduler_address()
    port = int(config.get("OSR_DASK_PORT"))
    n = int(config.get("OSR_DASK_WORKERS"))
    sched, workers = scheduler_service(), workers_service()
    t0 = time.monotonic()
    if (pid := sched.running_pid()) is None:
        if port_open("127.0.0.1", port):
            raise ServiceError(f"port {port} on 127.0.0.1 is taken by a process that is not our Dask scheduler; set OSR_DASK_PORT")
        pid = sched.start([_dask(), "scheduler", "--host", "127.0.0.1", "--port", str(port),
                           "--no-dashboard", "--dashboard-address", HTTP_ADDRESS])
        say(f"Started dask scheduler (pid {pid}); log {sched.log_file}")
        wait_until(lambda: port_open("127.0.0.1", port), f"Dask scheduler at {address}", timeout, sched, pid, say)
    if (wpid := workers.running_pid()) is None:
        wpid = workers.start([
            _dask(), "worker", address, "--nworkers", str(n), "--nthreads", "1",
            "--host", "127.0.0.1", "--no-dashboard", "--dashboard-address", HTTP_ADDRESS,
        ])
        say(f"Started {n} dask workers (pid {wpid}); log {workers.log_file}")
    wait_until(lambda: _workers_connected(address, n), f"{n} Dask workers at {address}", timeout, workers, wpid, say)
    ready = time.monotonic() - t0
    say(f"Dask is up at {address} after {ready:.1f} s; jobs use it with OSR_DASK_SCHEDULER={address}")
    return {"scheduler_pid": pid, "workers_pid": wpid, "address": address, "workers": n, "ready_seconds": round(ready, 2)}


def stop(timeout: float = 20.0) -> str:
    """Stop the workers first (so they do not try to reconnect), then the scheduler."""
    return f"workers: {workers_service().stop(timeout)}; scheduler: {scheduler_service().stop(timeout)}"


def status() -> dict:
    sched_pid = scheduler_service().running_pid()
    workers_pid = workers_service().running_pid()
    return {
        "service": "dask",
        "state": "up" if sched_pid and workers_pid else ("partial" if sched_pid or workers_pid else "down"),
        "pid": sched_pid,
        "workers_pid": workers_pid,
        "address": scheduler_address(),
        "log": str(scheduler_service().log_file),
    }
