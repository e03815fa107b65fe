"""Metrics and top-N against values worked out by hand."""

import numpy as np
import pytest
import scipy.sparse as sp

from pipelines.recsys import metrics
from pipelines.recsys.topn import top_n, top_n_indices


def test_rmse_by_hand():
    assert metrics.rmse([1, 2, 3], [1, 2, 5]) == pytest.approx(np.sqrt(4 / 3))
    with pytest.raises(ValueError):
        metrics.rmse([1, 2], [1])


def test_precision_and_average_precision_by_hand():
    rec = np.array([[1, 2, 3, 4], [5, 6, 7, 8], [9, -1, -1, -1]])
    pos = [{2, 4, 9}, {5}, {9, 10}]
    # user 0: hits at positions 2 and 4 -> P@4 = 2/4; AP@4 = (1/2 + 2/4) / min(4, 3)
    # user 1: hit at position 1 -> P@4 = 1/4; AP@4 = 1 / min(4, 1) = 1
    # user 2: one real item, a hit -> P@4 = 1/4 (always / k); AP@4 = 1 / min(4, 2) = 0.5
    assert metrics.precision_at_k(rec, pos, k=4) == pytest.approx([0.5, 0.25, 0.25])
    assert metrics.average_precision_at_k(rec, pos, k=4) == pytest.approx([1 / 3, 1.0, 0.5])
    # the cut-off is k: at k=1 user 0 has nothing
    assert metrics.precision_at_k(rec, pos, k=1) == pytest.approx([0.0, 1.0, 1.0])


def test_ranking_metrics_protocol_by_hand():
    # 3 users x 5 items; one latent dimension so scores are x_u * y_i
    Y = np.array([[5.0], [4.0], [3.0], [2.0], [1.0]])
    X = np.array([[1.0], [1.0], [1.0]])
    train = sp.csr_matrix(np.array([
        [5, 0, 0, 0, 0],   # user 0 rated item 0 in train: it is never recommended
        [0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0],
    ], dtype=np.float32))
    test = sp.csr_matrix(np.array([
        [0, 4, 0, 5, 0],   # positives {1, 3}
        [0, 3, 0, 0, 2],   # no rating >= 4: skipped
        [4, 0, 0, 0, 0],   # positive {0}
    ], dtype=np.float32))
    m = metrics.ranking_metrics(X, Y, train, test, k=2)
    # user 0 list [1, 2] -> 1 hit: P = 1/2, AP = (1/1) / min(2, 2) = 0.5
    # user 2 list [0, 1] -> 1 hit: P = 1/2, AP = 1 / min(2, 1) = 1
    assert m["n_users"] == 2
    assert m["precision_at_2"] == pytest.approx(0.5)
    assert m["map_at_2"] == pytest.approx(0.75)


def test_rating_rmse_with_offset_and_clip():
    X = np.array([[1.0], [2.0]])
    Y = np.array([[1.0], [3.0]])
    test = sp.csr_matrix(np.array([[2.0, 0.0], [0.0, 5.0]]))
    # predictions offset + x.y: 1 + 1 = 2 (exact) and 1 + 6 = 7 -> clipped to 5 (exact)
    assert metrics.rating_rmse(X, Y, test, offset=1.0, clip=(1, 5)) == pytest.approx(0.0)
    assert metrics.rating_rmse(X, Y, test, offset=1.0) == pytest.approx(np.sqrt(4 / 2))


def test_top_n_excludes_seen_breaks_ties_and_pads():
    X = np.array([[1.0], [1.0]])
    Y = np.array([[1.0], [2.0], [2.0], [0.5]])
    seen = sp.csr_matrix(np.array([[0, 1, 0, 0], [1, 1, 1, 0]]))
    idx, score = top_n_indices(X, Y, seen, n=3)
    assert idx[0].tolist() == [2, 0, 3]          # item 1 is seen; the rest by score
    assert idx[1].tolist() == [3, -1, -1]        # only item 3 unseen
    assert np.isneginf(score[1, 1:]).all()
    # ties broken by the lower item index
    idx2, _ = top_n_indices(X[:1], Y, None, n=2)
    assert idx2[0].tolist() == [1, 2]
    df = top_n(X, Y, seen, n=3, user_ids=np.array([10, 20]), item_ids=np.array(["a", "b", "c", "d"]))
    assert list(df.columns) == ["user_id", "item_id", "rank", "score"]
    assert df[df.user_id == 10].item_id.tolist() == ["c", "a", "d"]
    assert df[df.user_id == 20][["item_id", "rank"]].values.tolist() == [["d", 1]]
