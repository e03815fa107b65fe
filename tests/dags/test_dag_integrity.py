"""Every DAG file in dags/ imports and defines DAGs that an operator can read in the UI: documented
(naming each task), tagged, owned, retried, time-limited and on a sensible schedule.

Parametrized per DAG file (the Astronomer template's way), so one broken DAG is one failure with its
name, and a DAG file added by anyone is checked without being listed here.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from croniter import croniter

from dags.common.defaults import OWNER, SCHEDULES

DAGS = Path(__file__).resolve().parents[2] / "dags"
EXPECTED = {"osr_nightly_retrain", "osr_propensity_retrain", "qos_random_walk_refresh"}
#: A scheduled DAG runs at least weekly and at most every 5 minutes (each run costs the scheduler and a fresh
#: interpreter per task; anything more frequent is the stream's job).
MIN_GAP, MAX_GAP = timedelta(minutes=5), timedelta(days=7)


def _dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS))


_BAG = _dagbag()


def dag_files() -> list[Path]:
    return sorted(p for p in DAGS.glob("*.py") if p.name != "__init__.py")


def _dags_in(path: Path) -> list:
    return [d for d in _BAG.dags.values() if Path(d.fileloc).name == path.name]


def _run_times(schedule, count: int = 8) -> list[datetime]:
    """The next `count` start times of a cron string or timedelta schedule, from a fixed day."""
    start = datetime(2026, 3, 2, tzinfo=timezone.utc)
    if isinstance(schedule, timedelta):
        return [start + i * schedule for i in range(count)]
    it = croniter(schedule, start)
    return [it.get_next(datetime) for _ in range(count)]


def _schedule_problem(schedule) -> str | None:
    """Why a schedule is not sensible, or None. Asset-triggered schedules are fine as they are."""
    if schedule is None or schedule == "@once":
        return f"schedule={schedule!r}: the DAG never runs unless someone triggers it"
    if not isinstance(schedule, (str, timedelta)):
        return None  # an asset condition or a custom timetable: runs when its data arrives
    if isinstance(schedule, str) and not croniter.is_valid(schedule):
        return f"schedule {schedule!r} is not a cron expression"
    times = _run_times(schedule)
    gaps = [b - a for a, b in zip(times, times[1:])]
    if min(gaps) < MIN_GAP or max(gaps) > MAX_GAP:
        return f"schedule {schedule!r} runs every {min(gaps)}..{max(gaps)}; expected between {MIN_GAP} and {MAX_GAP}"
    return None


@pytest.mark.parametrize("path", dag_files(), ids=lambda p: p.name)
def test_dag_file_imports(path):
    errors = {k: v for k, v in _BAG.import_errors.items() if Path(k).name == path.name}
    assert not errors, errors


@pytest.mark.parametrize("path", dag_files(), ids=lambda p: p.name)
def test_dag_file_defines_a_dag(path):
    assert _dags_in(path), f"{path.name} defines no DAG (one pipeline per file)"


def test_expected_dags_present():
    assert EXPECTED <= set(_BAG.dag_ids)


@pytest.mark.parametrize("path", dag_files(), ids=lambda p: p.name)
def test_dag_is_documented_owned_tagged_retried_and_scheduled(path):
    for dag in _dags_in(path):
        where = f"{dag.dag_id} ({path.name})"
        assert dag.tags, f"{where}: no tags"
        assert dag.doc_md and len(dag.doc_md.strip()) > 100, f"{where}: no doc_md worth reading"
        missing = [t.task_id for t in dag.tasks if t.task_id not in dag.doc_md]
        assert not missing, f"{where}: doc_md does not explain tasks {missing}"
        assert (problem := _schedule_problem(dag.schedule)) is None, f"{where}: {problem}"
        assert dag.catchup is False, f"{where}: catchup would replay every day since start_date"
        assert dag.dagrun_timeout is not None, f"{where}: a stuck run would block the next ones"
        for t in dag.tasks:
            assert t.owner == OWNER, f"{where}: {t.task_id} owner {t.owner!r}"
            assert t.retries >= 1, f"{where}: {t.task_id} has retries={t.retries}"
            assert t.execution_timeout is not None, f"{where}: {t.task_id} may hang forever"


@pytest.mark.parametrize("dag_id", sorted(SCHEDULES))
def test_platform_dags_use_the_shared_timetable(dag_id):
    assert _BAG.dags[dag_id].schedule == SCHEDULES[dag_id]


def test_platform_dags_never_start_in_the_same_minute():
    """They all write the one store: two starting together would queue on its writer lock."""
    starts: dict[datetime, str] = {}
    for dag_id, schedule in SCHEDULES.items():
        for when in _run_times(schedule, count=30):
            if when < datetime(2026, 3, 3, tzinfo=timezone.utc):
                assert when not in starts, f"{dag_id} and {starts.get(when)} both start at {when:%H:%M}"
                starts[when] = dag_id


def test_schedule_check_rejects_what_it_should():
    """The schedule rule itself: manual-only, every minute and yearly are refused; nightly passes."""
    assert _schedule_problem(None) and _schedule_problem("* * * * *") and _schedule_problem("0 0 1 1 *")
    assert _schedule_problem("not a cron") and _schedule_problem(timedelta(minutes=1))
    assert _schedule_problem("0 2 * * *") is None and _schedule_problem(timedelta(hours=6)) is None


@pytest.mark.parametrize("path", dag_files(), ids=lambda p: p.name)
def test_dag_file_stays_thin(path):
    """DAG files call pipelines; they hold no SQL, no store access and no model code."""
    text = path.read_text()
    assert "import duckdb" not in text and "SELECT " not in text and "import lightgbm" not in text
