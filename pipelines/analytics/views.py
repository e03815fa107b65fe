"""The analyst views of sql/analytics: read each file's header (question, grain, columns, tests),
order them by what they read, and apply them to the store as views in its `analytics` schema.

A file is sql/analytics/<layer>/<name>.sql and becomes the view analytics.<name>. Its header is a
block of `--` comments before the SQL:

    -- question: the one question the view answers (one line; `osr sql --list` prints it)
    -- grain: what one row is
    -- columns:
    --   name   what it means
    -- tests:
    --   unique: a, b                     (the combination is unique)
    --   not_null: a, b                   (each column)
    --   accepted_values: a in (x, y)     (NULL is allowed; add a not_null for that)
    --   relationships: a -> analytics.other.b
    --   expression: SQL that holds on every row (NULL counts as holding)

Why a loader rather than a migration: a view over a table another part of the platform adds later
(a later migration) cannot be created before that table exists. The loader skips such a view and
says what it is waiting for, and applies it on the next run once the table is there. Each applied
view carries a comment with its file's hash, so a reader can tell whether the store's views are
the files' (`stale()`), without writing.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

from pipelines import config
from pipelines.store.db import LAKE, lake_tables, transaction

ANALYTICS_SQL = config.PROJECT_ROOT / "sql" / "analytics"
#: Layers in the order they build on each other.
LAYERS = ("staging", "marts")
SCHEMA = "analytics"
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_SHA_MARK = re.compile(r"\[sha:([0-9a-f]{12})\]")
#: Store schemas a view may read from (anything else named schema.table is not a store table).
STORE_SCHEMAS = ("ref", "events", "features", "reco", "stream", "tuner", "ops", "qos", "meta")
_TABLE_REF = re.compile(r"\b(" + "|".join(STORE_SCHEMAS) + r")\.([a-z_][a-z0-9_]*)\b")
_VIEW_REF = re.compile(r"\banalytics\.([a-z_][a-z0-9_]*)\b")
TEST_KINDS = ("unique", "not_null", "accepted_values", "relationships", "expression")


class ViewFileError(ValueError):
    """A file in sql/analytics whose header cannot be read; the message names the file and line."""


@dataclass(frozen=True)
class DeclaredTest:
    kind: str  # one of TEST_KINDS
    columns: tuple[str, ...] = ()
    values: tuple[str, ...] = ()  # accepted_values
    target: str = ""  # relationships: analytics.view.column
    expression: str = ""

    def describe(self) -> str:
        if self.kind == "accepted_values":
            return f"accepted_values: {self.columns[0]} in ({', '.join(self.values)})"
        if self.kind == "relationships":
            return f"relationships: {self.columns[0]} -> {self.target}"
        if self.kind == "expression":
            return f"expression: {self.expression}"
        return f"{self.kind}: {', '.join(self.columns)}"


@dataclass(frozen=True)
class ViewSpec:
    name: str
    layer: str
    path: Path
    question: str
    grain: str
    columns: tuple[tuple[str, str], ...]
    tests: tuple[DeclaredTest, ...]
    body: str
    tables: tuple[str, ...] = ()  # store tables it reads
    depends_on: tuple[str, ...] = ()  # analytics views it reads

    @property
    def qualified(self) -> str:
        return f"{SCHEMA}.{self.name}"

    @property
    def sha(self) -> str:
        return hashlib.sha256(self.body.encode()).hexdigest()[:12]

    @property
    def comment(self) -> str:
        return f"{self.question} [sha:{self.sha}]"


def _parse_test(text: str, where: str) -> DeclaredTest:
    kind, sep, rest = text.partition(":")
    kind, rest = kind.strip(), rest.strip()
    if not sep or kind not in TEST_KINDS or not rest:
        raise ViewFileError(f"{where}: a test looks like `kind: arguments` with kind one of {', '.join(TEST_KINDS)}; "
                            f"got {text!r}")
    if kind in ("unique", "not_null"):
        cols = tuple(c.strip() for c in rest.split(","))
        if not all(_NAME.match(c) for c in cols):
            raise ViewFileError(f"{where}: {kind} takes column names separated by commas, got {rest!r}")
        return DeclaredTest(kind, cols)
    if kind == "accepted_values":
        m = re.fullmatch(r"([a-z_][a-z0-9_]*)\s+in\s+\((.+)\)", rest)
        if not m:
            raise ViewFileError(f"{where}: accepted_values looks like `column in (a, b, c)`, got {rest!r}")
        return DeclaredTest(kind, (m.group(1),), tuple(v.strip() for v in m.group(2).split(",")))
    if kind == "relationships":
        m = re.fullmatch(r"([a-z_][a-z0-9_]*)\s*->\s*(analytics\.[a-z_][a-z0-9_]*\.[a-z_][a-z0-9_]*)", rest)
        if not m:
            raise ViewFileError(f"{where}: relationships looks like `column -> analytics.view.column`, got {rest!r}")
        return DeclaredTest(kind, (m.group(1),), target=m.group(2))
    return DeclaredTest(kind, expression=rest)


def parse_file(path: Path, layer: str) -> ViewSpec:
    """The spec of one view file; ViewFileError says which line is wrong and how it should look."""
    name = path.stem
    if not _NAME.match(name):
        raise ViewFileError(f"{path}: a view file is named lower_case.sql")
    if layer == "staging" and not name.startswith("stg_"):
        raise ViewFileError(f"{path}: staging views are named stg_<source>.sql")
    lines = path.read_text().splitlines()
    header: dict[str, str] = {}
    columns: list[tuple[str, str]] = []
    tests: list[DeclaredTest] = []
    section = None
    n = 0
    for n, line in enumerate(lines):
        if not line.startswith("--"):
            break
        text = line[2:]
        where = f"{path}:{n + 1}"
        m = re.match(r"^ ([a-z_]+):\s*(.*)$", text)
        if m and m.group(1) in ("question", "grain", "source", "columns", "tests"):
            key, value = m.groups()
            section = key if key in ("columns", "tests") else None
            if section is None:
                header[key] = value.strip()
            continue
        item = text.strip()
        if not item:
            continue
        if section == "columns":
            col, _, doc = item.partition(" ")
            if not _NAME.match(col):
                raise ViewFileError(f"{where}: a column line is `--   name  what it means`, got {item!r}")
            columns.append((col, doc.strip()))
        elif section == "tests":
            tests.append(_parse_test(item, where))
    else:
        n = len(lines)
    body = "\n".join(lines[n:]).strip().rstrip(";")
    for key in ("question", "grain"):
        if not header.get(key):
            raise ViewFileError(f"{path}: the header needs a `-- {key}: ...` line")
    if not columns:
        raise ViewFileError(f"{path}: the header needs a `-- columns:` list")
    if not tests:
        raise ViewFileError(f"{path}: the header needs a `-- tests:` list (at least one declared test)")
    if not body:
        raise ViewFileError(f"{path}: no SQL after the header")
    sql_only = re.sub(r"--[^\n]*", "", body)
    tables = tuple(sorted({f"{s}.{t}" for s, t in _TABLE_REF.findall(sql_only)}))
    deps = tuple(sorted(set(_VIEW_REF.findall(sql_only)) - {name}))
    return ViewSpec(name, layer, path, header["question"], header["grain"], tuple(columns), tuple(tests), body,
                    tables, deps)


def load_specs(root: Path = ANALYTICS_SQL) -> list[ViewSpec]:
    """Every view file, in an order that creates a view after the views it reads."""
    specs = {}
    for layer in LAYERS:
        for path in sorted((Path(root) / layer).glob("*.sql")):
            spec = parse_file(path, layer)
            if spec.name in specs:
                raise ViewFileError(f"{path}: a view named {spec.name} exists already ({specs[spec.name].path})")
            specs[spec.name] = spec
    for spec in specs.values():
        missing = [d for d in spec.depends_on if d not in specs]
        if missing:
            raise ViewFileError(f"{spec.path}: reads analytics.{missing[0]}, which no file in {root} defines")
        if spec.layer == "staging" and spec.depends_on:
            raise ViewFileError(f"{spec.path}: a staging view reads store tables only (it reads analytics.{spec.depends_on[0]})")
    ordered: list[ViewSpec] = []
    state: dict[str, int] = {}

    def visit(name: str, chain: tuple[str, ...]) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            raise ViewFileError(f"views read each other in a circle: {' -> '.join(chain + (name,))}")
        state[name] = 1
        for d in specs[name].depends_on:
            visit(d, chain + (name,))
        state[name] = 2
        ordered.append(specs[name])

    for name in specs:
        visit(name, ())
    return ordered


def spec_named(name: str, specs: list[ViewSpec] | None = None) -> ViewSpec:
    """The view called `name` (with or without `analytics.`); a LookupError lists the names there are."""
    specs = load_specs() if specs is None else specs
    short = name.removeprefix(f"{SCHEMA}.")
    for s in specs:
        if s.name == short:
            return s
    close = [s.name for s in specs if short in s.name or s.name in short]
    hint = f" (did you mean {', '.join(close[:3])}?)" if close else ""
    raise LookupError(f"no analytics view named {name!r}{hint}: `osr sql --list` lists them")


@dataclass
class ApplyResult:
    applied: list[str] = field(default_factory=list)  # created or replaced now
    unchanged: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # name -> what it waits for
    dropped: list[str] = field(default_factory=list)  # views whose file is gone


def stored_shas(con) -> dict[str, str]:
    """analytics view -> the file hash it was applied from ('' when it carries none)."""
    rows = con.execute("SELECT view_name, comment FROM duckdb_views() WHERE database_name = ? AND schema_name = ?",
                       [LAKE, SCHEMA]).fetchall()
    out = {}
    for view, comment in rows:
        m = _SHA_MARK.search(comment or "")
        out[view] = m.group(1) if m else ""
    return out


def waiting_for(spec: ViewSpec, tables: set[str], skipped: dict[str, str]) -> str | None:
    """Why `spec` cannot be created in a store holding `tables` (None: it can)."""
    missing = [t for t in spec.tables if t not in tables]
    if missing:
        return f"needs {', '.join(missing)}, not in the store yet"
    blocked = [d for d in spec.depends_on if d in skipped]
    if blocked:
        return f"reads analytics.{blocked[0]}, which is waiting"
    return None


def stale(con, specs: list[ViewSpec] | None = None) -> list[str]:
    """Views whose stored definition is missing or differs from its file (and could be created)."""
    specs = load_specs() if specs is None else specs
    have, tables, skipped = stored_shas(con), lake_tables(con), {}
    out = []
    for s in specs:
        why = waiting_for(s, tables, skipped)
        if why:
            skipped[s.name] = why
        elif have.get(s.name) != s.sha:
            out.append(s.name)
    return out


def apply_views(con, specs: list[ViewSpec] | None = None, force: bool = False) -> ApplyResult:
    """Create or replace every view whose file changed (all with `force`), in one store transaction
    under the writer lock; skip the views whose tables are not in the store yet."""
    specs = load_specs() if specs is None else specs

    def work(c) -> ApplyResult:
        res = ApplyResult()
        c.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
        have, tables = stored_shas(c), lake_tables(c)
        for s in specs:
            why = waiting_for(s, tables, res.skipped)
            if why:
                res.skipped[s.name] = why
                continue
            if not force and have.get(s.name) == s.sha:
                res.unchanged.append(s.name)
                continue
            try:
                c.execute(f"CREATE OR REPLACE VIEW {s.qualified} AS\n{s.body}")
            except Exception as exc:
                raise ViewFileError(f"{s.path}: the store refused the view: {str(exc).splitlines()[0]}") from exc
            comment = s.comment.replace("'", "''")  # COMMENT ON takes a literal, not a parameter
            c.execute(f"COMMENT ON VIEW {s.qualified} IS '{comment}'")
            res.applied.append(s.name)
        known = {s.name for s in specs}
        for view, sha in have.items():
            if sha and view not in known:  # one of ours (it carries a hash) whose file was removed
                c.execute(f"DROP VIEW IF EXISTS {SCHEMA}.{view}")
                res.dropped.append(view)
        return res

    return transaction(con, work)
