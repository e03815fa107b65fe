"""The store under concurrent use, with real processes: a sink-like writer commits keyed batches
continuously while a reader runs long queries on a read-only open and a nightly-like writer loads
another table. Nothing may fail, every row must be there exactly once, and the reader must have
seen the writer's commits arrive while it read (so the processes really overlapped).

With the single DuckDB file this test fails at once: the reader and the second writer cannot even
open the store while the sink holds it ("Could not set lock on file").

Each test runs on a SQLite catalog, and on a PostgreSQL one too when OSR_TEST_POSTGRES names a
server where it may create databases (a libpq string, e.g. "host=127.0.0.1 port=5432 user=postgres")."""

from __future__ import annotations

import multiprocessing as mp
import os
import traceback
import uuid

import pandas as pd
import pytest

from pipelines.store import db

SINK_BATCH = 50        # rows per sink batch (plus replays of the previous batch's first rows)
SINK_MIN_BATCHES = 20  # the sink keeps going until the others are done, and at least this long
NIGHTLY_BATCHES = 6
NIGHTLY_ROWS = 400
READER_SEEN = 3        # the reader reads until it has seen this many different sink-batch counts


def letters(i: int, n: int) -> pd.DataFrame:
    return pd.DataFrame({"deadletter_id": [f"s:{i}:{j}" for j in range(n)], "event_id": None,
                         "reason": "test", "payload": "{}", "received_at": pd.Timestamp("2026-12-01")})


def items(i: int, n: int) -> pd.DataFrame:
    return pd.DataFrame({"item_id": [f"n{i}-{j}" for j in range(n)], "category": "c", "price": 1.0,
                         "offer_type": "bogo"})


def _run(role, store, started, stop, out):
    try:
        out.put({"role": role, **ROLES[role](store, started, stop), "error": None})
    except BaseException:  # noqa: BLE001 - the parent asserts on it
        out.put({"role": role, "error": traceback.format_exc()})


def sink_role(store, started, stop, out=None) -> dict:
    """Like the sink: one transaction per batch (rows + an ops.sink_batches record); each batch also
    replays the previous batch's first rows, as at-least-once delivery does."""
    con = db.connect(store)
    new = batches = 0
    try:
        while batches < SINK_MIN_BATCHES or not stop.is_set():
            df = letters(batches, SINK_BATCH)
            if batches:
                df = pd.concat([df, letters(batches - 1, 5)], ignore_index=True)

            def work(c, df=df, i=batches):
                n = db.upsert_ignore(c, "stream.deadletter", df)
                c.execute("INSERT INTO ops.sink_batches VALUES (?, 'dl', ?, ?, now())", [f"b{i}", len(df), n])
                return n

            new += db.transaction(con, work)
            batches += 1
            started.set()
    finally:
        con.close()
    return {"new": new, "batches": batches, "stats": vars(db.WRITE_STATS).copy()}


def nightly_role(store, started, stop, out=None) -> dict:
    """Like a nightly task: bigger transactions on another table, and one batch replayed."""
    started.wait()
    con = db.connect(store)
    new = 0
    try:
        for i in range(NIGHTLY_BATCHES):
            new += db.transaction(con, lambda c, i=i: db.upsert_ignore(c, "ref.items", items(i, NIGHTLY_ROWS)))
        replayed = db.transaction(con, lambda c: db.upsert_ignore(c, "ref.items", items(0, NIGHTLY_ROWS)))
    finally:
        con.close()
    return {"new": new, "replayed": replayed}


def reader_role(store, started, stop, out=None) -> dict:
    """Like an analyst: a read-only open while the sink writes, and a long query, again and again."""
    started.wait()
    con = db.connect(store, read_only=True)
    seen, queries, stable = set(), 0, True
    try:
        while len(seen) < READER_SEEN:
            con.execute("BEGIN")
            before = db.scalar(con, "SELECT count(*) FROM ops.sink_batches")
            db.scalar(con, "SELECT sum(length(d.deadletter_id) + r.range) FROM stream.deadletter d, range(300) r")
            stable &= db.scalar(con, "SELECT count(*) FROM ops.sink_batches") == before  # one snapshot
            con.execute("COMMIT")
            seen.add(before)
            queries += 1
    finally:
        con.close()
    return {"queries": queries, "seen": sorted(seen), "stable": stable}


ROLES = {"sink": sink_role, "nightly": nightly_role, "reader": reader_role}


def _pg_admin(server: str):
    import duckdb

    c = duckdb.connect(config={"autoload_known_extensions": False, "autoinstall_known_extensions": False})
    c.execute(f"LOAD '{db.extension_file('postgres_scanner')}'")
    c.execute(f"ATTACH 'dbname=postgres {server}' AS pgadmin (TYPE postgres)")
    return c


