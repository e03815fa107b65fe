"""Settings every DAG of the platform shares, so owner, retries and start date are said once."""

from __future__ import annotations

from datetime import datetime, timedelta

#: Passed as `default_args` by every DAG: one owner, and a retry before a task counts as failed.
DEFAULT_ARGS = {"owner": "osr", "retries": 1, "retry_delay": timedelta(minutes=5)}

#: The keyword arguments of @dag that every pipeline uses the same way.
DAG_DEFAULTS = {
    "start_date": datetime(2026, 1, 1),
    "catchup": False,
    "max_active_runs": 1,
    "default_args": DEFAULT_ARGS,
}
