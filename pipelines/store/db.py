"""The store: a DuckLake (Parquet data files + a catalog database), its numbered SQL migrations, and
idempotent writes.

Why DuckLake and not one DuckDB file: DuckDB locks its file per process, so while the sink held it
no batch task, refresh or analyst could open the store, not even read-only. A DuckLake keeps its
tables as Parquet files under OSR_STORE_DATA and its catalog (snapshots, file lists, small inlined
batches) in SQLite locally or PostgreSQL on a cluster (OSR_STORE_CATALOG); every process opens its
own in-memory DuckDB, attaches the lake and gets snapshot isolation: the sink ingests while the
nightly tasks and `osr query` read and write.

What that costs: DuckLake has no PRIMARY KEY, UNIQUE or CHECK constraints (NOT NULL and DEFAULT it
has). So each table's key is declared here (`KEYS`, the one place; the migrations repeat it as a
`-- key:` comment) and the writers keep it: `upsert_ignore` inserts only rows whose key is new (an
anti-join in the caller's transaction), `replace_rows` deletes by key and inserts. The CHECKs the
tables had are kept as `CHECKS`, applied by those two writers to what they insert.

Concurrent writers: DuckLake lets two transactions insert into one table at once, so two
insert-if-new writers of the same key could both insert it (seen on a PostgreSQL catalog). With a
SQLite catalog a write transaction instead fails at commit ("database is locked") whenever any other
process committed since it began, so a long batch write would lose to the sink's commits every
second, over and over. `transaction()` therefore holds a writer lock for the whole unit of work: a
file lock beside a SQLite catalog, a transaction-scoped advisory lock in a PostgreSQL one (which
also works across machines). Writers queue, readers never wait. It also retries the unit of work,
bounded, when a commit loses a race anyway (a writer that does not take the lock; see
`is_conflict`). Write through `transaction()`.
"""

from __future__ import annotations

import fcntl
import importlib.util
import os
import logging
import random
import re
import threading
import time
import uuid
import weakref
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, TypeVar

import duckdb

from pipelines import config

log = logging.getLogger(__name__)

MIGRATIONS_DIR = config.PROJECT_ROOT / "sql" / "migrations"
_MIGRATION_NAME = re.compile(r"^\d{3}_[a-z0-9_]+\.sql$")

#: The name the lake is attached under; `USE lake` makes `schema.table` names resolve in it.
LAKE = "lake"

#: The key of every table the migrations create (DuckLake cannot declare one). The writers keep them
#: unique; tests/unit/test_core_store_db.py fails when a table has no entry here, or when an entry
#: disagrees with the `-- key:` comment in its migration.
KEYS: dict[str, tuple[str, ...]] = {
    "meta.migrations": ("name",),
    "ref.users": ("user_id",),
    "ref.devices": ("device_id",),
    "ref.items": ("item_id",),
    "ref.stores": ("store_id",),
    "events.interactions": ("interaction_id",),
    "events.outcomes": ("outcome_id",),
    "events.state_truth": ("event_id",),
    "features.state_features": ("event_id",),
    "reco.model_registry": ("model_id",),
    "reco.topn": ("model_id", "user_id", "rank"),
    "stream.osr_scores": ("score_id",),
    "stream.notifications": ("notification_id",),
    "stream.deadletter": ("deadletter_id",),
    "stream.tuner_decisions": ("event_id",),
    "tuner.rules": ("scope", "scope_key"),
    "tuner.preferences": ("user_id",),
    "tuner.rule_changes": ("version", "scope", "scope_key"),
    "tuner.settings": ("name",),
    "ops.runs": ("run_id",),
    "ops.sink_batches": ("batch_id",),
    "qos.users": ("user_id",),
    "qos.services": ("service_id",),
    "qos.observations": ("user_id", "service_id", "metric"),
    "qos.runs": ("run_id",),
    "qos.predictions": ("metric", "user_id", "service_id"),
    "qos.recommendations": ("metric", "user_id", "rank"),
    "qos.model_choice": ("run_id", "model"),
    "ops.capacity_samples": ("sample_id",),
    "ops.capacity_worker_samples": ("sample_id", "worker"),
    "ops.capacity_decisions": ("decision_id",),
    "ops.capacity_model": ("model_id", "hour"),
    "ops.admission_plans": ("version",),
    "ops.repartition_runs": ("run_id",),
}

