"""The promotion rule: a candidate goes live only if no tracked metric dropped beyond its tolerance."""

import pytest

from pipelines.reco.promotion import PROMOTION_TOLERANCE, quality_verdict

LIVE = {"precision_at_10": 0.20, "map_at_10": 0.15, "auc": 0.70, "log_loss": 0.2}


def test_first_model_is_promoted():
    assert quality_verdict(dict(LIVE), None) == (True, "no live model yet")


def test_equal_or_better_is_promoted():
    assert quality_verdict(dict(LIVE), LIVE)[0]
    assert quality_verdict({**LIVE, "auc": 0.75, "precision_at_10": 0.3}, LIVE)[0]


def test_small_drop_within_tolerance_is_promoted():
    c = {**LIVE, "auc": LIVE["auc"] - PROMOTION_TOLERANCE["auc"] / 2}
    assert quality_verdict(c, LIVE)[0]


@pytest.mark.parametrize("metric", sorted(PROMOTION_TOLERANCE))
def test_drop_beyond_tolerance_is_rejected_and_named(metric):
    c = {**LIVE, metric: LIVE[metric] - 2 * PROMOTION_TOLERANCE[metric]}
    ok, why = quality_verdict(c, LIVE)
    assert not ok
    assert metric in why and "dropped" in why


def test_untracked_metric_does_not_block():
    assert quality_verdict({**LIVE, "log_loss": 9.9}, LIVE)[0]
