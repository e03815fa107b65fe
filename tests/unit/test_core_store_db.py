"""pipelines.store.db: the DuckLake store, idempotent numbered migrations, declared keys kept by the
writers (insert-if-new, replace-by-key), conflict retries and compaction."""

from __future__ import annotations

import re

import duckdb
import pandas as pd
import pytest

from pipelines.store import db


@pytest.fixture
def con(tmp_path):
    c = db.connect(tmp_path / "store")
    yield c
    c.close()


def test_connect_defaults_to_the_configured_lake(osr_home):
    c = db.connect()
    assert db.scalar(c, "SELECT current_database()") == db.LAKE
    c.close()
    assert (osr_home / "store" / "catalog.sqlite").exists() and (osr_home / "store" / "data").is_dir()
    ro = db.connect(read_only=True)
    assert db.scalar(ro, "SELECT 41 + 1") == 42
    ro.close()


def test_store_location_forms(osr_home, tmp_path, monkeypatch):
    assert db.location().catalog == f"sqlite:{osr_home / 'store' / 'catalog.sqlite'}"
    assert db.location(tmp_path / "s") == db.StoreLocation(f"sqlite:{tmp_path / 's' / 'catalog.sqlite'}",
                                                           str(tmp_path / "s" / "data"))
    monkeypatch.setenv("OSR_STORE_CATALOG", "postgres:dbname=osr host=db")
    assert db.location().kind == "postgres" and db.location().exists() is None
    with pytest.raises(ValueError, match="sqlite:<file> or postgres:"):
        db.StoreLocation("mysql:x", "d").kind


def test_read_only_connect_needs_an_existing_store(tmp_path):
    with pytest.raises(FileNotFoundError, match="osr db migrate"):
        db.connect(tmp_path / "none", read_only=True)
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "catalog.sqlite").write_bytes(b"")  # a catalog file that holds no lake
    with pytest.raises(FileNotFoundError, match="osr db migrate"):
        db.connect(tmp_path / "empty", read_only=True)


def test_read_only_connection_refuses_writes(tmp_path):
    c = db.connect(tmp_path / "s")
    db.migrate(c)
    c.close()
    ro = db.connect(tmp_path / "s", read_only=True)
    with pytest.raises(duckdb.Error, match="read-only"):
        ro.execute("INSERT INTO ref.stores VALUES ('a', 'c', 1, 2)")
    ro.close()


def test_read_only_open_beside_an_open_writer(tmp_path):
    """What the single DuckDB file could not do: the writer keeps its connection (and a transaction) open."""
    w = db.connect(tmp_path / "s")
    db.migrate(w)
    db.upsert_ignore(w, "ref.stores", stores(["a"]))
    w.execute("BEGIN")
    db.upsert_ignore(w, "ref.stores", stores(["b"]))
    ro = db.connect(tmp_path / "s", read_only=True)
    assert db.scalar(ro, "SELECT count(*) FROM ref.stores") == 1  # the committed row, not the open one
    w.execute("COMMIT")
    assert db.scalar(ro, "SELECT count(*) FROM ref.stores") == 2
    ro.close()
    w.close()


def test_migrate_is_idempotent_and_recorded(tmp_path):
    path = tmp_path / "store"
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
    tables = db.lake_tables(c)
    assert {"ref.users", "features.state_features", "stream.osr_scores", "stream.deadletter",
            "tuner.rules", "ops.sink_batches"} <= tables
    c.close()


# --- no constraints in DuckLake: the declared keys and checks --------------------------------------

def _code(sql: str) -> str:
    return "\n".join(line.split("--")[0] for line in sql.splitlines())


def test_every_table_the_migrations_create_has_a_declared_key(con):
    """A table added by a migration without an entry in db.KEYS (or a KEYS entry for a table that is
    gone) fails here: its writers would have no key to keep."""
    db.migrate(con)
    assert db.lake_tables(con) == set(db.KEYS)
    for table, key in db.KEYS.items():
        schema, name = table.split(".")
        cols = dict(con.execute("SELECT column_name, is_nullable FROM information_schema.columns "
                                "WHERE table_catalog = ? AND table_schema = ? AND table_name = ?",
                                [db.LAKE, schema, name]).fetchall())
        assert set(key) <= set(cols), (table, key)
        assert all(cols[k] == "NO" for k in key), f"{table}: key columns must be NOT NULL"


