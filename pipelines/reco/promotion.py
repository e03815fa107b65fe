"""The promotion policy: when a nightly candidate may replace the live model.

Kept apart from the training tasks so the rule is read, tested and changed in one place.
Guarded: hold-out precision@10 of the preference model and AUC of the propensity model.
MAP@10 and log-loss are recorded with every candidate but do not decide.
"""

from __future__ import annotations


#: How much worse than the live model a candidate may score and still be promoted: fresh data
#: moves hold-out figures a little from night to night; a real regression moves them more.
PROMOTION_TOLERANCE = {"precision_at_10": 0.01, "auc": 0.01}


def candidate_metrics(meta: dict) -> dict:
    return {"precision_at_10": meta["preferences_model"]["holdout"]["precision_at_10"],
            "map_at_10": meta["preferences_model"]["holdout"]["map_at_10"],
            "auc": meta["propensity_metrics"]["auc"], "log_loss": meta["propensity_metrics"]["log_loss"]}


def quality_verdict(candidate: dict, live: dict | None) -> tuple[bool, str]:
    """Promote only if no tracked metric dropped by more than its tolerance against the live model."""
    if not live:
        return True, "no live model yet"
    drops = [f"{k} {candidate[k]:.4f} < live {live[k]:.4f} - {tol}" for k, tol in PROMOTION_TOLERANCE.items()
             if k in live and candidate[k] < live[k] - tol]
    return (False, "quality dropped: " + "; ".join(drops)) if drops else (True, "quality held")
