"""Settings every DAG of the platform shares, so owner, retries, timeouts and the day's timetable are said once."""

from __future__ import annotations

from datetime import datetime, timedelta

#: Who answers for the platform's DAGs (the Owner column of the UI, and `default_args["owner"]`).
OWNER = "osr"

#: Passed as `default_args` by every DAG: one owner, a retry before a task counts as failed (a busy store
#: or a broker restart is usually gone five minutes later), and a task that hangs is failed after an hour.
DEFAULT_ARGS = {
    "owner": OWNER,
    "retries": 1,
    "retry_delay": timedelta(minutes=5),
    "execution_timeout": timedelta(hours=1),
}

#: When each platform DAG runs (UTC cron). Staggered so no two start in the same minute: the model DAGs
#: and the QoS refresh all write the one store, and on a small machine they also share its cores.
#:  - 02:00 the nightly retrain (after the day's outcomes are in, before people wake up);
#:  - 03:30 the QoS refresh (after the nightly retrain has finished on a typical night);
#:  - 00/06/12/18:00 the propensity refresh (outcomes arrive all day; the preference model stays).
SCHEDULES = {
    "osr_nightly_retrain": "0 2 * * *",
    "qos_random_walk_refresh": "30 3 * * *",
    "osr_propensity_retrain": "0 */6 * * *",
    "capacity_planning": "15 * * * *",  # hourly, clear of the :00 starts
    "data_docs_refresh": "20 4 * * *",  # after the nightly and the QoS refresh, clear of capacity's :15
}

#: The keyword arguments of @dag that every pipeline uses the same way. `dagrun_timeout` bounds a whole
#: run, so a stuck run cannot hold `max_active_runs=1` (and the next night's run) forever.
DAG_DEFAULTS = {
    "start_date": datetime(2026, 1, 1),
    "catchup": False,
    "max_active_runs": 1,
    "dagrun_timeout": timedelta(hours=4),
    "default_args": DEFAULT_ARGS,
}
