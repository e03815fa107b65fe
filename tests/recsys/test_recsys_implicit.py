"""The `implicit` wrapper, and Dask implicit-feedback ALS against it on the same objective."""

import numpy as np
import pytest

from pipelines.recsys import als_reference as ref
from pipelines.recsys.dask_als import fit_als
from pipelines.recsys.implicit_reference import fit_implicit
from pipelines.recsys.ratings import random_split
from pipelines.recsys.synthetic import latent_factor_interactions


@pytest.fixture(scope="module")
def split():
    df = latent_factor_interactions(400, 150, 9000, rank=4, seed=2)
    return random_split(df, 0.2, seed=0)


def test_wrapper_shapes_and_top_n(split):
    res = fit_implicit(split.train, rank=8, reg=0.1, alpha=1.0, iterations=5, seed=0)
    assert res.user_factors.shape == (400, 8) and res.item_factors.shape == (150, 8)
    top = res.top_n(seen=split.train, n=5, users=np.arange(10))
    assert list(top.columns) == ["user_id", "item_id", "rank", "score"]
    assert len(top) == 50 and top.groupby("user_id")["rank"].apply(list).map(lambda r: r == [1, 2, 3, 4, 5]).all()
    seen = {(u, i) for u, i in zip(*split.train[:10].nonzero())}
    assert not any((u, i) in seen for u, i in zip(top.user_id, top.item_id))
    assert res.fit_seconds > 0 and res.params["library"].startswith("implicit 0.7")


def test_dask_implicit_als_reaches_implicit_library_loss(recsys_client, split):
    """Same objective (confidence 1 + alpha r): exact Dask solves end at or below CG's loss."""
    R = split.train
    lib = fit_implicit(R, rank=6, reg=0.5, alpha=2.0, iterations=15, seed=0)
    ours = fit_als(recsys_client, R, rank=6, reg=0.5, alpha=2.0, iterations=15, implicit=True, dtype=np.float64)
    lib_loss = ref.implicit_loss(R, lib.user_factors, lib.item_factors, 0.5, 2.0)
    assert ours.loss[-1] == pytest.approx(ref.implicit_loss(R, ours.user_factors, ours.item_factors, 0.5, 2.0),
                                          rel=1e-9)
    assert ours.loss[-1] <= lib_loss * 1.01, (ours.loss[-1], lib_loss)