def test_key_and_check_comments_in_the_migrations_agree_with_the_declarations():
    keys, checks = {}, {}
    for f in db.migration_files():
        text = f.read_text()
        for m in re.finditer(r"^-- key: (.+)\nCREATE TABLE IF NOT EXISTS (\S+) \(", text, re.M):
            keys[m.group(2)] = tuple(c.strip() for c in m.group(1).split(","))
        for block in re.finditer(r"CREATE TABLE IF NOT EXISTS (\S+) \((.*?)\n\);", text, re.S):
            found = tuple(m.group(1).strip() for m in re.finditer(r"check: (.+)$", block.group(2), re.M))
            if found:
                checks[block.group(1)] = found
    assert keys == {t: k for t, k in db.KEYS.items() if t != "meta.migrations"}
    assert checks == db.CHECKS


def test_migrations_use_no_constraint_the_lake_refuses():
    for f in db.migration_files():
        code = _code(f.read_text()).upper()
        for word in ("PRIMARY KEY", "UNIQUE", "CHECK", "REFERENCES", "ON CONFLICT", "OR REPLACE INTO"):
            assert not re.search(rf"\b{word}\b", code), f"{f.name}: DuckLake has no {word}"


def test_the_lake_itself_refuses_a_primary_key(tmp_path, monkeypatch, con):
    """So a migration that brings one back fails at `osr db migrate`, named, and leaves nothing behind."""
    mig = tmp_path / "migrations"
    mig.mkdir()
    (mig / "001_keyed.sql").write_text("CREATE TABLE keyed (a INTEGER PRIMARY KEY);")
    monkeypatch.setattr(db, "MIGRATIONS_DIR", mig)
    with pytest.raises(RuntimeError, match="001_keyed.sql.*PRIMARY KEY"):
        db.migrate(con)
    assert "main.keyed" not in db.lake_tables(con)


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
    assert "main.half_t" not in db.lake_tables(con)
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


def test_upsert_ignore_without_key_columns_uses_the_declared_key(con):
    db.migrate(con)
    assert db.upsert_ignore(con, "ref.stores", stores(["a", "b"])) == 2
    assert db.upsert_ignore(con, "ref.stores", stores(["a", "b", "d"])) == 1
    assert db.scalar(con, "SELECT count(*) FROM ref.stores") == 3


def test_replaying_a_batch_inserts_nothing_twice(con):
    """The sink's case: a crash after the store commit but before the Kafka commit replays the batch."""
    db.migrate(con)
    batch = pd.DataFrame({"model_id": "m", "user_id": ["u1", "u1", "u2"], "rank": [1, 2, 1],
                          "item_id": ["i1", "i2", "i3"], "score": [0.9, 0.8, 0.7]})
    assert db.transaction(con, lambda c: db.upsert_ignore(c, "reco.topn", batch)) == 3
    assert db.transaction(con, lambda c: db.upsert_ignore(c, "reco.topn", batch)) == 0
    assert db.transaction(con, lambda c: db.upsert_ignore(c, "reco.topn", pd.concat([batch, batch]))) == 0
    assert db.scalar(con, "SELECT count(*) FROM reco.topn") == 3
    assert con.execute("SELECT model_id, user_id, rank FROM reco.topn GROUP BY ALL HAVING count(*) > 1").fetchall() == []


def test_upsert_ignore_needs_a_declared_key(con):
    con.execute("CREATE TABLE main.loose (a INTEGER)")
    with pytest.raises(KeyError, match="no declared key"):
        db.upsert_ignore(con, "main.loose", pd.DataFrame({"a": [1]}))


