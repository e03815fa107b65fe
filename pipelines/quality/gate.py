"""Run a Great Expectations 1.x suite on a DataFrame and keep the report.

GX's SQL datasource fails on DuckDB in GX 1.24 (every expectation errors with
`list index out of range`), so tables are loaded into pandas and validated there.
Each run writes Data Docs (HTML) and a JSON summary under OSR_REPORTS_DIR.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from pipelines import config

log = logging.getLogger(__name__)

#: Data Docs site name (the ephemeral context already owns "local_site").
SITE_NAME = "osr_quality"


@dataclass
class GateResult:
    """Outcome of one gate run. Gates never raise on bad data: the caller decides."""

    suite_name: str
    success: bool
    n_rows: int
    failures: list[str] = field(default_factory=list)
    report_path: Path | None = None
    docs_index: Path | None = None

    def summary(self) -> str:
        verdict = "PASSED" if self.success else "FAILED"
        lines = [f"gate {self.suite_name}: {verdict} on {self.n_rows} rows"]
        lines += [f"  - {f}" for f in self.failures]
        if self.docs_index:
            lines.append(f"  report: {self.docs_index}")
        return "\n".join(lines)


class GateFailed(RuntimeError):
    """Raised by `require()`, for callers (DAG tasks) that must stop on a failed gate."""

    def __init__(self, result: GateResult):
        super().__init__(result.summary())
        self.result = result


def _describe(res) -> str:
    cfg = res.expectation_config
    kwargs = {k: v for k, v in cfg.kwargs.items() if k not in ("batch_id", "result_format")}
    detail = ""
    r = res.result or {}
    if "unexpected_count" in r:
        detail = f" ({r.get('unexpected_count')} unexpected, e.g. {r.get('partial_unexpected_list', [])[:3]})"
    elif "observed_value" in r:
        detail = f" (observed {r.get('observed_value')})"
    if res.exception_info and res.exception_info.get("raised_exception"):
        detail += f" [error: {res.exception_info.get('exception_message')}]"
    return f"{cfg.type} {kwargs}{detail}"


def run_gate(df: pd.DataFrame, suite_name: str, expectations: list, reports_dir: Path | None = None) -> GateResult:
    """Validate `df` against `expectations` (GX expectation objects) as the suite `suite_name`."""
    import great_expectations as gx
    from great_expectations.checkpoint import UpdateDataDocsAction
    from great_expectations.data_context.types.base import ProgressBarsConfig

    if not re.fullmatch(r"[A-Za-z0-9_.-]+", suite_name):
        raise ValueError(f"suite name {suite_name!r}: use letters, digits, _ . -")
    reports = Path(reports_dir) if reports_dir else config.path("OSR_REPORTS_DIR", create=True)
    docs_dir = reports / "data_docs"
    docs_dir.mkdir(parents=True, exist_ok=True)

    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    context = gx.get_context(mode="ephemeral")
    # metric progress bars would flood task logs and the CLI
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    context.add_data_docs_site(
        site_name=SITE_NAME,
        site_config={
            "class_name": "SiteBuilder",
            "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(docs_dir)},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        },
    )
    source = context.data_sources.add_pandas(name=f"{suite_name}_source")
    asset = source.add_dataframe_asset(name=suite_name)
    batch = asset.add_batch_definition_whole_dataframe("whole_frame")
    suite = context.suites.add(gx.ExpectationSuite(name=suite_name))
    for expectation in expectations:
        suite.add_expectation(expectation)
    validation = context.validation_definitions.add(
        gx.ValidationDefinition(name=f"{suite_name}_validation", data=batch, suite=suite)
    )
    checkpoint = context.checkpoints.add(
        gx.Checkpoint(
            name=f"{suite_name}_checkpoint",
            validation_definitions=[validation],
            actions=[UpdateDataDocsAction(name="update_docs", site_names=[SITE_NAME])],
            result_format={"result_format": "SUMMARY"},
        )
    )
    run = checkpoint.run(batch_parameters={"dataframe": df})
    results = [r for vr in run.run_results.values() for r in vr.results]
    failures = [_describe(r) for r in results if not r.success]
    result = GateResult(
        suite_name=suite_name, success=bool(run.success) and not failures, n_rows=len(df), failures=failures
    )
    index = docs_dir / "index.html"
    result.docs_index = index if index.exists() else None
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    result.report_path = reports / "gates" / f"{stamp}_{suite_name}.json"
    result.report_path.parent.mkdir(parents=True, exist_ok=True)
    result.report_path.write_text(
        json.dumps(
            {"suite": suite_name, "success": result.success, "n_rows": len(df), "failures": failures,
             "n_expectations": len(results), "at": stamp},
            indent=2,
        )
    )
    log.info(result.summary())
    return result


def require(df: pd.DataFrame, suite_name: str, expectations: list, reports_dir: Path | None = None) -> GateResult:
    """`run_gate`, raising GateFailed when the data does not pass."""
    result = run_gate(df, suite_name, expectations, reports_dir)
    if not result.success:
        raise GateFailed(result)
    return result