#: The CHECK constraints the tables had before DuckLake (SQL predicates over one row), enforced by
#: `upsert_ignore` and `replace_rows` on the rows they insert.
CHECKS: dict[str, tuple[str, ...]] = {
    "ref.devices": ("device_type IN ('phone', 'watch')",),
    "reco.model_registry": ("status IN ('candidate', 'live', 'rejected', 'retired')",),
    "tuner.rules": ("scope IN ('global', 'class', 'item', 'user', 'user_item', 'person_class')",
                    "threshold BETWEEN 0 AND 1", "min_gap_s >= 0"),
    "qos.observations": ("metric IN ('rt', 'tp')",),
}

#: pip package holding each extension (the wheels carry extensions/v<duckdb version>/<name>.duckdb_extension).
EXTENSION_PACKAGES = {
    "ducklake": "duckdb_extension_ducklake",
    "sqlite_scanner": "duckdb_extension_sqlite_scanner",
    "postgres_scanner": "duckdb_extension_postgres_scanner",
}
_CATALOG_EXTENSION = {"sqlite": "sqlite_scanner", "postgres": "postgres_scanner"}

#: SQLite catalog: how long a writer waits for the catalog's write lock before SQLite says "locked".
SQLITE_BUSY_TIMEOUT_MS = 10_000
#: Commit attempts of one unit of work before a conflict is raised (the first try included).
COMMIT_ATTEMPTS = 12
_RETRY_FIRST_S, _RETRY_MAX_S = 0.02, 2.0
#: How long `transaction()` waits for the writer lock before giving up (TimeoutError).
WRITER_LOCK_TIMEOUT_S = 600.0


def extension_file(name: str) -> Path:
    """The extension file inside its installed wheel (DuckDB's own download is not reachable here)."""
    pkg = EXTENSION_PACKAGES[name]
    hint = f"pip install {pkg.replace('_', '-')}=={duckdb.__version__}"
    spec = importlib.util.find_spec(pkg)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"DuckDB extension {name!r} is not installed: {hint}")
    f = Path(list(spec.submodule_search_locations)[0]) / "extensions" / f"v{duckdb.__version__}" / f"{name}.duckdb_extension"
    if not f.exists():
        raise RuntimeError(f"{f} does not exist: the {pkg} wheel must match duckdb {duckdb.__version__} ({hint})")
    return f


@dataclass(frozen=True)
class StoreLocation:
    """Where a lake lives: its catalog (`sqlite:<file>` or `postgres:<libpq connection string>`) and data folder."""

    catalog: str
    data_path: str

    @property
    def kind(self) -> str:
        kind = self.catalog.split(":", 1)[0]
        if kind not in _CATALOG_EXTENSION or ":" not in self.catalog:
            raise ValueError(f"store catalog {self.catalog!r}: expected sqlite:<file> or postgres:<connection string>")
        return kind

    @property
    def sqlite_file(self) -> Path | None:
        return Path(self.catalog.split(":", 1)[1]) if self.kind == "sqlite" else None

    def exists(self) -> bool | None:
        """Whether the catalog exists (None: cannot tell without connecting, e.g. PostgreSQL)."""
        return self.sqlite_file.exists() if self.kind == "sqlite" else None


def location(store: str | Path | None = None) -> StoreLocation:
    """The lake to open: the configured one (OSR_STORE_CATALOG, OSR_STORE_DATA), a catalog spec
    (`sqlite:...` / `postgres:...`, data from OSR_STORE_DATA), or a folder holding catalog.sqlite and data/."""
    if store is None:
        return StoreLocation(config.get("OSR_STORE_CATALOG"), config.get("OSR_STORE_DATA"))
    s = str(store)
    if s.startswith(("sqlite:", "postgres:")):
        return StoreLocation(s, config.get("OSR_STORE_DATA"))
    folder = Path(store)
    return StoreLocation(f"sqlite:{folder / 'catalog.sqlite'}", str(folder / "data"))


