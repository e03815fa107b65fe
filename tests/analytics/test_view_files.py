"""The files of sql/analytics hold to their layering and declare their tests; the header parser, the
charts and the CLI's errors behave (no store needed)."""

from __future__ import annotations

import re
import struct
import zlib

import numpy as np
import pytest

from pipelines.analytics import charts, views
from pipelines.ops.cli import main

SPECS = views.load_specs()


def test_every_view_has_a_header_and_tests():
    assert {s.layer for s in SPECS} == {"staging", "marts"}
    for s in SPECS:
        assert s.question.endswith("?"), f"{s.path}: the question should be a question"
        assert s.grain and s.columns and s.tests
        kinds = {t.kind for t in s.tests}
        assert "unique" in kinds and "not_null" in kinds, f"{s.path}: the grain needs a unique and a not_null test"


def test_staging_views_only_rename_and_cast():
    logic = re.compile(r"\b(JOIN|GROUP BY|WHERE|OVER|CASE|UNION|DISTINCT|HAVING|QUALIFY)\b", re.I)
    for s in (s for s in SPECS if s.layer == "staging"):
        assert s.name.startswith("stg_")
        assert len(s.tables) == 1, f"{s.path}: a staging view reads exactly one store table, reads {s.tables}"
        assert not logic.search(s.body), f"{s.path}: staging holds logic ({logic.search(s.body).group(0)})"


def test_marts_read_staging_or_marts_only_in_import_logic_final_ctes():
    for s in (s for s in SPECS if s.layer == "marts"):
        assert not s.tables, f"{s.path}: a mart reads store tables directly ({s.tables}); go through a stg_ view"
        positions = [s.body.find(f"-- {part}") for part in ("import", "logic", "final")]
        assert -1 not in positions and positions == sorted(positions), f"{s.path}: import -> logic -> final CTEs"


def test_views_come_after_what_they_read():
    seen = set()
    for s in SPECS:
        assert set(s.depends_on) <= seen, s.name
        seen.add(s.name)


def _write(tmp_path, layer, name, text):
    d = tmp_path / layer
    d.mkdir(parents=True, exist_ok=True)
    (d / f"{name}.sql").write_text(text)


HEADER = "-- question: q?\n-- grain: one row\n-- columns:\n--   a  the a\n-- tests:\n"


def test_a_bad_test_line_names_the_file_and_line(tmp_path):
    _write(tmp_path, "staging", "stg_x", HEADER + "--   uniq: a\nSELECT 1 AS a FROM ref.users\n")
    with pytest.raises(views.ViewFileError, match=r"stg_x.sql:6: a test looks like `kind: arguments`"):
        views.load_specs(tmp_path)


def test_missing_header_parts_and_circles_are_refused(tmp_path):
    _write(tmp_path, "staging", "stg_x", "-- question: q?\nSELECT 1 AS a FROM ref.users\n")
    with pytest.raises(views.ViewFileError, match="grain"):
        views.load_specs(tmp_path)
    _write(tmp_path, "staging", "stg_x", HEADER + "--   unique: a\nSELECT 1 AS a FROM ref.users\n")
    _write(tmp_path, "marts", "m1", HEADER + "--   unique: a\nSELECT * FROM analytics.m2\n")
    _write(tmp_path, "marts", "m2", HEADER + "--   unique: a\nSELECT * FROM analytics.m1\n")
    with pytest.raises(views.ViewFileError, match="circle"):
        views.load_specs(tmp_path)
    _write(tmp_path, "marts", "m2", HEADER + "--   unique: a\nSELECT * FROM analytics.nope\n")
    with pytest.raises(views.ViewFileError, match="analytics.nope, which no file"):
        views.load_specs(tmp_path)


def test_unknown_view_name_suggests_close_ones():
    with pytest.raises(LookupError, match="did you mean notification_funnel"):
        views.spec_named("funnel")


def _png_pixels(path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    w, h = struct.unpack(">II", data[16:24])
    idat = data.index(b"IDAT")
    n = struct.unpack(">I", data[idat - 4: idat])[0]
    raw = zlib.decompress(data[idat + 4: idat + 4 + n])
    rows = np.frombuffer(raw, dtype=np.uint8).reshape(h, 1 + 3 * w)[:, 1:].reshape(h, w, 3)
    return rows


def test_bar_chart_draws_taller_bars_for_larger_values(tmp_path):
    p = charts.bar_chart(tmp_path / "b.png", ["a", "b"], [("s", [1.0, 3.0])], title="t", size=(600, 400))
    img = _png_pixels(p)
    assert img.shape == (400, 600, 3)
    color = np.array(charts.PALETTE[0])
    mask = (img == color).all(axis=2)
    cols = np.where(mask[:, :330].any(axis=0))[0]  # the bars (left of the legend)
    left_bar, right_bar = cols[cols < 200], cols[cols >= 200]
    height = lambda c: mask[:, c].sum()  # noqa: E731
    assert height(right_bar[len(right_bar) // 2]) > 2.5 * height(left_bar[len(left_bar) // 2])


def test_charts_refuse_nothing_to_draw(tmp_path):
    with pytest.raises(ValueError, match="nothing to draw"):
        charts.bar_chart(tmp_path / "x.png", [], [])
    with pytest.raises(ValueError, match="every value is missing"):
        charts.line_chart(tmp_path / "x.png", ["a"], [("s", [None])])


def test_sql_without_a_store_says_what_to_do(empty_home, capsys):
    assert main(["sql", "notification_funnel"]) == 2
    err = capsys.readouterr().err
    assert "does not exist yet" in err and "osr db migrate" in err
    assert not (empty_home / "store").exists()  # a read never creates a store


def test_report_without_a_store_says_what_to_do(empty_home, capsys):
    assert main(["report", "--no-data-docs"]) == 2
    assert "osr db migrate" in capsys.readouterr().err


def test_sql_with_an_unknown_name_lists_how_to_find_names(empty_home, capsys):
    assert main(["sql", "no_such_view"]) == 2
    assert "no analytics view named 'no_such_view'" in capsys.readouterr().err
    assert main(["sql", "--list"]) == 0
    out = capsys.readouterr().out
    for s in SPECS:
        assert s.name in out and s.question in out


def test_report_into_a_file_says_to_name_a_folder(empty_home, tmp_path, capsys):
    f = tmp_path / "a_file"
    f.write_text("x")
    assert main(["report", "--out", str(f)]) == 2
    assert "is a file: name a folder" in capsys.readouterr().err
