"""The Great Expectations gate on QoS observations: what the random-walk refresh relies on.

- every row names a known user and service (ids inside the node tables' ranges), once per metric;
- the metric is rt or tp, the value is present and physically plausible for it (response
  time 0..RT_MAX s -- WS-DREAM caps at 20 s; throughput 0..TP_MAX kbps);
- there is enough data to fit anything (at least MIN_ROWS rows).
"""

from __future__ import annotations

import pandas as pd

from pipelines.quality.gate import GateResult, run_gate

RT_MAX = 60.0
TP_MAX = 100_000.0
MIN_ROWS = 10


def observation_expectations(n_users: int, n_services: int, metric: str) -> list:
    import great_expectations as gx

    E = gx.expectations
    vmax = RT_MAX if metric == "rt" else TP_MAX
    return [
        E.ExpectTableRowCountToBeBetween(min_value=MIN_ROWS),
        *[E.ExpectColumnValuesToNotBeNull(column=c) for c in ("user_id", "service_id", "metric", "value")],
        E.ExpectColumnValuesToBeBetween(column="user_id", min_value=0, max_value=max(n_users - 1, 0)),
        E.ExpectColumnValuesToBeBetween(column="service_id", min_value=0, max_value=max(n_services - 1, 0)),
        E.ExpectColumnValuesToBeInSet(column="metric", value_set=[metric]),
        E.ExpectColumnValuesToBeBetween(column="value", min_value=0, max_value=vmax),
        E.ExpectCompoundColumnsToBeUnique(column_list=["user_id", "service_id", "metric"]),
    ]


def gate_observations(df: pd.DataFrame, n_users: int, n_services: int, metric: str) -> GateResult:
    """Validate observation rows of one metric; never raises on bad data (see GateResult.success)."""
    cols = [c for c in ("user_id", "service_id", "metric", "value") if c in df.columns]
    return run_gate(df[cols].copy(), f"qos_observations_{metric}", observation_expectations(n_users, n_services, metric))
