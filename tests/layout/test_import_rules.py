"""The layout's rules, executable: which package may import which, and no import circle.

- The logic (`pipelines`, except the operator package `pipelines.ops`) never imports Faust,
  Airflow, `streams`, `dags` or `pipelines.ops`, so the same code runs in an agent, a task,
  a backfill and a test.
- `streams` and `dags` stay thin and never import the operator package either; `pipelines.ops`
  is the one place that knows `streams` and `dags` by name.
- No module imports, directly or through others, a module that imports it back.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN_IN_LOGIC = ("faust", "mode", "aiokafka", "airflow", "streams", "dags", "pipelines.ops")
FORBIDDEN_IN_THIN = ("pipelines.ops",)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imports(path: Path, top_level_only: bool = False) -> list[tuple[int, str]]:
    """(line, imported module) for every import in the file (resolving relative imports)."""
    tree = ast.parse(path.read_text(), str(path))
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    if top_level_only:  # module-level statements, including those under if / try at module level
        nodes = [n for stmt in tree.body for n in ast.walk(stmt)
                 if not isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]
    out = []
    pkg = module_name(path).split(".")
    if path.name != "__init__.py":
        pkg = pkg[:-1]
    for n in nodes:
        if isinstance(n, ast.Import):
            out += [(n.lineno, a.name) for a in n.names]
        elif isinstance(n, ast.ImportFrom):
            base = n.module or ""
            if n.level:
                base = ".".join(pkg[: len(pkg) - n.level + 1] + ([base] if base else []))
            out.append((n.lineno, base))
            out += [(n.lineno, f"{base}.{a.name}") for a in n.names]
    return out


def _matches(name: str, prefixes) -> str | None:
    return next((p for p in prefixes if name == p or name.startswith(p + ".")), None)


def logic_modules() -> list[Path]:
    return sorted(p for p in (ROOT / "pipelines").rglob("*.py") if "ops" not in p.relative_to(ROOT / "pipelines").parts)


def thin_modules() -> list[Path]:
    return sorted([*(ROOT / "streams").rglob("*.py"), *(ROOT / "dags").rglob("*.py")])


def violations(path: Path, forbidden) -> list[str]:
    return [f"{path.relative_to(ROOT)}:{line} imports {name}" for line, name in imports(path)
            if _matches(name, forbidden)]


@pytest.mark.parametrize("path", logic_modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_logic_never_imports_the_engines_or_the_operator_package(path):
    assert not violations(path, FORBIDDEN_IN_LOGIC)


@pytest.mark.parametrize("path", thin_modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_streams_and_dags_never_import_the_operator_package(path):
    assert not violations(path, FORBIDDEN_IN_THIN)


def test_the_rule_catches_an_added_import(tmp_path):
    """The checker is not blind: a logic module that imports faust (in any form) is reported."""
    for source in ("import faust\n", "from faust import Record\n", "def f():\n    import airflow.sdk\n",
                   "from streams.app import app\n", "from pipelines.ops import demo\n"):
        fake = ROOT / "pipelines" / "online" / "_probe_for_import_rule.py"
        try:
            fake.write_text(source)
            assert violations(fake, FORBIDDEN_IN_LOGIC), source
        finally:
            fake.unlink()


def _graph() -> dict[str, set[str]]:
    files = [*(ROOT / "pipelines").rglob("*.py"), *(ROOT / "streams").rglob("*.py"), *(ROOT / "dags").rglob("*.py")]
    mods = {module_name(f): f for f in files}
    graph = {}
    for name, f in mods.items():
        targets = set()
        for _line, imp in imports(f, top_level_only=True):
            # `from a.b import c` names a.b.c (a module or an attribute): keep the longest known module
            while imp and imp not in mods:
                imp = imp.rpartition(".")[0]
            if imp and imp != name:
                targets.add(imp)
        graph[name] = targets
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), i.e. import circles.
    A package's __init__ importing its own submodules is not counted (Python handles it)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w.startswith(v + "."):
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in list(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_circle():
    assert _cycles(_graph()) == []


def test_cycle_finder_finds_a_circle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
