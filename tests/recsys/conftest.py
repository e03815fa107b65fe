"""A two-worker Dask LocalCluster shared by the recsys tests (started once, ~1-2 s)."""

import pytest


@pytest.fixture(scope="session")
def recsys_client():
    from pipelines.recsys.cluster import dask_client

    with dask_client(n_workers=2) as client:
        yield client
