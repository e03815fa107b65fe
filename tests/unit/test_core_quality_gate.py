"""pipelines.quality: the interactions suite passes clean data, names what broke, and keeps a report."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from pipelines.quality import suites
from pipelines.quality.gate import GateFailed, GateResult, require, run_gate

USERS = ["u1", "u2"]
ITEMS = ["i1", "i2", "i3"]


def interactions(**over) -> pd.DataFrame:
    df = pd.DataFrame({
        "interaction_id": ["x1", "x2", "x3", "x4"],
        "user_id": ["u1", "u1", "u2", "u2"],
        "item_id": ["i1", "i2", "i2", "i3"],
        "weight": [1.0, 2.0, 1.0, 4.0],
        "ts": pd.to_datetime(["2026-11-02 10:00", "2026-11-03 11:00", "2026-11-04 12:00", "2026-11-05 13:00"]),
    })
    for col, values in over.items():
        df[col] = values
    return df


def test_clean_interactions_pass_and_report_under_osr_reports_dir(tmp_path, monkeypatch):
    reports = tmp_path / "reports_here"
    monkeypatch.setenv("OSR_REPORTS_DIR", str(reports))
    result = require(interactions(), "interactions_clean", suites.interactions(USERS, ITEMS))
    assert isinstance(result, GateResult)
    assert result.success is True and result.failures == [] and result.n_rows == 4
    assert result.report_path.parent == reports / "gates"
    assert result.report_path.name.endswith("_interactions_clean.json")
    summary = json.loads(result.report_path.read_text())
    assert summary["suite"] == "interactions_clean" and summary["success"] is True
    assert summary["n_rows"] == 4 and summary["failures"] == []
    assert summary["n_expectations"] == len(suites.interactions(USERS, ITEMS))
    assert result.docs_index == reports / "data_docs" / "index.html" and result.docs_index.exists()
    assert "PASSED on 4 rows" in result.summary()


@pytest.mark.parametrize("over, expectation, column, unexpected", [
    ({"user_id": ["u1", None, "u2", "u2"]}, "expect_column_values_to_not_be_null", "user_id", 1),
    ({"user_id": ["u1", "u1", "ghost", "u2"]}, "expect_column_values_to_be_in_set", "user_id", 1),
    ({"weight": [1.0, -2.0, 0.0, 4.0]}, "expect_column_values_to_be_between", "weight", 2),
], ids=["null_user", "unknown_user", "non_positive_weight"])
def test_bad_interactions_fail_naming_the_expectation(tmp_path, over, expectation, column, unexpected):
    result = run_gate(interactions(**over), "interactions_bad", suites.interactions(USERS, ITEMS),
                      reports_dir=tmp_path)
    assert result.success is False
    assert len(result.failures) == 1, result.failures
    failure = result.failures[0]
    assert failure.startswith(expectation)
    assert f"'column': '{column}'" in failure
    assert f"({unexpected} unexpected" in failure
    summary = json.loads(result.report_path.read_text())
    assert result.report_path.parent == tmp_path / "gates"
    assert summary["success"] is False and summary["failures"] == result.failures
    assert "FAILED on 4 rows" in result.summary() and failure in result.summary()


def test_require_raises_gate_failed_with_the_result(tmp_path):
    df = interactions(interaction_id=["x1", "x1", "x3", "x4"])
    with pytest.raises(GateFailed) as info:
        require(df, "interactions_dupes", suites.interactions(USERS, ITEMS), reports_dir=tmp_path)
    result = info.value.result
    assert result.success is False
    assert [f.split(" ")[0] for f in result.failures] == ["expect_column_values_to_be_unique"]
    assert "gate interactions_dupes: FAILED" in str(info.value)
    assert result.report_path.exists()


def test_suite_name_is_validated(tmp_path):
    with pytest.raises(ValueError, match="suite name"):
        run_gate(interactions(), "no spaces/allowed", [], reports_dir=tmp_path)
