"""pipelines.store.db: idempotent numbered migrations and insert-if-new upserts."""

from __future__ import annotations

import duckdb
import pandas as pd
import pytest

from pipelines.store import db


@pytest.fixture
def con(tmp_path):
    c = db.connect(tmp_path / "t.duckdb")
    yield c
    c.close()


def test_connect_defaults_to_osr_duckdb_path(osr_home):
    c = db.connect()
    c.close()
    assert (osr_home / "osr.duckdb").exists()
    ro = db.connect(read_only=True)
    assert db.scalar(ro, "SELECT 41 + 1") == 42
    ro.close()


def test_read_only_connect_needs_an_existing_store(tmp_path):
    with pytest.raises(FileNotFoundError, match="osr db migrate"):
        db.connect(tmp_path / "none.duckdb", read_only=True)


def test_migrate_is_idempotent_and_recorded(tmp_path):
    path = tmp_path / "t.duckdb"
    names = [f.name for f in db.migration_files()]
    assert names[0] == "001_core_schemas.sql" and names == sorted(names)
    c = db.connect(path)
    assert db.migrate(c) == names
    assert db.migrate(c) == []
    c.close()
    c = db.connect(path)  # a new process finds the store up to date
    assert db.migrate(c) == []
    assert [r[0] for r in c.execute("SELECT name FROM meta.migrations ORDER BY name").fetchall()] == names
    assert db.scalar(c, "SELECT count(*) FROM meta.migrations WHERE applied_at IS NOT NULL") == len(names)
    tables = {r[0] for r in c.execute(
        "SELECT schema_name || '.' || table_name FROM duckdb_tables()").fetchall()}
    assert {"ref.users", "features.state_features", "stream.osr_scores", "stream.deadletter",
            "tuner.rules", "ops.sink_batches"} <= tables
    c.close()


@pytest.mark.parametrize("bad", ["1_short.sql", "001-dash.sql", "001_Upper.sql", "abc_name.sql"])
def test_badly_named_migration_is_rejected(tmp_path, monkeypatch, con, bad):
    mig = tmp_path / "migrations"
    mig.mkdir()
    (mig / "001_fine.sql").write_text("CREATE TABLE IF NOT EXISTS fine (a INTEGER);")
    (mig / bad).write_text("CREATE TABLE IF NOT EXISTS bad (a INTEGER);")
    monkeypatch.setattr(db, "MIGRATIONS_DIR", mig)
    with pytest.raises(ValueError, match=bad.replace(".", r"\.")):
        db.migrate(con)
    assert db.scalar(con, "SELECT count(*) FROM meta.migrations") == 0


def test_migrations_apply_in_number_order_and_a_failure_rolls_back(tmp_path, monkeypatch, con):
    mig = tmp_path / "migrations"
    mig.mkdir()
    (mig / "010_second.sql").write_text("INSERT INTO first_t VALUES (2);")
    (mig / "002_first.sql").write_text("CREATE TABLE first_t (a INTEGER); INSERT INTO first_t VALUES (1);")
    (mig / "020_broken.sql").write_text("CREATE TABLE half_t (a INTEGER); SELECT * FROM no_such_table;")
    monkeypatch.setattr(db, "MIGRATIONS_DIR", mig)
    with pytest.raises(RuntimeError, match="020_broken.sql"):
        db.migrate(con)
    assert [r[0] for r in con.execute("SELECT name FROM meta.migrations ORDER BY name").fetchall()] == \
        ["002_first.sql", "010_second.sql"]
    assert con.execute("SELECT a FROM first_t ORDER BY a").fetchall() == [(1,), (2,)]
    assert db.scalar(con, "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'half_t'") == 0
    (mig / "020_broken.sql").write_text("CREATE TABLE half_t (a INTEGER);")
    assert db.migrate(con) == ["020_broken.sql"]


def stores(ids, cats=None):
    cats = cats or [f"c{k}" for k in range(len(ids))]
    return pd.DataFrame({"store_id": ids, "category": cats, "x": [1.0] * len(ids), "y": [2.0] * len(ids)})


def test_upsert_ignore_dedups_within_and_across_batches(con):
    db.migrate(con)
    assert db.upsert_ignore(con, "ref.stores", stores(["a", "b", "a"], ["first", "b", "again"]), ["store_id"]) == 2
    assert db.upsert_ignore(con, "ref.stores", stores(["b", "c"], ["changed", "c"]), ["store_id"]) == 1
    assert db.upsert_ignore(con, "ref.stores", stores(["a", "b", "c"]), ["store_id"]) == 0
    rows = dict(con.execute("SELECT store_id, category FROM ref.stores").fetchall())
    assert set(rows) == {"a", "b", "c"}
    assert rows["b"] == "b" and rows["c"] == "c"  # known keys are ignored, never overwritten
    assert rows["a"] in ("first", "again")


def test_upsert_ignore_without_key_columns_relies_on_primary_key(con):
    db.migrate(con)
    assert db.upsert_ignore(con, "ref.stores", stores(["a", "b"])) == 2
    assert db.upsert_ignore(con, "ref.stores", stores(["a", "b", "d"])) == 1
    assert db.scalar(con, "SELECT count(*) FROM ref.stores") == 3


def test_upsert_ignore_empty_frame(con):
    db.migrate(con)
    assert db.upsert_ignore(con, "ref.stores", stores([]), ["store_id"]) == 0


def test_upsert_ignore_column_order_does_not_matter(con):
    db.migrate(con)
    df = stores(["a"])[["y", "x", "category", "store_id"]]
    assert db.upsert_ignore(con, "ref.stores", df, ["store_id"]) == 1
    assert con.execute("SELECT store_id, category, x, y FROM ref.stores").fetchall() == [("a", "c0", 1.0, 2.0)]


def test_upsert_ignore_reports_constraint_errors(con):
    db.migrate(con)
    with pytest.raises(duckdb.ConstraintException):
        db.upsert_ignore(con, "ref.stores", stores([None]), ["store_id"])


def test_upsert_ignore_reports_constraint_errors_inside_a_transaction(con):
    db.migrate(con)
    con.execute("BEGIN")
    try:
        with pytest.raises(duckdb.ConstraintException):
            db.upsert_ignore(con, "ref.stores", stores([None]), ["store_id"])
    finally:
        con.execute("ROLLBACK")


def test_scalar_drains_so_the_connection_stays_usable(con):
    assert db.scalar(con, "SELECT * FROM range(5)") == 0
    assert db.scalar(con, "SELECT ? * 2", [21]) == 42
    assert db.scalar(con, "SELECT 1 WHERE false") is None
