"""filtering_error: RMSE of raw vs filtered against truth."""

import math

import numpy as np
import pytest

from pipelines.filtering.accuracy import filtering_error


def test_known_values_2d():
    truth = np.zeros((4, 2))
    noisy = np.array([[3.0, 4.0]] * 4)      # 5 m off each
    filt = np.array([[0.0, 1.0]] * 4)       # 1 m off each
    e = filtering_error(truth, noisy, filt)
    assert e == {"n": 4, "rmse_raw": 5.0, "rmse_filtered": 1.0, "ratio": 0.2, "improvement": 5.0}


def test_nulls_and_mask_1d():
    truth = [60.0, 60.0, 60.0, 60.0]
    noisy = [64.0, None, 56.0, 160.0]
    filt = [61.0, 61.0, 59.0, 62.0]
    e = filtering_error(truth, noisy, filt, mask=[True, True, True, False])
    assert e["n"] == 3
    assert e["rmse_raw"] == pytest.approx(4.0)            # the null is left out of the raw RMSE
    assert e["rmse_filtered"] == pytest.approx(1.0)


def test_shape_mismatch_raises():
    with pytest.raises(ValueError):
        filtering_error(np.zeros((3, 2)), np.zeros((3, 2)), np.zeros(3))


def test_perfect_filter():
    e = filtering_error([1.0, 2.0], [1.5, 2.5], [1.0, 2.0])
    assert e["rmse_filtered"] == 0.0 and math.isinf(e["improvement"])