def _sql_str(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def connect(store: str | Path | None = None, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with the lake attached as `lake` and in use.

    `store`: see `location()`. A read-write open creates the lake when its catalog does not exist
    (then `migrate()` creates the tables); a read-only one needs it to exist and never blocks,
    nor is blocked by, writers in other processes.
    """
    loc = location(store)
    kind = loc.kind
    if read_only and loc.exists() is False:
        raise FileNotFoundError(f"the store catalog {loc.catalog} does not exist yet: run `osr db migrate` first")
    if not read_only:
        if loc.sqlite_file is not None:
            loc.sqlite_file.parent.mkdir(parents=True, exist_ok=True)
        if "://" not in loc.data_path:
            Path(loc.data_path).mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(":memory:", config={"autoinstall_known_extensions": False,
                                             "autoload_known_extensions": False})
    try:
        for ext in ("ducklake", _CATALOG_EXTENSION[kind]):
            con.execute(f"LOAD {_sql_str(str(extension_file(ext)))}")
        # normalised: the lake remembers its data path, and "a//b/" must be the same folder as "a/b/"
        data = loc.data_path if "://" in loc.data_path else os.path.normpath(loc.data_path)
        opts = [f"DATA_PATH {_sql_str(data.rstrip('/') + '/')}",
                f"DATA_INLINING_ROW_LIMIT {int(config.get('OSR_STORE_INLINE_ROWS'))}"]
        if read_only:
            opts.append("READ_ONLY")
        if kind == "sqlite":
            opts.append(f"META_BUSY_TIMEOUT {SQLITE_BUSY_TIMEOUT_MS}")
            if not read_only:
                # WAL: readers never block the writer and the writer never blocks readers
                opts.append("META_JOURNAL_MODE 'wal'")
        for attempt in range(1, 6):
            try:
                con.execute(f"ATTACH {_sql_str('ducklake:' + loc.catalog)} AS {LAKE} ({', '.join(opts)})")
                break
            except duckdb.Error as exc:
                if read_only and "does not exist" in str(exc):
                    raise FileNotFoundError(f"the store catalog {loc.catalog} holds no lake yet: run `osr db "
                                            f"migrate` first ({exc})") from exc
                creating_race = any(m in str(exc) for m in ("already exists", "duplicate key"))
                if not (is_conflict(exc) or creating_race) or attempt == 5:
                    raise  # (a race: two processes creating the same new lake at once)
                time.sleep(0.05 * attempt)
        con.execute(f"USE {LAKE}")
    except BaseException:
        con.close()
        raise
    if not read_only:
        _WRITER_LOCKS[con] = (loc.sqlite_file.with_name(loc.sqlite_file.name + ".writer.lock")
                              if loc.sqlite_file is not None else POSTGRES_LOCK)
    return con


# --- transactions that survive a lost commit race ---------------------------------------------

#: Lower-case fragments of the errors a lost race gives (seen with DuckLake 1.5.5 on SQLite: a
#: duckdb.TransactionException "Failed to commit: Failed to commit DuckLake transaction. Failed to
#: flush changes into DuckLake: database is locked" when another process committed since this
#: transaction read the catalog; duckdb.Error "... database is locked" on a read during a commit;
#: DuckLake's own "Transaction conflict ..." when two transactions touched the same table or schema
#: incompatibly; and PostgreSQL's serialization / deadlock errors).
CONFLICT_MARKERS = ("database is locked", "conflict", "concurrent", "maximum retry count",
                    "could not serialize", "deadlock detected")

T = TypeVar("T")


def is_conflict(exc: BaseException) -> bool:
    """Whether `exc` says another writer won a race (the work may simply be run again)."""
    if not isinstance(exc, duckdb.Error):
        return False
    msg = str(exc).lower()
    return any(m in msg for m in CONFLICT_MARKERS)


@dataclass
class WriteStats:
    """What this process's writers waited for (read by bench/store.py; `reset()` to start over)."""

    transactions: int = 0
    lock_waits: int = 0  # transactions that found the writer lock taken
    lock_wait_s: float = 0.0
    lock_wait_max_s: float = 0.0
    retries: int = 0  # units of work run again after a lost commit race
    retry_wait_s: float = 0.0

    def reset(self) -> None:
        self.__init__()


WRITE_STATS = WriteStats()

#: The writer lock of a PostgreSQL catalog: a transaction-scoped advisory lock taken on the catalog
#: connection DuckLake commits with (held from the start of the unit of work to its COMMIT/ROLLBACK).
POSTGRES_LOCK = "postgres"
_PG_LOCK_KEY = 0x05E_57_0E_1A4E  # any constant shared by every OSR writer
#: connection -> its writer lock: the lock file beside its SQLite catalog, or POSTGRES_LOCK (set by `connect`).
_WRITER_LOCKS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_held = threading.local()


def _writer_lock_of(con):
    try:
        return _WRITER_LOCKS.get(con)
    except TypeError:
        return None


def _count_wait(t0: float) -> None:
    waited = time.perf_counter() - t0
    if waited > 0.001:
        WRITE_STATS.lock_waits += 1
        WRITE_STATS.lock_wait_s += waited
        WRITE_STATS.lock_wait_max_s = max(WRITE_STATS.lock_wait_max_s, waited)


def _postgres_lock(con) -> None:
    """Inside a transaction on a PostgreSQL catalog: wait for the advisory writer lock (released by
    PostgreSQL when the transaction ends)."""
    t0 = time.perf_counter()
    con.execute(f"SELECT * FROM postgres_query({_sql_str('__ducklake_metadata_' + LAKE)}, "
                f"'SELECT pg_advisory_xact_lock({_PG_LOCK_KEY})::text')").fetchall()
    _count_wait(t0)


@contextmanager
def writer_lock(con: duckdb.DuckDBPyConnection, timeout_s: float = WRITER_LOCK_TIMEOUT_S) -> Iterator[None]:
    """Hold the store's writer lock file (SQLite catalogs; a PostgreSQL catalog's lock is taken inside the
    transaction, see `transaction`). Re-entrant per thread."""
    path = _writer_lock_of(con)
    held = getattr(_held, "paths", None)
    if held is None:
        held = _held.paths = set()
    if not isinstance(path, Path) or path in held:
        yield
        return
    with open(path, "a+") as f:
        t0 = time.perf_counter()
        delay = 0.001
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.perf_counter() - t0 > timeout_s:
                    raise TimeoutError(f"another writer has held the store's writer lock {path} for more than "
                                       f"{timeout_s:.0f} s") from None
                time.sleep(delay)
                delay = min(delay * 1.5, 0.02)
        _count_wait(t0)
        held.add(path)
        try:
            yield
        finally:
            held.discard(path)
            fcntl.flock(f, fcntl.LOCK_UN)


def _rollback_quietly(con) -> None:
    try:
        con.execute("ROLLBACK")
    except duckdb.Error:
        pass  # a failed COMMIT has already rolled back: "no transaction is active"


def transaction(con: duckdb.DuckDBPyConnection, work: Callable[[duckdb.DuckDBPyConnection], T], *,
                attempts: int = COMMIT_ATTEMPTS,
                on_retry: Callable[[int, BaseException, float], None] | None = None) -> T:
    """Run `work(con)` in one transaction, holding the writer lock, and commit; when the commit (or a
    statement) loses a race with another writer, roll back, wait (exponential backoff with jitter)
    and run `work` again, at most `attempts` times in all. Any other error rolls back and is raised.

    `work` must therefore be repeatable: it may run more than once, and only its last run counts
    (count rows from its return value, not from side effects). `on_retry(attempt, error, delay_s)`
    is told about each retry.
    """
    WRITE_STATS.transactions += 1
    for attempt in range(1, attempts + 1):
        with writer_lock(con):
            con.execute("BEGIN")
            try:
                if _writer_lock_of(con) == POSTGRES_LOCK:
                    _postgres_lock(con)
                result = work(con)
                con.execute("COMMIT")
                return result
            except Exception as exc:
                _rollback_quietly(con)
                if not is_conflict(exc) or attempt == attempts:
                    raise
                lost = exc
        delay = min(_RETRY_MAX_S, _RETRY_FIRST_S * 1.7 ** (attempt - 1)) * random.uniform(0.5, 1.0)
        log.debug("store: commit conflict (attempt %d/%d), retrying in %.3f s: %s", attempt, attempts, delay,
                  str(lost).splitlines()[-1][:200])
        WRITE_STATS.retries += 1
        WRITE_STATS.retry_wait_s += delay
        if on_retry is not None:
            on_retry(attempt, lost, delay)
        time.sleep(delay)
    raise AssertionError("unreachable")


def execute_write(con: duckdb.DuckDBPyConnection, sql: str, params=None) -> None:
    """One write statement as its own transaction, retried like `transaction()`."""
    transaction(con, lambda c: c.execute(sql, params or []))


# --- migrations --------------------------------------------------------------------------------

def migration_files() -> list[Path]:
    """The migrations in the order they apply (by their three-digit number)."""
    files = sorted(MIGRATIONS_DIR.glob("*.sql"))
    bad = [f.name for f in files if not _MIGRATION_NAME.match(f.name)]
    if bad:
        raise ValueError(f"migration names must look like 001_name.sql: {bad}")
    return files


def migrate(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Apply every migration not applied yet, each in its own transaction together with its row in
    meta.migrations (a table in the lake, so a migration and its record commit or fail together);
    returns the names applied now. Safe to run from several processes at once: a process that loses
    the race retries and then finds the migration recorded."""
    def setup(c):
        c.execute("CREATE SCHEMA IF NOT EXISTS meta")
        c.execute("CREATE TABLE IF NOT EXISTS meta.migrations (name VARCHAR NOT NULL, "
                  "applied_at TIMESTAMP NOT NULL DEFAULT now())")  # key: name

    if not scalar(con, "SELECT count(*) FROM duckdb_tables() WHERE database_name = ? AND schema_name = 'meta' "
                       "AND table_name = 'migrations'", [LAKE]):
        transaction(con, setup)
    files = migration_files()
    applied = []
    for f in files:
        def apply(c, f=f) -> bool:
            if scalar(c, "SELECT count(*) FROM meta.migrations WHERE name = ?", [f.name]):
                return False  # done already (perhaps by a concurrent process)
            c.execute(f.read_text())
            c.execute("INSERT INTO meta.migrations (name) VALUES (?)", [f.name])
            return True

        try:
            if transaction(con, apply):
                applied.append(f.name)
        except Exception as exc:
            raise RuntimeError(f"migration {f.name} failed: {exc}") from exc
    return applied


def lake_tables(con: duckdb.DuckDBPyConnection) -> set[str]:
    """Every table in the lake, as schema.table."""
    return {r[0] for r in con.execute(
        "SELECT schema_name || '.' || table_name FROM duckdb_tables() WHERE database_name = ?", [LAKE]).fetchall()}


def scalar(con: duckdb.DuckDBPyConnection, sql: str, params=None):
    """First column of the first row. Drains the result: DuckDB 2.0 refuses new work on a connection
    while a fetchone() result is unfinished."""
    rows = con.execute(sql, params or []).fetchall()
    return rows[0][0] if rows else None


# --- idempotent writes --------------------------------------------------------------------------

def table_key(table: str) -> tuple[str, ...]:
    try:
        return KEYS[table]
    except KeyError:
        raise KeyError(f"table {table!r} has no declared key: add it to pipelines.store.db.KEYS") from None


def _quoted(cols) -> str:
    return ", ".join(f'"{c}"' for c in cols)


class _Batch:
    """`df` registered under a unique name for the duration of a with-block."""

    def __init__(self, con, df):
        self.con, self.df, self.name = con, df, f"_batch_{uuid.uuid4().hex}"

    def __enter__(self) -> str:
        self.con.register(self.name, self.df)
        return self.name

    def __exit__(self, exc_type, exc, tb):
        try:
            self.con.unregister(self.name)
        except duckdb.Error:
            # inside an aborted transaction unregister can fail too; the statement's error is the one to see
            if exc is None:
                raise


def _check_rows(con, table: str, batch: str) -> None:
    for predicate in CHECKS.get(table, ()):
        n = scalar(con, f"SELECT count(*) FROM {batch} WHERE NOT coalesce(({predicate}), true)")
        if n:
            raise duckdb.ConstraintException(f"Constraint Error: CHECK constraint failed on {table}: {predicate} "
                                             f"({n} row(s))")


def upsert_ignore(con: duckdb.DuckDBPyConnection, table: str, df, key_columns: list[str] | None = None) -> int:
    """Insert the rows of `df` whose key (`key_columns`, default the table's declared key) is not in
    `table` yet, keeping one row per key of the batch itself; returns how many were new.

    Idempotent by construction: replaying a batch (e.g. after a crash before the Kafka commit)
    inserts nothing twice. Runs inside the caller's transaction (or autocommits alone); the
    anti-join reads the table at the transaction's snapshot, so concurrent writers of the same keys
    must run under `transaction()`, whose conflict retry re-reads.
    """
    key = list(key_columns or table_key(table))
    if len(df) == 0:
        return 0
    cols = _quoted(df.columns)
    keys = _quoted(key)
    on = " AND ".join(f't."{k}" = b."{k}"' for k in key)
    with _Batch(con, df) as batch:
        _check_rows(con, table, batch)
        src = f"SELECT {cols} FROM {batch} QUALIFY row_number() OVER (PARTITION BY {keys}) = 1"
        bcols = ", ".join(f'b."{c}"' for c in df.columns)
        rows = con.execute(f"INSERT INTO {table} ({cols}) SELECT {bcols} FROM ({src}) b "
                           f"ANTI JOIN {table} t ON {on}").fetchall()
    return int(rows[0][0]) if rows else 0


def replace_rows(con: duckdb.DuckDBPyConnection, table: str, df, key_columns: list[str] | None = None) -> int:
    """Delete the rows of `table` whose key is in `df`, then insert `df` (the last row per key wins):
    what `INSERT OR REPLACE` did with a primary key. Run it inside `transaction()` so readers never
    see the gap; returns the rows written."""
    key = list(key_columns or table_key(table))
    if len(df) == 0:
        return 0
    df = df.drop_duplicates(subset=key, keep="last")
    cols = _quoted(df.columns)
    on = " AND ".join(f'{table}."{k}" = b."{k}"' for k in key)
    with _Batch(con, df) as batch:
        _check_rows(con, table, batch)
        con.execute(f"DELETE FROM {table} USING {batch} b WHERE {on}")
        con.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM {batch}")
    return len(df)


# --- maintenance -------------------------------------------------------------------------------

def compact(con: duckdb.DuckDBPyConnection, keep_snapshots_days: float = 7.0,
            delete_files_after_s: float = 3600.0) -> dict[str, int]:
    """Keep the lake small and fast to read: write inlined rows (small commits the catalog holds) to
    Parquet, merge adjacent small files, expire snapshots older than `keep_snapshots_days` (time travel
    stops there) and delete the files nothing refers to any more once they have been unreferenced for
    `delete_files_after_s` (a running query may still read them). Safe beside running writers: each
    step is its own transaction, retried on a conflict. Returns counts per step."""
    def count(sql: str) -> Callable:
        return lambda c: int(scalar(c, sql) or 0)

    lake = _sql_str(LAKE)
    return {
        "rows_flushed": transaction(con, count(f"SELECT coalesce(sum(rows_flushed), 0) "
                                               f"FROM ducklake_flush_inlined_data({lake})")),
        "files_merged": transaction(con, count(f"SELECT coalesce(sum(files_processed), 0) "
                                               f"FROM ducklake_merge_adjacent_files({lake})")),
        "snapshots_expired": transaction(con, count(
            f"SELECT count(*) FROM ducklake_expire_snapshots({lake}, older_than => "
            f"now() - to_seconds({float(keep_snapshots_days) * 86400}))")),
        "files_deleted": transaction(con, count(
            f"SELECT count(*) FROM ducklake_cleanup_old_files({lake}, older_than => "
            f"now() - to_seconds({float(delete_files_after_s)}))")),
    }


#: Queries the pipelines read (sql/pipeline/) and the reports people run (sql/reports/).
PIPELINE_SQL = config.PROJECT_ROOT / "sql" / "pipeline"
REPORTS_SQL = config.PROJECT_ROOT / "sql" / "reports"


def run_sql_file(con: duckdb.DuckDBPyConnection, name: str, folder: Path = PIPELINE_SQL, **params):
    """Run FOLDER/NAME.sql (a pipeline query by default) with named $parameters; returns a DataFrame."""
    f = Path(folder) / f"{name}.sql"
    if not f.exists():
        raise FileNotFoundError(f"no query {name!r}: {f} does not exist")
    sql = f.read_text()
    return con.execute(sql, params).df() if params else con.execute(sql).df()
