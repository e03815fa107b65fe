"""DuckDB connection and numbered SQL migrations.

DuckDB allows one writing process per file, so only the sink and batch tasks
call `connect()` for writing; stream workers read published Parquet snapshots.
"""

from __future__ import annotations

import re
from pathlib import Path

import duckdb

from pipelines import config

MIGRATIONS_DIR = config.PROJECT_ROOT / "sql" / "migrations"
_MIGRATION_NAME = re.compile(r"^\d{3}_[a-z0-9_]+\.sql$")


def connect(path: str | Path | None = None, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """Open the store (OSR_DUCKDB_PATH unless `path` is given), creating its folder."""
    p = Path(path) if path is not None else config.path("OSR_DUCKDB_PATH", create=True)
    if not read_only:
        p.parent.mkdir(parents=True, exist_ok=True)
    elif not p.exists():
        raise FileNotFoundError(f"DuckDB store {p} does not exist yet: run `osr db migrate` first")
    return duckdb.connect(str(p), read_only=read_only)


def migration_files() -> list[Path]:
    """The migrations in the order they apply (by their three-digit number)."""
    files = sorted(MIGRATIONS_DIR.glob("*.sql"))
    bad = [f.name for f in files if not _MIGRATION_NAME.match(f.name)]
    if bad:
        raise ValueError(f"migration names must look like 001_name.sql: {bad}")
    return files


def migrate(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Apply every migration not applied yet, each in its own transaction; returns the names applied now."""
    con.execute("CREATE SCHEMA IF NOT EXISTS meta")
    con.execute(
        "CREATE TABLE IF NOT EXISTS meta.migrations (name VARCHAR PRIMARY KEY, applied_at TIMESTAMP DEFAULT now())"
    )
    done = {r[0] for r in con.execute("SELECT name FROM meta.migrations").fetchall()}
    applied = []
    for f in migration_files():
        if f.name in done:
            continue
        con.execute("BEGIN")
        try:
            con.execute(f.read_text())
            con.execute("INSERT INTO meta.migrations (name) VALUES (?)", [f.name])
            con.execute("COMMIT")
        except Exception as exc:
            con.execute("ROLLBACK")
            raise RuntimeError(f"migration {f.name} failed: {exc}") from exc
        applied.append(f.name)
    return applied


def scalar(con: duckdb.DuckDBPyConnection, sql: str, params=None):
    """First column of the first row. Drains the result: DuckDB 2.0 refuses new work on a connection
    while a fetchone() result is unfinished."""
    rows = con.execute(sql, params or []).fetchall()
    return rows[0][0] if rows else None


def upsert_ignore(con: duckdb.DuckDBPyConnection, table: str, df, key_columns: list[str] | None = None) -> int:
    """Insert the rows of `df` whose primary key is not in `table` yet; returns how many were new.

    Idempotent by construction: replaying a batch (e.g. after a crash before the
    Kafka commit) inserts nothing twice.
    """
    if len(df) == 0:
        return 0
    before = scalar(con, f"SELECT count(*) FROM {table}")
    con.register("_upsert_batch", df)
    failed = False
    try:
        cols = ", ".join(f'"{c}"' for c in df.columns)
        if key_columns:
            # de-duplicate inside the batch too (at-least-once delivery repeats messages)
            keys = ", ".join(f'"{c}"' for c in key_columns)
            src = f"SELECT {cols} FROM _upsert_batch QUALIFY row_number() OVER (PARTITION BY {keys}) = 1"
        else:
            src = f"SELECT {cols} FROM _upsert_batch"
        con.execute(f"INSERT INTO {table} ({cols}) {src} ON CONFLICT DO NOTHING")
    except Exception:
        failed = True
        raise
    finally:
        try:
            con.unregister("_upsert_batch")
        except Exception:
            # inside an aborted transaction unregister fails too; the insert's error is the one to see
            if not failed:
                raise
    return scalar(con, f"SELECT count(*) FROM {table}") - before


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