@pytest.fixture(params=["sqlite", "postgres"])
def store(request, tmp_path, monkeypatch):
    """A new, empty lake: a folder (SQLite catalog), or a fresh PostgreSQL database (dropped afterwards)."""
    if request.param == "sqlite":
        yield str(tmp_path / "store")
        return
    server = os.environ.get("OSR_TEST_POSTGRES")
    if not server:
        pytest.skip("OSR_TEST_POSTGRES (a PostgreSQL server for test databases) is not set")
    name = f"osr_test_{uuid.uuid4().hex[:10]}"
    admin = _pg_admin(server)
    admin.execute(f"CALL postgres_execute('pgadmin', 'CREATE DATABASE {name}', use_transaction => false)")
    monkeypatch.setenv("OSR_STORE_DATA", str(tmp_path / "data"))  # the child processes inherit it
    try:
        yield f"postgres:dbname={name} {server}"
    finally:
        admin.execute(f"CALL postgres_execute('pgadmin', 'DROP DATABASE {name} WITH (FORCE)', use_transaction => false)")
        admin.close()


@pytest.mark.timeout(600)
def test_sink_nightly_and_reader_in_parallel_processes(store):
    con = db.connect(store)
    db.migrate(con)
    con.close()

    ctx = mp.get_context("spawn")
    started, stop, out = ctx.Event(), ctx.Event(), ctx.Queue()
    procs = {r: ctx.Process(target=_run, args=(r, store, started, stop, out)) for r in ROLES}
    for p in procs.values():
        p.start()
    results = {}
    try:
        while len(results) < 2:  # nightly and reader first; then stop the sink
            r = out.get(timeout=540)
            results[r["role"]] = r
            if r["error"]:
                break
        stop.set()
        while len(results) < 3:
            r = out.get(timeout=540)
            results[r["role"]] = r
    finally:
        stop.set()
        started.set()
        for p in procs.values():
            p.join(timeout=60)
            if p.is_alive():
                p.kill()
    errors = {role: r["error"] for role, r in results.items() if r["error"]}
    assert not errors, errors
    sink, nightly, reader = results["sink"], results["nightly"], results["reader"]

    # the reader really read during the writes, from one snapshot per transaction
    assert len(reader["seen"]) >= READER_SEEN and reader["stable"]

    ro = db.connect(store, read_only=True)
    try:
        # every row exactly once: what the writers said they added is what is there, no key twice
        assert db.scalar(ro, "SELECT count(*) FROM stream.deadletter") == sink["new"] == sink["batches"] * SINK_BATCH
        assert db.scalar(ro, "SELECT count(*) FROM ops.sink_batches") == sink["batches"]
        assert db.scalar(ro, "SELECT count(*) FROM ref.items") == nightly["new"] == NIGHTLY_BATCHES * NIGHTLY_ROWS
        assert nightly["replayed"] == 0
        for table, key in (("stream.deadletter", "deadletter_id"), ("ref.items", "item_id"),
                           ("ops.sink_batches", "batch_id")):
            assert ro.execute(f"SELECT {key} FROM {table} GROUP BY {key} HAVING count(*) > 1").fetchall() == []
    finally:
        ro.close()


def test_a_lost_commit_race_is_retried_and_inserts_nothing_twice(tmp_path):
    """Two connections, one process: B commits the same key while A's transaction is open. On a
    SQLite catalog A's commit then fails ("database is locked"); transaction() runs A's work again,
    which now finds the key and adds only the rest."""
    a = db.connect(tmp_path / "s")
    db.migrate(a)
    b = db.connect(tmp_path / "s")
    attempts = []

    def work(c):
        attempts.append(1)
        n = db.upsert_ignore(c, "stream.deadletter", letters(0, 3))
        if len(attempts) == 1:
            # B is another process in real life; here it bypasses A's writer lock on purpose
            db.upsert_ignore(b, "stream.deadletter", letters(0, 1))
        return n

    retries = []
    assert db.transaction(a, work, on_retry=lambda *args: retries.append(args)) == 2
    assert len(attempts) == 2 and len(retries) == 1 and db.is_conflict(retries[0][1])
    assert db.scalar(a, "SELECT count(*) FROM stream.deadletter") == 3
    a.close()
    b.close()


def _migrate_role(store, go, out):
    try:
        go.wait()
        con = db.connect(store)
        applied = db.migrate(con)
        con.close()
        out.put({"applied": applied, "error": None})
    except BaseException:  # noqa: BLE001
        out.put({"applied": None, "error": traceback.format_exc()})


@pytest.mark.timeout(300)
def test_processes_creating_and_migrating_a_new_lake_at_once(store):
    """A fresh machine: the sink and batch tasks start together and each runs `migrate()`."""
    ctx = mp.get_context("spawn")
    go, out = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_migrate_role, args=(store, go, out)) for _ in range(3)]
    for p in procs:
        p.start()
    go.set()
    results = [out.get(timeout=240) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    assert [r["error"] for r in results if r["error"]] == []
    names = [f.name for f in db.migration_files()]
    assert sorted(n for r in results for n in r["applied"]) == sorted(names)  # each applied by exactly one
    ro = db.connect(store, read_only=True)
    assert [r[0] for r in ro.execute("SELECT name FROM meta.migrations ORDER BY name").fetchall()] == names
    assert db.lake_tables(ro) == set(db.KEYS)
    ro.close()
