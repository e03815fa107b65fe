"""The expectation suites that gate each hand-off; each says what a downstream step relies on."""

from __future__ import annotations

import great_expectations as gx

E = gx.expectations


def interactions(known_users: list[str], known_items: list[str]) -> list:
    """ALS input: every row names a known person and item with a positive weight, once."""
    return [
        E.ExpectTableRowCountToBeBetween(min_value=1),
        E.ExpectColumnValuesToBeUnique(column="interaction_id"),
        *[E.ExpectColumnValuesToNotBeNull(column=c) for c in ("interaction_id", "user_id", "item_id", "weight", "ts")],
        E.ExpectColumnValuesToBeInSet(column="user_id", value_set=known_users),
        E.ExpectColumnValuesToBeInSet(column="item_id", value_set=known_items),
        E.ExpectColumnValuesToBeBetween(column="weight", min_value=0, strict_min=True, max_value=1e6),
    ]


def propensity_training() -> list:
    """Propensity input: labels are 0/1, and no feature is from after its outcome (point-in-time)."""
    return [
        E.ExpectTableRowCountToBeBetween(min_value=100),
        E.ExpectColumnValuesToBeInSet(column="label", value_set=[0, 1]),
        E.ExpectColumnPairValuesAToBeGreaterThanB(column_A="outcome_ts", column_B="feature_ts", or_equal=True),
        E.ExpectColumnValuesToNotBeNull(column="category"),
        E.ExpectColumnValuesToBeBetween(column="speed_mps", min_value=0, max_value=100),
        E.ExpectColumnMeanToBeBetween(column="label", min_value=0.001, max_value=0.999),
    ]


def topn(known_users: list[str], known_items: list[str], n: int) -> list:
    """What the stream serves: every listed person has n distinct known items with finite scores."""
    return [
        E.ExpectColumnValuesToBeInSet(column="user_id", value_set=known_users),
        E.ExpectColumnValuesToBeInSet(column="item_id", value_set=known_items),
        E.ExpectCompoundColumnsToBeUnique(column_list=["user_id", "item_id"]),
        E.ExpectCompoundColumnsToBeUnique(column_list=["user_id", "rank"]),
        E.ExpectColumnValuesToBeBetween(column="rank", min_value=1, max_value=n),
        E.ExpectColumnValuesToBeBetween(column="preference", min_value=0, max_value=1),
        E.ExpectColumnValuesToNotBeNull(column="score"),
        E.ExpectColumnValuesToBeBetween(column="score", min_value=-1e6, max_value=1e6),
        E.ExpectColumnUniqueValueCountToBeBetween(column="user_id", min_value=1),
    ]


def topn_per_person(n: int) -> list:
    """One row per person of the top-N: each has exactly n distinct items (a short or padded list is a defect)."""
    return [
        E.ExpectTableRowCountToBeBetween(min_value=1),
        E.ExpectColumnValuesToBeBetween(column="items", min_value=n, max_value=n),
        E.ExpectColumnValuesToBeBetween(column="distinct_items", min_value=n, max_value=n),
    ]


def osr_scores(known_items: list[str]) -> list:
    """Scores on recent states, before the [0, 1] clip the stream applies: the snapshot's scaling range
    must cover what it will see (at most 1 % of scores outside it), propensities are probabilities,
    raw scores finite and non-negative, every item known."""
    return [
        E.ExpectTableRowCountToBeBetween(min_value=1),
        E.ExpectColumnValuesToNotBeNull(column="raw_score"),
        E.ExpectColumnValuesToBeBetween(column="propensity", min_value=0, max_value=1),
        E.ExpectColumnValuesToBeBetween(column="raw_score", min_value=0, max_value=1),
        E.ExpectColumnValuesToBeBetween(column="scaled_unclipped", min_value=0, max_value=1, mostly=0.99),
        E.ExpectColumnValuesToBeInSet(column="item_id", value_set=known_items),
    ]
