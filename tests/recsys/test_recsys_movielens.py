"""MovieLens loading: checksum, clear errors, the fixed split."""

import numpy as np
import pandas as pd
import pytest

from pipelines.recsys import movielens
from pipelines.recsys.ratings import index_values, random_split

needs_ml100k = pytest.mark.skipif(not movielens.ml100k_path().is_file(), reason="MovieLens 100K not present")


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(movielens.DatasetError, match="not found"):
        movielens.load_ml100k(tmp_path / "u.data")


def test_wrong_checksum_is_refused(tmp_path):
    p = tmp_path / "u.data"
    p.write_text("1\t1\t5\t881250949\n")
    with pytest.raises(movielens.DatasetError, match="sha256"):
        movielens.load_ml100k(p)
    assert len(movielens.load_ml100k(p, verify=False)) == 1


@needs_ml100k
def test_ml100k_split_is_fixed_and_80_20():
    a = movielens.ml100k_split()
    b = movielens.ml100k_split()
    assert a.shape == (943, 1682)
    assert a.train.nnz == 80_000 and a.test.nnz == 20_000
    assert (a.train != b.train).nnz == 0 and (a.test != b.test).nnz == 0
    # train and test are disjoint and together are the whole file
    assert a.train.multiply(a.test).nnz == 0
    assert float(a.train.sum() + a.test.sum()) == float(movielens.load_ml100k().rating.sum())
    c = movielens.ml100k_split(seed=1)
    assert (a.test != c.test).nnz > 0


def test_index_values_matches_numpy_unique():
    v = np.random.default_rng(0).integers(-50, 50, 1000)
    u, inv = np.unique(v, return_inverse=True)
    u2, inv2 = index_values(v)
    assert np.array_equal(u, u2) and np.array_equal(inv, inv2)


def test_random_split_keeps_ids():
    df = pd.DataFrame({"user_id": [7, 7, 9, 9, 9], "item_id": [3, 4, 3, 5, 4], "rating": [1, 2, 3, 4, 5]})
    s = random_split(df, test_fraction=0.4, seed=0)
    assert s.user_ids.tolist() == [7, 9] and s.item_ids.tolist() == [3, 4, 5]
    assert s.train.nnz == 3 and s.test.nnz == 2
    both = (s.train + s.test).toarray()
    assert both.tolist() == [[1, 2, 0], [3, 5, 4]]
