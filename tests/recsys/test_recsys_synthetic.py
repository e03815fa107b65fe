"""The synthetic interaction generator: exact size, distinct pairs, skew and a recoverable latent structure."""

import numpy as np
import pytest

from pipelines.recsys.synthetic import latent_factor_interactions


@pytest.fixture(scope="module")
def data():
    return latent_factor_interactions(2000, 500, 60_000, rank=6, seed=11, return_factors=True)


def test_exact_count_distinct_sorted_and_typed(data):
    df, U, V = data
    assert len(df) == 60_000
    assert list(df.columns) == ["user_id", "item_id", "rating"]
    assert df.user_id.dtype == np.int32 and df.item_id.dtype == np.int32 and df.rating.dtype == np.float32
    assert not df.duplicated(["user_id", "item_id"]).any()
    key = df.user_id.to_numpy(np.int64) * 500 + df.item_id.to_numpy()
    assert np.all(np.diff(key) > 0)  # sorted by user, then item
    assert df.user_id.between(0, 1999).all() and df.item_id.between(0, 499).all()
    assert set(np.unique(df.rating)) <= {1.0, 2.0, 3.0, 4.0, 5.0}
    assert U.shape == (2000, 6) and V.shape == (500, 6)


def test_seeded(data):
    a = latent_factor_interactions(300, 100, 3000, rank=4, seed=5)
    b = latent_factor_interactions(300, 100, 3000, rank=4, seed=5)
    c = latent_factor_interactions(300, 100, 3000, rank=4, seed=6)
    assert a.equals(b) and not a.equals(c)


def test_popularity_and_activity_skew(data):
    df, _, _ = data
    counts = np.sort(df.item_id.value_counts().to_numpy())[::-1]
    assert counts[: len(counts) // 10].sum() > 0.3 * len(df)  # top 10 % of items: > 30 % of interactions
    users = df.user_id.value_counts().to_numpy()
    assert users.max() > 5 * np.median(users)


def test_latent_structure_is_real(data):
    df, U, V = data
    u, i = df.user_id.to_numpy(), df.item_id.to_numpy()
    chosen = np.einsum("nk,nk->n", U[u], V[i])
    rng = np.random.default_rng(0)
    random_pairs = np.einsum("nk,nk->n", U[u], V[rng.integers(0, 500, len(u))])
    # users pick items they have affinity for, and rate them by it
    assert chosen.mean() > random_pairs.mean() + 0.3
    assert np.corrcoef(chosen, df.rating.to_numpy())[0, 1] > 0.6


def test_rejects_impossible_sizes():
    with pytest.raises(ValueError):
        latent_factor_interactions(10, 10, 60)
