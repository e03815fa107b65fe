"""Run the tests each view declares in its header (unique, not_null, accepted_values, relationships,
expression) against the store, plus one every view gets: its columns are the ones its header
documents, in that order (so the docs cannot drift from the SQL).

Why our own runner: these are dbt's generic tests, and each is one query counting the rows that
break it; a failure keeps up to SAMPLE offending rows, so the message shows what is wrong.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pipelines.analytics.views import DeclaredTest, ViewSpec, load_specs

#: Offending rows kept per failed test.
SAMPLE = 5


@dataclass
class CheckResult:
    view: str
    test: str
    failures: int  # rows breaking it (or 1 for a structural failure); 0 = passed
    sample: list = field(default_factory=list)
    error: str | None = None  # the test could not run (the view or a column is missing, ...)

    @property
    def ok(self) -> bool:
        return self.failures == 0 and self.error is None

    def line(self) -> str:
        if self.ok:
            return f"PASS {self.view}: {self.test}"
        if self.error:
            return f"ERROR {self.view}: {self.test}: {self.error}"
        return f"FAIL {self.view}: {self.test}: {self.failures} row(s), e.g. {self.sample[:3]}"


def _q(col: str) -> str:
    return f'"{col}"'


def _literal(v: str) -> str:
    """A declared value as a string literal (the column is compared as text)."""
    return "'" + v.strip().strip("'\"").replace("'", "''") + "'"


def failing_rows_sql(view: str, t: DeclaredTest) -> str:
    """A query returning the rows of `view` that break `t` (for unique: the repeated keys and how often)."""
    if t.kind == "unique":
        cols = ", ".join(_q(c) for c in t.columns)
        return f"SELECT {cols}, count(*) AS n FROM {view} GROUP BY {cols} HAVING count(*) > 1"
    if t.kind == "not_null":
        return f"SELECT * FROM {view} WHERE " + " OR ".join(f"{_q(c)} IS NULL" for c in t.columns)
    if t.kind == "accepted_values":
        col = _q(t.columns[0])
        return (f"SELECT {col}, count(*) AS n FROM {view} WHERE {col} IS NOT NULL AND {col}::VARCHAR NOT IN "
                f"({', '.join(_literal(v) for v in t.values)}) GROUP BY {col}")
    if t.kind == "relationships":
        col = _q(t.columns[0])
        target_view, target_col = t.target.rsplit(".", 1)
        return (f"SELECT {col}, count(*) AS n FROM {view} WHERE {col} IS NOT NULL AND {col} NOT IN "
                f"(SELECT {_q(target_col)} FROM {target_view} WHERE {_q(target_col)} IS NOT NULL) GROUP BY {col}")
    return f"SELECT * FROM {view} WHERE NOT coalesce(({t.expression}), true)"


def _count(con, sql: str) -> tuple[int, list]:
    rows = con.execute(f"SELECT * FROM ({sql}) LIMIT {SAMPLE}").fetchall()
    if not rows:
        return 0, []
    n = con.execute(f"SELECT count(*) FROM ({sql})").fetchall()[0][0]
    return int(n), rows


def check_view(con, spec: ViewSpec, relation: str | None = None) -> list[CheckResult]:
    """Every declared test of `spec`, run on `relation` (default: the applied view analytics.<name>)."""
    rel = relation or spec.qualified
    out = []
    try:
        actual = [d[0] for d in con.execute(f"SELECT * FROM {rel} LIMIT 0").description]
    except Exception as exc:  # noqa: BLE001
        return [CheckResult(spec.name, "the view answers", 1, error=str(exc).splitlines()[0])]
    declared = [c for c, _doc in spec.columns]
    if actual != declared:
        extra = [c for c in actual if c not in declared]
        undocumented = [c for c in declared if c not in actual]
        detail = (f"not documented: {extra}; " if extra else "") + \
                 (f"documented but missing: {undocumented}; " if undocumented else "") + \
                 ("the order differs" if not (extra or undocumented) else "")
        out.append(CheckResult(spec.name, "columns as documented", 1, error=detail.rstrip("; ")))
    else:
        out.append(CheckResult(spec.name, "columns as documented", 0))
    for t in spec.tests:
        try:
            n, sample = _count(con, failing_rows_sql(rel, t))
            out.append(CheckResult(spec.name, t.describe(), n, sample))
        except Exception as exc:  # noqa: BLE001
            out.append(CheckResult(spec.name, t.describe(), 1, error=str(exc).splitlines()[0]))
    return out


def check_all(con, specs: list[ViewSpec] | None = None, names: list[str] | None = None,
              skip: set[str] | frozenset = frozenset(), progress=None) -> list[CheckResult]:
    """The declared tests of every view (or of `names`), except the views in `skip` (waiting for tables)."""
    specs = load_specs() if specs is None else specs
    results = []
    for s in specs:
        if (names and s.name not in names) or s.name in skip:
            continue
        r = check_view(con, s)
        results += r
        if progress:
            bad = sum(not x.ok for x in r)
            progress(f"{s.name}: {len(r) - bad}/{len(r)} tests passed")
    return results
