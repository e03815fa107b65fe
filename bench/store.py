"""Store benchmark: the DuckLake store against the plain DuckDB file it replaced (both on the same
duckdb, so like is compared with like), on the sink's write pattern and under concurrent use.

1. writes: `--batches` sink-like transactions of `--batch-rows` feature rows each (plus a replay of
   a tenth of the previous batch, as at-least-once delivery gives), keyed insert-if-new plus an
   ops.sink_batches row. The file uses PRIMARY KEY + INSERT ... ON CONFLICT DO NOTHING, the lake the
   anti-join of pipelines.store.db.upsert_ignore, with the default inlining (OSR_STORE_INLINE_ROWS:
   a sink batch becomes a Parquet file, one-row commits stay in the catalog) and with every batch
   inlined in the catalog (`--big-inline` rows).
2. reads: p50/p99 of an analyst query on a read-only open: idle, while a writer process runs sink
   batches, and after `compact()`; for the file, whether a second process can open it at all
   while the writer runs.
3. conflicts: a nightly-like writer (bigger transactions) beside the sink-like writer: how long
   each waits for the writer lock; and, with the lock bypassed, how many commits lose the race and
   how long the retries take.

The last stdout line is one JSON object; progress goes to stderr. Timings on a shared 2-core
machine are noisy.

    python bench/store.py [--json] [--batches 200] [--batch-rows 100] [--reads 40] [--big-inline 1000]
                          [--postgres "host=127.0.0.1 port=5432 user=postgres"]

--postgres also runs the lake's write and conflict tests on a PostgreSQL catalog (a fresh database
on that server per test, dropped afterwards).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import re
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import duckdb  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from pipelines import config  # noqa: E402
from pipelines.store import db  # noqa: E402

READ_QUERY = ("SELECT device_type, source, count(*) AS n, avg(speed_mps) AS speed, max(ts) AS last "
              "FROM features.state_features GROUP BY ALL ORDER BY n DESC")


def say(msg: str) -> None:
    print(f"[bench/store] {msg}", file=sys.stderr, flush=True)


def features(batch: int, rows: int, tag: str = "e") -> pd.DataFrame:
    rng = np.random.default_rng(batch)
    ts = pd.Timestamp("2026-12-01") + pd.to_timedelta(batch * rows + np.arange(rows), unit="s")
    return pd.DataFrame({
        "event_id": [f"{tag}{batch}-{j}" for j in range(rows)], "user_id": [f"u{j % 50}" for j in range(rows)],
        "device_id": [f"d{j % 80}" for j in range(rows)], "device_type": np.where(rng.random(rows) < 0.5, "phone", "watch"),
        "ts": ts, "source": "stream", "speed_mps": rng.random(rows) * 3, "heading_deg": rng.random(rows) * 360,
        "dist_home_m": rng.random(rows) * 5000, "dist_work_m": rng.random(rows) * 5000,
        "dist_store_m": rng.random(rows) * 800, "hr_pct_peak": rng.random(rows), "hr_rate_bpm_per_min": rng.random(rows),
        "activity": rng.random(rows), "hour_of_day": ts.hour.astype("int32"), "day_of_week": ts.day_of_week.astype("int32"),
        "n_readings": np.full(rows, 60, dtype="int32"), "spikes_rejected": np.zeros(rows, dtype="int32"),
    })


def sink_batch(i: int, rows: int, tag: str = "e") -> pd.DataFrame:
    df = features(i, rows, tag)
    if i:  # at-least-once: a tenth of the previous batch arrives again
        df = pd.concat([df, features(i - 1, rows, tag).head(max(1, rows // 10))], ignore_index=True)
    return df


# --- the plain DuckDB file (the store before), same duckdb --------------------------------------

def plain_ddl() -> str:
    """features.state_features and ops.sink_batches as migration 001 declares them, with the primary
    keys the file had."""
    text = (db.MIGRATIONS_DIR / "001_core_schemas.sql").read_text()
    out = ["CREATE SCHEMA IF NOT EXISTS features;", "CREATE SCHEMA IF NOT EXISTS ops;"]
    for table in ("features.state_features", "ops.sink_batches"):
        block = re.search(rf"CREATE TABLE IF NOT EXISTS {re.escape(table)} \((.*?)\n\);", text, re.S).group(0)
        out.append(block[:-3] + f",\n    PRIMARY KEY ({', '.join(db.KEYS[table])})\n);")
    return "\n".join(out)


def plain_write(con, df: pd.DataFrame, i: int, tag: str = "") -> int:
    con.execute("BEGIN")
    con.register("_b", df)
    cols = ", ".join(df.columns)
    n = con.execute(f"INSERT INTO features.state_features ({cols}) SELECT {cols} FROM _b "
                    "QUALIFY row_number() OVER (PARTITION BY event_id) = 1 ON CONFLICT DO NOTHING").fetchall()[0][0]
    con.unregister("_b")
    con.execute("INSERT INTO ops.sink_batches VALUES (?, 'state.features', ?, ?, now())", [f"{tag}b{i}", len(df), n])
    con.execute("COMMIT")
    return n


def lake_write(con, df: pd.DataFrame, i: int, tag: str = "") -> int:
    def work(c):
        n = db.upsert_ignore(c, "features.state_features", df)
        c.execute("INSERT INTO ops.sink_batches VALUES (?, 'state.features', ?, ?, now())", [f"{tag}b{i}", len(df), n])
        return n
    return db.transaction(con, work)


def open_store(kind: str, where: str, inline_rows: int | None = None, read_only: bool = False):
    if kind == "file":
        return duckdb.connect(where, read_only=read_only)
    if inline_rows is not None:
        import os
        os.environ["OSR_STORE_INLINE_ROWS"] = str(inline_rows)
    return db.connect(where, read_only=read_only)


def prepare(kind: str, where: str, inline_rows: int | None = None) -> None:
    con = open_store(kind, where, inline_rows)
    if kind == "file":
        con.execute(plain_ddl())
    else:
        db.migrate(con)
    con.close()


def pct(xs, q) -> float:
    return float(np.percentile(np.asarray(xs) * 1000, q)) if len(xs) else float("nan")


def write_run(kind: str, where: str, batches: int, rows: int, inline_rows: int | None = None) -> dict:
    prepare(kind, where, inline_rows)
    con = open_store(kind, where, inline_rows)
    frames = [sink_batch(i, rows) for i in range(batches)]
    lat, new = [], 0
    t0 = time.perf_counter()
    for i, df in enumerate(frames):
        t = time.perf_counter()
        new += plain_write(con, df, i) if kind == "file" else lake_write(con, df, i)
        lat.append(time.perf_counter() - t)
    seconds = time.perf_counter() - t0
    total = con.execute("SELECT count(*), count(DISTINCT event_id) FROM features.state_features").fetchall()[0]
    con.close()
    assert total[0] == total[1] == new == batches * rows, (total, new)
    return {"rows_per_s": round(new / seconds, 1), "commits_per_s": round(batches / seconds, 2),
            "commit_ms_p50": round(pct(lat, 50), 2), "commit_ms_p99": round(pct(lat, 99), 2),
            "rows": new, "seconds": round(seconds, 2)}


# --- processes: a sink-like writer and a nightly-like writer ---------------------------------------

def writer_process(kind: str, where: str, rows: int, started, stop, out, tag: str = "w", big: int = 0,
                   use_lock: bool = True, count: int = 0) -> None:
    """Writes sink batches until `stop` (or `count` batches; `big` > 0: nightly-like batches of that size)."""
    try:
        con = open_store(kind, where)
        if not use_lock:
            db._WRITER_LOCKS.pop(con, None)
        db.WRITE_STATS.reset()
        lat, i, new = [], 0, 0
        while not stop.is_set() and (not count or i < count):
            df = features(i, big, tag) if big else sink_batch(i, rows, tag)
            t = time.perf_counter()
            new += plain_write(con, df, i, tag) if kind == "file" else lake_write(con, df, i, tag)
            lat.append(time.perf_counter() - t)
            i += 1
            started.set()
        con.close()
        out.put({"tag": tag, "batches": i, "new": new, "commit_ms_p50": round(pct(lat, 50), 1),
                 "commit_ms_p99": round(pct(lat, 99), 1), "commit_ms_max": round(max(lat) * 1000, 1) if lat else None,
                 "stats": vars(db.WRITE_STATS).copy(), "error": None})
    except BaseException as exc:  # noqa: BLE001
        out.put({"tag": tag, "error": f"{type(exc).__name__}: {str(exc)[:300]}"})
    finally:
        started.set()


def read_latencies(kind: str, where: str, n: int) -> list[float]:
    con = open_store(kind, where, read_only=True)
    lat = []
    for _ in range(n):
        t = time.perf_counter()
        con.execute(READ_QUERY).fetchall()
        lat.append(time.perf_counter() - t)
    con.close()
    return lat


def read_run(kind: str, where: str, rows: int, reads: int) -> dict:
    idle = read_latencies(kind, where, reads)
    ctx = mp.get_context("spawn")
    started, stop, out = ctx.Event(), ctx.Event(), ctx.Queue()
    p = ctx.Process(target=writer_process, args=(kind, where, rows, started, stop, out, "r"))
    p.start()
    started.wait(120)
    try:
        busy = read_latencies(kind, where, reads)
        concurrent = {"read_ms_p50": round(pct(busy, 50), 2), "read_ms_p99": round(pct(busy, 99), 2)}
    except duckdb.Error as exc:
        concurrent = {"error": str(exc).splitlines()[0][:200]}
    stop.set()
    w = out.get(timeout=300)
    p.join(60)
    return {"idle_read_ms_p50": round(pct(idle, 50), 2), "idle_read_ms_p99": round(pct(idle, 99), 2),
            "while_writing": concurrent, "writer_batches_meanwhile": w.get("batches"), "writer_error": w.get("error")}


def conflict_run(where: str, rows: int, big: int, nightly_batches: int, use_lock: bool) -> dict:
    ctx = mp.get_context("spawn")
    started, stop, out = ctx.Event(), ctx.Event(), ctx.Queue()
    sink = ctx.Process(target=writer_process, args=("lake", where, rows, started, stop, out, "sink", 0, use_lock))
    sink.start()
    started.wait(120)
    n_started, n_stop = ctx.Event(), ctx.Event()  # kept referenced until the child has them
    nightly = ctx.Process(target=writer_process, args=("lake", where, rows, n_started, n_stop, out, "nightly",
                                                       big, use_lock, nightly_batches))
    nightly.start()
    results = {}
    r = out.get(timeout=600)
    results[r["tag"]] = r
    stop.set()
    r = out.get(timeout=600)
    results[r["tag"]] = r
    sink.join(60)
    nightly.join(60)
    return results


def pg_lake(server: str, tmp: Path, label: str) -> str:
    """A fresh PostgreSQL database for one lake (data under tmp/label); returns its catalog spec."""
    import os
    admin = duckdb.connect(config={"autoload_known_extensions": False, "autoinstall_known_extensions": False})
    admin.execute(f"LOAD '{db.extension_file('postgres_scanner')}'")
    admin.execute(f"ATTACH 'dbname=postgres {server}' AS pgadmin (TYPE postgres)")
    name = f"osr_bench_{label}_{int(time.time())}"
    admin.execute(f"CALL postgres_execute('pgadmin', 'CREATE DATABASE {name}', use_transaction => false)")
    admin.close()
    _PG_DBS.append((server, name))
    os.environ["OSR_STORE_DATA"] = str(tmp / f"pg_{label}_data")
    return f"postgres:dbname={name} {server}"


_PG_DBS: list[tuple[str, str]] = []


def drop_pg_lakes() -> None:
    for server, name in _PG_DBS:
        admin = duckdb.connect(config={"autoload_known_extensions": False, "autoinstall_known_extensions": False})
        admin.execute(f"LOAD '{db.extension_file('postgres_scanner')}'")
        admin.execute(f"ATTACH 'dbname=postgres {server}' AS pgadmin (TYPE postgres)")
        admin.execute(f"CALL postgres_execute('pgadmin', 'DROP DATABASE {name} WITH (FORCE)', use_transaction => false)")
        admin.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", action="store_true", help="(the last line is JSON either way)")
    ap.add_argument("--batches", type=int, default=200, help="sink batches in the write test")
    ap.add_argument("--batch-rows", type=int, default=100, help="new rows per sink batch")
    ap.add_argument("--reads", type=int, default=40, help="read queries per measurement")
    ap.add_argument("--big-inline", type=int, default=1000, help="inlining limit of the all-inlined variant")
    ap.add_argument("--nightly-rows", type=int, default=20000, help="rows per nightly-like transaction")
    ap.add_argument("--nightly-batches", type=int, default=5, help="nightly-like transactions")
    ap.add_argument("--postgres", default=None, help="libpq string of a PostgreSQL server: also bench a PG catalog")
    args = ap.parse_args()

    result = {"duckdb": duckdb.__version__, "batches": args.batches, "batch_rows": args.batch_rows,
              "inline_rows_default": int(config.SETTINGS["OSR_STORE_INLINE_ROWS"][0])}
    with tempfile.TemporaryDirectory(prefix="bench-store-") as tmp:
        tmp = Path(tmp)
        w = {}
        say(f"writes: plain DuckDB file, {args.batches} batches x {args.batch_rows} rows")
        w["file"] = write_run("file", str(tmp / "plain.duckdb"), args.batches, args.batch_rows)
        say(f"  {w['file']}")
        inline = result["inline_rows_default"]
        say(f"writes: DuckLake, default inlining ({inline} rows): a Parquet file per sink batch")
        w["lake"] = write_run("lake", str(tmp / "lake"), args.batches, args.batch_rows, inline)
        say(f"  {w['lake']}")
        say(f"writes: DuckLake, every batch inlined in the catalog (inlining {args.big_inline} rows)")
        w["lake_all_inlined"] = write_run("lake", str(tmp / "lake_inl"), args.batches, args.batch_rows,
                                          args.big_inline)
        say(f"  {w['lake_all_inlined']}")
        result["writes"] = w
        result["write_ratio_lake_vs_file"] = round(w["lake"]["rows_per_s"] / w["file"]["rows_per_s"], 3)
        result["write_ratio_lake_all_inlined_vs_file"] = round(
            w["lake_all_inlined"]["rows_per_s"] / w["file"]["rows_per_s"], 3)
        import os
        os.environ["OSR_STORE_INLINE_ROWS"] = str(inline)

        say("reads: DuckLake (the default lake from the write test), idle and beside a writer process")
        result["reads_lake"] = read_run("lake", str(tmp / "lake"), args.batch_rows, args.reads)
        con = db.connect(str(tmp / "lake"))
        t = time.perf_counter()
        result["reads_lake"]["compact"] = db.compact(con, keep_snapshots_days=0, delete_files_after_s=0)
        result["reads_lake"]["compact_s"] = round(time.perf_counter() - t, 2)
        con.close()
        compacted = read_latencies("lake", str(tmp / "lake"), args.reads)
        result["reads_lake"]["compacted_read_ms_p50"] = round(pct(compacted, 50), 2)
        result["reads_lake"]["compacted_read_ms_p99"] = round(pct(compacted, 99), 2)
        say(f"  {result['reads_lake']}")
        say("reads: plain file, idle and beside a writer process")
        result["reads_file"] = read_run("file", str(tmp / "plain.duckdb"), args.batch_rows, args.reads)
        say(f"  {result['reads_file']}")
        rl = result["reads_lake"]
        result["read_ratio_lake_busy_vs_idle_p50"] = round(rl["while_writing"]["read_ms_p50"] / rl["idle_read_ms_p50"], 3) \
            if "read_ms_p50" in rl["while_writing"] else None
        result["read_ratio_lake_vs_file_idle_p50"] = round(rl["idle_read_ms_p50"] / result["reads_file"]["idle_read_ms_p50"], 3)
        result["read_ratio_lake_compacted_vs_file_p50"] = round(
            rl["compacted_read_ms_p50"] / result["reads_file"]["idle_read_ms_p50"], 3)

        c = {}
        for use_lock in (True, False):
            where = str(tmp / f"lake_conflict_{int(use_lock)}")
            prepare("lake", where)
            label = "with_writer_lock" if use_lock else "lock_bypassed"
            say(f"conflicts ({label}): sink-like writer + {args.nightly_batches} nightly-like transactions of "
                f"{args.nightly_rows} rows")
            c[label] = conflict_run(where, args.batch_rows, args.nightly_rows, args.nightly_batches, use_lock)
            say(f"  {c[label]}")
            ro = db.connect(where, read_only=True)
            c[label]["duplicate_keys"] = db.scalar(ro, "SELECT count(*) - count(DISTINCT event_id) FROM features.state_features")
            ro.close()
        result["conflicts"] = c

        if args.postgres:
            try:
                say("writes: DuckLake on a PostgreSQL catalog, default inlining")
                w["lake_postgres"] = write_run("lake", pg_lake(args.postgres, tmp, "w"), args.batches,
                                               args.batch_rows, inline)
                say(f"  {w['lake_postgres']}")
                result["write_ratio_lake_postgres_vs_file"] = round(
                    w["lake_postgres"]["rows_per_s"] / w["file"]["rows_per_s"], 3)
                where = pg_lake(args.postgres, tmp, "c")
                prepare("lake", where)
                say("conflicts on PostgreSQL (advisory writer lock)")
                c["postgres_with_writer_lock"] = conflict_run(where, args.batch_rows, args.nightly_rows,
                                                              args.nightly_batches, True)
                ro = db.connect(where, read_only=True)
                c["postgres_with_writer_lock"]["duplicate_keys"] = db.scalar(
                    ro, "SELECT count(*) - count(DISTINCT event_id) FROM features.state_features")
                ro.close()
                say(f"  {c['postgres_with_writer_lock']}")
            finally:
                drop_pg_lakes()
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
