"""A two-worker Dask LocalCluster shared by the propensity tests (started once, ~1-2 s)."""

import pytest


@pytest.fixture(scope="session")
def propensity_client():
    from pipelines.recsys.cluster import dask_client

    with dask_client(n_workers=2) as client:
        yield client
