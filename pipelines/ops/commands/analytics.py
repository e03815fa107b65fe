"""`osr sql` (the analyst views of sql/analytics: list, run read-only, test, apply) and `osr report`
(the report folder with plots and Data Docs). The logic is pipelines.analytics; this parses and prints."""

from __future__ import annotations

import argparse
import sys


def _err(msg: str) -> None:
    print(f"osr: error: {msg}", file=sys.stderr)


def _note(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _ensure_views(apply: bool = True) -> dict[str, str]:
    """Apply the views when the store's differ from the files (one short catalog write under the writer
    lock; never with apply=False); returns the views that are waiting for tables, with why."""
    from pipelines.analytics import views
    from pipelines.store.db import connect, lake_tables

    specs = views.load_specs()
    con = connect(read_only=True)  # FileNotFoundError with what to do when there is no store
    try:
        todo = views.stale(con, specs)
        tables = lake_tables(con)
    finally:
        con.close()
    skipped: dict[str, str] = {}
    for s in specs:
        why = views.waiting_for(s, tables, skipped)
        if why:
            skipped[s.name] = why
    if todo and apply:
        _note(f"applying {len(todo)} changed analyst view(s) from sql/analytics to the store "
              f"(waits while another writer holds the store's writer lock) ...")
        con = connect()
        try:
            views.apply_views(con, specs)
        finally:
            con.close()
    return skipped


def cmd_sql(args) -> int:
    from pipelines.analytics import views

    if args.list:
        specs = views.load_specs()
        width = max(len(s.name) for s in specs)
        try:
            waiting = _ensure_views(apply=False)
        except FileNotFoundError:
            waiting = {}
        for layer in views.LAYERS:
            print(f"{layer}:")
            for s in (s for s in specs if s.layer == layer):
                extra = f"  [waiting: {waiting[s.name]}]" if s.name in waiting else ""
                print(f"  {s.name:<{width}}  {s.question}{extra}")
        print("\nrun one: osr sql NAME [--csv]; its header (grain, columns, tests): sql/analytics/<layer>/NAME.sql")
        return 0
    if args.apply:
        from pipelines.store.db import connect

        connect(read_only=True).close()  # says what to do when there is no store yet
        con = connect()
        try:
            res = views.apply_views(con, force=args.force)
        finally:
            con.close()
        print(f"applied {len(res.applied)}, unchanged {len(res.unchanged)}, dropped {len(res.dropped)}")
        for name, why in res.skipped.items():
            print(f"  waiting: {name}: {why}")
        return 0
    if args.test:
        return _cmd_test(args)
    if not args.name:
        _err("name a view (`osr sql --list` lists them), or use --list / --test / --apply")
        return 2
    try:
        spec = views.spec_named(args.name)
    except LookupError as exc:
        _err(str(exc.args[0]))
        return 2
    waiting = _ensure_views()
    if spec.name in waiting:
        _err(f"analytics.{spec.name} is not in the store yet: it {waiting[spec.name]}")
        return 2
    from pipelines.store.db import connect

    con = connect(read_only=True)
    try:
        df = con.execute(f"SELECT * FROM {spec.qualified}").df()
    finally:
        con.close()
    if args.csv:
        df.to_csv(sys.stdout, index=False)
        return 0
    import pandas as pd

    shown = df if args.limit == 0 else df.head(args.limit)
    print(f"-- {spec.question}\n-- grain: {spec.grain}")
    with pd.option_context("display.width", 250, "display.max_columns", 40, "display.max_colwidth", 60):
        print(shown.to_string(index=False) if len(df) else "(no rows)")
    if len(df) > len(shown):
        print(f"... {len(df) - len(shown)} more row(s) of {len(df)} (--limit 0 shows all, --csv writes all)")
    return 0


def _cmd_test(args) -> int:
    from pipelines.analytics import checks, views
    from pipelines.store.db import connect

    specs = views.load_specs()
    names = None
    if args.name:
        try:
            names = [views.spec_named(args.name, specs).name]
        except LookupError as exc:
            _err(str(exc.args[0]))
            return 2
    waiting = _ensure_views()
    con = connect(read_only=True)
    try:
        results = checks.check_all(con, specs, names, skip=set(waiting))
    finally:
        con.close()
    for r in results:
        if args.verbose_tests or not r.ok:
            print(r.line())
    bad = [r for r in results if not r.ok]
    for name, why in waiting.items():
        if not names or name in names:
            print(f"SKIP {name}: {why}")
    print(f"{len(results) - len(bad)} of {len(results)} declared tests passed"
          + (f"; {len(bad)} failed (the rows above show what broke them)" if bad else ""))
    return 1 if bad else 0


def cmd_report(args) -> int:
    from pathlib import Path

    from pipelines.analytics.report import build_report

    if args.out and Path(args.out).exists() and not Path(args.out).is_dir():
        _err(f"--out {args.out} is a file: name a folder (it is created when missing)")
        return 2
    res = build_report(args.out, data_docs=not args.no_data_docs, progress=_note)
    bad = [c for c in res.checks if not c.ok]
    print(f"report: {res.index}")
    for s in res.sections:
        print(f"  {s.title}: " + (", ".join(s.images) if s.images else f"no data yet ({s.no_data})"))
    if res.docs is not None:
        failed = [d.suite for d in res.docs.failed]
        print(f"  Data Docs: {res.docs.index}" + (f" (failed suites: {', '.join(failed)})" if failed else ""))
    if bad:
        print(f"  {len(bad)} declared view test(s) failed: {bad[0].line()}")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "sql", help="analyst views (sql/analytics): --list them, run one read-only, --test their declared tests",
        description="The analyst views live in sql/analytics: staging/stg_*.sql only rename and cast store tables, "
                    "marts/*.sql answer one question each (header: question, grain, columns, tests). They are views "
                    "in the store's `analytics` schema, so `osr query \"SELECT * FROM analytics.NAME\"`, DuckDB and "
                    "notebooks see them too; a changed file is applied to the store before it runs.")
    p.add_argument("name", nargs="?", help="the view to run (without analytics.)")
    p.add_argument("--list", action="store_true", help="list the views with the question each answers")
    p.add_argument("--csv", action="store_true", help="write every row as CSV to stdout")
    p.add_argument("--limit", type=int, default=50, help="rows to print (default 50; 0 = all)")
    p.add_argument("--test", action="store_true",
                   help="run the declared tests of every view (or of NAME); exit 1 when one fails")
    p.add_argument("--verbose-tests", action="store_true", help="with --test: print passing tests too")
    p.add_argument("--apply", action="store_true", help="create / replace the views in the store now")
    p.add_argument("--force", action="store_true", help="with --apply: replace even unchanged views")
    p.set_defaults(func=cmd_sql)

    r = subparsers.add_parser(
        "report", help="write a report folder: index.html with plots, the views' tests and Data Docs of every suite",
        description="Draws the analyst marts as PNGs (model metrics, notification funnel, OSR lift, QoS accuracy, "
                    "partition qualities, load and latency; sections without data say so), runs the views' declared "
                    "tests and builds Great Expectations Data Docs for every suite, into one folder that opens offline.")
    r.add_argument("--out", default=None, help="folder to write (default OSR_REPORTS_DIR/report)")
    r.add_argument("--no-data-docs", action="store_true", help="skip the Data Docs (faster)")
    r.set_defaults(func=cmd_report)
