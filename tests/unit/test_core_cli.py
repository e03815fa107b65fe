"""pipelines.ops.cli: `osr` and every subcommand answer --help; `osr config` lists every setting."""

from __future__ import annotations

import argparse
import json

import pytest

from pipelines import config
from pipelines.ops.cli import build_parser, main


def command_paths(parser: argparse.ArgumentParser, prefix=()) -> list[tuple[str, ...]]:
    paths = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                paths.append((*prefix, name))
                paths.extend(command_paths(sub, (*prefix, name)))
    return paths


PATHS = command_paths(build_parser())


def test_the_lead_commands_are_there():
    assert {("demo",), ("config",), ("db",), ("db", "migrate"), ("db", "compact"), ("query",), ("populate",), ("nightly",),
            ("sink",), ("stream",), ("stream", "worker"), ("stream", "produce")} <= set(PATHS)


def test_top_level_help(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: osr")
    for (name,) in [p for p in PATHS if len(p) == 1]:
        assert name in out


@pytest.mark.parametrize("path", PATHS, ids=[" ".join(p) for p in PATHS])
def test_every_subcommand_has_help(capsys, path):
    with pytest.raises(SystemExit) as exit_info:
        main([*path, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: osr {' '.join(path)}")


def test_subcommands_have_a_one_line_description():
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    helps = {c.dest: c.help for c in sub._choices_actions}
    assert all(helps.get(name) for name in sub.choices), helps


def test_missing_command_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([])
    assert exit_info.value.code == 2
    assert "usage: osr" in capsys.readouterr().err


def test_config_prints_every_setting(capsys, osr_home):
    assert main(["config"]) == 0
    out = capsys.readouterr().out
    for name in config.SETTINGS:
        assert f" {name} " in out
        assert config.SETTINGS[name][1] in out
    assert "* OSR_HOME" in out  # set in the environment (by the test)
    assert "  OSR_BROKER" in out
    assert f"= sqlite:{osr_home / 'store' / 'catalog.sqlite'}" in out


def test_db_migrate_then_query(capsys, osr_home):
    assert main(["db", "migrate"]) == 0
    assert "001_core_schemas.sql" in capsys.readouterr().out
    assert main(["db", "migrate"]) == 0
    assert "nothing (up to date)" in capsys.readouterr().out
    assert main(["query", "SELECT count(*) AS n FROM meta.migrations WHERE name LIKE '001%'", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == [{"n": 1}]


def test_db_compact_beside_a_query(capsys, osr_home):
    assert main(["db", "migrate"]) == 0
    capsys.readouterr()
    assert main(["db", "compact", "--keep-days", "0", "--delete-after", "0"]) == 0
    counts = json.loads(capsys.readouterr().out)
    from pipelines.store.db import MIGRATIONS_DIR

    n = len(list(MIGRATIONS_DIR.glob("*.sql")))
    assert counts["rows_flushed"] >= n  # the meta.migrations rows were inlined in the catalog
    assert main(["query", "SELECT count(*) AS n FROM meta.migrations", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == [{"n": n}]  # compaction lost no row


def test_query_without_a_store_is_a_clean_error(capsys):
    assert main(["query", "SELECT 1"]) == 2
    assert "osr db migrate" in capsys.readouterr().err
