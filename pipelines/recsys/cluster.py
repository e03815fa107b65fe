"""The Dask client every batch job uses: OSR_DASK_SCHEDULER if set, else a throw-away LocalCluster.

Why both: on one machine a LocalCluster started per job (~1 s) is simplest; on a real
cluster (or with `osr services up --only dask`) jobs connect to a long-lived scheduler
by address, with no code change. Workers are processes with one thread each, so
pandas/numpy work runs in parallel without GIL contention. Starting a long-lived local
scheduler is operator work and lives in `pipelines.ops.services.dask_cluster`.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
from typing import Iterator

from pipelines import config

#: Where schedulers and workers serve HTTP (health, metrics, the dashboard when bokeh is installed).
#: distributed always starts that server; left alone it binds every interface (the scheduler on 8787).
HTTP_ADDRESS = "127.0.0.1:0"


@contextlib.contextmanager
def dask_client(n_workers: int | None = None, timeout: float = 30.0) -> Iterator["distributed.Client"]:  # noqa: F821
    """A distributed.Client, closed on exit (and its LocalCluster too, when one was started here)."""
    # one BLAS thread per worker process: the workers are the parallelism
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from distributed import Client, LocalCluster

    address = config.get("OSR_DASK_SCHEDULER").strip()
    if address:
        client = Client(address, timeout=timeout)
        try:
            yield client
        finally:
            client.close()
        return
    cluster = LocalCluster(
        n_workers=int(n_workers if n_workers is not None else config.get("OSR_DASK_WORKERS")),
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=HTTP_ADDRESS,
        worker_dashboard_address=HTTP_ADDRESS if importlib.util.find_spec("bokeh") else None,
    )
    try:
        client = Client(cluster, timeout=timeout)
        try:
            yield client
        finally:
            client.close()
    finally:
        cluster.close()


def worker_addresses(client) -> list[str]:
    """Worker addresses in a stable (sorted) order, so block placement is reproducible."""
    try:
        info = client.scheduler_info(n_workers=-1)
    except TypeError:  # older distributed without the n_workers argument
        info = client.scheduler_info()
    return sorted(info["workers"])


_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_GLIBC_DEFAULT_THRESHOLD = 128 * 1024


def retain_freed_memory(enable: bool) -> bool:
    """Worker-side: make glibc keep freed memory for reuse (enable) or return it to the OS again.

    Dask's nanny starts workers with MALLOC_TRIM_THRESHOLD_=65536, so every large temporary
    array is given back to the OS when freed and page-faulted in again on the next
    allocation. ALS allocates the same large temporaries every half-iteration; keeping them
    cut worker compute on MovieLens 100K from ~0.15 s to ~0.06 s per 10 iterations here.
    Disabling restores the environment's trim threshold, glibc's default mmap threshold and
    trims the heap. Returns False where this is not glibc (nothing is changed).
    """
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    if enable:
        mallopt(_M_MMAP_THRESHOLD, 1 << 30)
        mallopt(_M_TRIM_THRESHOLD, 1 << 30)
    else:
        trim = int(os.environ.get("MALLOC_TRIM_THRESHOLD_", _GLIBC_DEFAULT_THRESHOLD))
        mallopt(_M_MMAP_THRESHOLD, _GLIBC_DEFAULT_THRESHOLD)
        mallopt(_M_TRIM_THRESHOLD, trim)
        libc.malloc_trim(0)
    return True