def test_upsert_ignore_enforces_the_former_checks(con):
    db.migrate(con)
    rule = pd.DataFrame({"scope": ["global"], "scope_key": ["*"], "threshold": [1.5], "min_gap_s": [0.0]})
    with pytest.raises(duckdb.ConstraintException, match="threshold BETWEEN 0 AND 1"):
        db.upsert_ignore(con, "tuner.rules", rule)
    with pytest.raises(duckdb.ConstraintException, match="device_type"):
        db.upsert_ignore(con, "ref.devices", pd.DataFrame({"device_id": ["d"], "user_id": ["u"],
                                                           "device_type": ["tablet"]}))
    assert db.scalar(con, "SELECT count(*) FROM tuner.rules") == 0


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


# --- replace by key, transactions, compaction -------------------------------------------------------

def test_replace_rows_replaces_by_key_and_the_last_row_wins(con):
    db.migrate(con)
    assert db.transaction(con, lambda c: db.replace_rows(c, "ref.stores", stores(["a", "b"], ["a1", "b1"]))) == 2
    assert db.transaction(con, lambda c: db.replace_rows(c, "ref.stores", stores(["b", "c", "b"], ["b2", "c", "b3"]))) == 2
    assert dict(con.execute("SELECT store_id, category FROM ref.stores").fetchall()) == {"a": "a1", "b": "b3", "c": "c"}


def test_a_failed_unit_of_work_leaves_nothing(con):
    db.migrate(con)

    def work(c):
        db.replace_rows(c, "ref.stores", stores(["a"]))
        db.upsert_ignore(c, "ref.stores", stores([None]))  # NOT NULL: not a conflict, raised at once

    with pytest.raises(duckdb.ConstraintException):
        db.transaction(con, work)
    assert db.scalar(con, "SELECT count(*) FROM ref.stores") == 0


def test_transaction_retries_conflicts_only_and_gives_up(con, monkeypatch):
    monkeypatch.setattr(db, "_RETRY_FIRST_S", 0.0)
    runs = []

    def lose_twice(c):
        runs.append(1)
        if len(runs) <= 2:
            raise duckdb.TransactionException("Failed to commit DuckLake transaction.\n"
                                              "Failed to flush changes into DuckLake: database is locked")
        return "done"

    assert db.transaction(con, lose_twice) == "done" and len(runs) == 3
    runs.clear()

    def always_lose(c):
        runs.append(1)
        raise duckdb.TransactionException("database is locked")

    with pytest.raises(duckdb.TransactionException, match="locked"):
        db.transaction(con, always_lose, attempts=4)
    assert len(runs) == 4  # bounded
    runs.clear()

    def broken(c):
        runs.append(1)
        raise duckdb.CatalogException("Table with name nope does not exist")

    with pytest.raises(duckdb.CatalogException):
        db.transaction(con, broken)
    assert len(runs) == 1
    assert not db.is_conflict(ValueError("database is locked"))


def test_compact_moves_inlined_rows_to_parquet_and_merges_files(con, tmp_path):
    db.migrate(con)
    for i in range(5):  # small commits: inlined in the catalog
        db.upsert_ignore(con, "ref.stores", stores([f"s{i}"]))
    for i in range(3):  # bigger ones: a Parquet file each
        db.upsert_ignore(con, "ref.stores", stores([f"t{i}-{j}" for j in range(int(db.config.get("OSR_STORE_INLINE_ROWS")) + 1)]))
    before = con.execute("SELECT store_id FROM ref.stores ORDER BY 1").fetchall()
    counts = db.compact(con, keep_snapshots_days=0, delete_files_after_s=0)
    assert counts["rows_flushed"] >= 5 and counts["files_merged"] >= 3
    assert counts["snapshots_expired"] > 0 and counts["files_deleted"] >= 3
    assert con.execute("SELECT store_id FROM ref.stores ORDER BY 1").fetchall() == before
    files = list((tmp_path / "store" / "data").rglob("*.parquet"))
    assert len([f for f in files if "ref" in f.parts and "stores" in f.parts]) == 1
