"""Great Expectations Data Docs for every suite of the platform, validated on what the store and the
live snapshot hold now, in one site whose index lists them all.

Why not the gates' own Data Docs: each gate run (pipelines.quality.gate) builds its site from a
fresh ephemeral context, so OSR_REPORTS_DIR/data_docs/index.html lists only the last suite that
ran. Here one context holds every suite (the nightly's input and output gates, the QoS observation
gates per metric) and the site is written to a new folder, then swapped in, so a reader never
sees half a site. A suite without data (no live model yet, no QoS observations) is listed as
skipped with the reason, never as passed.
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from pipelines import config
from pipelines.store.db import connect, run_sql_file

log = logging.getLogger(__name__)

#: Site name inside the GX context, and the folder under OSR_REPORTS_DIR the DAG refreshes.
SITE_NAME = "osr_all_suites"
DEFAULT_FOLDER = "data_docs_all"


@dataclass
class SuiteRun:
    suite: str
    rows: int = 0
    success: bool | None = None  # None: skipped
    failures: list[str] = field(default_factory=list)
    skipped: str | None = None  # why there was nothing to validate
    seconds: float = 0.0


@dataclass
class DocsResult:
    index: Path | None
    suites: list[SuiteRun]

    @property
    def failed(self) -> list[SuiteRun]:
        return [s for s in self.suites if s.success is False]


def suite_inputs(db_path: str | None = None) -> list[tuple[str, object, str | None]]:
    """(suite name, a function returning (DataFrame, expectations), or None and why it is skipped)."""
    from pipelines.online import snapshot as snap
    from pipelines.qos import store as qos_store
    from pipelines.qos.quality import observation_expectations
    from pipelines.quality import suites
    from pipelines.reco import nightly

    con = connect(db_path, read_only=True)
    try:
        users = [r[0] for r in con.execute("SELECT user_id FROM ref.users").fetchall()]
        items = [r[0] for r in con.execute("SELECT item_id FROM ref.items").fetchall()]
        inter = con.execute("SELECT * FROM events.interactions").df()
        train = run_sql_file(con, "propensity_training_set", max_age_s=nightly.DEFAULTS["max_feature_age_s"])
        qos = {m: con.execute("SELECT user_id, service_id, metric, value FROM qos.observations WHERE metric = ?",
                              [m]).df() for m in ("rt", "tp")}
        nodes = qos_store.node_counts(con)  # as the QoS refresh's own gate counts them (matrix rows / columns)
    finally:
        con.close()
    out: list[tuple[str, object, str | None]] = [
        ("interactions_input", lambda: (inter, suites.interactions(users, items)), None),
        ("propensity_training_input", lambda: (train, suites.propensity_training()), None),
    ]
    try:
        live = snap.load_snapshot()
    except (FileNotFoundError, OSError, ValueError) as exc:
        why = f"no live model snapshot yet ({str(exc).splitlines()[0][:120]}): run `osr nightly`"
        out += [(name, None, why) for name in ("topn_output", "topn_per_person", "osr_scores_output")]
    else:
        topn = pd.read_parquet(live.folder / "topn.parquet")
        n = int(live.meta["top_n"])
        snap_items = live.items.index.tolist()

        def scores():
            s = nightly.score_recent_history(live, db_path, 500)
            lo, hi = live.raw_range
            s["scaled_unclipped"] = (s.raw_score - lo) / (hi - lo) if hi > lo else 0.0
            return s, suites.osr_scores(snap_items)

        out += [("topn_output", lambda: (topn, suites.topn(users, snap_items, n)), None),
                ("topn_per_person", lambda: (nightly.per_person_counts(topn), suites.topn_per_person(n)), None),
                ("osr_scores_output", scores, None)]
    for metric, df in qos.items():
        name = f"qos_observations_{metric}"
        if df.empty:
            out.append((name, None, f"no {metric} observations in qos.observations: `osr qos ingest --metric {metric}`"))
        else:
            out.append((name, lambda df=df, metric=metric: (df, observation_expectations(int(nodes[0]), int(nodes[1]),
                                                                                          metric)), None))
    return out


def _describe(res) -> str:
    cfg = res.expectation_config
    kwargs = {k: v for k, v in cfg.kwargs.items() if k not in ("batch_id", "result_format", "value_set")}
    r = res.result or {}
    detail = f" ({r.get('unexpected_count')} unexpected)" if "unexpected_count" in r else \
        (f" (observed {r.get('observed_value')})" if "observed_value" in r else "")
    return f"{cfg.type} {kwargs}{detail}"


def build(out_dir: Path | None = None, db_path: str | None = None, progress=None) -> DocsResult:
    """Validate every suite and write one Data Docs site to `out_dir` (default
    OSR_REPORTS_DIR/data_docs_all); returns the index and each suite's outcome. Never raises on bad
    data: a failed suite is in the result (and red in the docs)."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    say = progress or (lambda m: None)
    out_dir = Path(out_dir) if out_dir else config.path("OSR_REPORTS_DIR", create=True) / DEFAULT_FOLDER
    building = out_dir.with_name(out_dir.name + ".building")
    shutil.rmtree(building, ignore_errors=True)
    building.mkdir(parents=True)
    for name in ("great_expectations", "great_expectations.data_context.types.base"):
        logging.getLogger(name).setLevel(logging.WARNING)  # GX sets INFO on some of its loggers
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    context.add_data_docs_site(site_name=SITE_NAME, site_config={
        "class_name": "SiteBuilder",
        "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(building)},
        "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
    })
    source = context.data_sources.add_pandas(name="osr_store")
    runs = []
    inputs = suite_inputs(db_path)
    for k, (name, make, skipped) in enumerate(inputs, 1):
        if make is None:
            runs.append(SuiteRun(name, skipped=skipped))
            say(f"[{k}/{len(inputs)}] {name}: skipped ({skipped})")
            continue
        t0 = time.perf_counter()
        df, expectations = make()
        batch = source.add_dataframe_asset(name=name).add_batch_definition_whole_dataframe("whole_frame")
        suite = context.suites.add(gx.ExpectationSuite(name=name))
        for e in expectations:
            suite.add_expectation(e)
        validation = context.validation_definitions.add(gx.ValidationDefinition(name=f"{name}_validation",
                                                                                 data=batch, suite=suite))
        checkpoint = context.checkpoints.add(gx.Checkpoint(name=f"{name}_checkpoint",
                                                           validation_definitions=[validation],
                                                           result_format={"result_format": "SUMMARY"}))
        result = checkpoint.run(batch_parameters={"dataframe": df})
        failures = [_describe(r) for vr in result.run_results.values() for r in vr.results if not r.success]
        run = SuiteRun(name, len(df), bool(result.success) and not failures, failures,
                       seconds=round(time.perf_counter() - t0, 2))
        runs.append(run)
        say(f"[{k}/{len(inputs)}] {name}: {'passed' if run.success else 'FAILED'} on {len(df)} rows "
            f"({run.seconds} s)")
    say("writing the Data Docs site")
    context.build_data_docs(site_names=[SITE_NAME])
    if out_dir.exists():
        old = out_dir.with_name(out_dir.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        out_dir.rename(old)
        building.rename(out_dir)
        shutil.rmtree(old, ignore_errors=True)
    else:
        building.rename(out_dir)
    index = out_dir / "index.html"
    return DocsResult(index if index.exists() else None, runs)


def refresh(db_path: str | None = None) -> dict:
    """The DAG's task: rebuild OSR_REPORTS_DIR/data_docs_all; returns a JSON-able summary (failed
    suites are reported, not raised: the docs exist to show them)."""
    res = build(db_path=db_path, progress=log.info)
    return {"index": str(res.index) if res.index else None,
            "suites": {s.suite: ("skipped: " + s.skipped) if s.skipped else ("passed" if s.success else "FAILED")
                       for s in res.suites},
            "failed": [s.suite for s in res.failed]}
