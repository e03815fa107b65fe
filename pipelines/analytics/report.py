"""`osr report`: one folder a person opens in a browser, offline: index.html with the plots (PNG) of
the analyst marts, each view's declared tests, and the Great Expectations Data Docs of every suite.

Why a folder of files: it can be zipped, mailed or served as it is, and needs nothing installed to
read. Each plot is drawn from one mart (sql/analytics/marts), so the picture and `osr sql NAME`
always say the same thing. Sections whose data the store does not hold yet (no QoS refresh, no
repartitioning or capacity run, or their tables not migrated) say "no data yet" and what would produce it.
"""

from __future__ import annotations

import html
import shutil
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from pipelines import config
from pipelines.analytics import charts, checks, views
from pipelines.store.db import connect

REFUSAL_ORDER = ["under_threshold", "quiet_hours", "opted_out", "daily_cap", "min_gap", "stale", "late_event",
                 "no_candidate", "tuner_error", "other"]
STATE_ORDER = ["workout", "commute", "near_store", "idle", "unknown"]


@dataclass
class Section:
    title: str
    question: str
    images: list[str] = field(default_factory=list)  # file names in the report folder
    note: str = ""  # what the picture shows, in numbers
    no_data: str = ""  # set when there is nothing to draw: what would produce it
    table: pd.DataFrame | None = None


@dataclass
class ReportResult:
    folder: Path
    index: Path
    sections: list[Section]
    checks: list[checks.CheckResult]
    docs: object  # data_docs.DocsResult or None
    skipped_views: dict[str, str]


def _short_ts(ts) -> str:
    return pd.Timestamp(ts).strftime("%m-%d %H:%M") if pd.notna(ts) else "?"


def _model_section(con, out: Path) -> Section:
    s = Section("Model metrics over time", "How good was each nightly model on its hold-out, and did it go live?")
    df = con.execute("SELECT * FROM analytics.model_history").df()
    if df.empty:
        s.no_data = "no model registered yet: run `osr nightly` (or the osr_nightly_retrain DAG)"
        return s
    labels = [f"v{int(r.version)} {_short_ts(r.trained_at)}" for r in df.itertuples()]
    series = [(name, [None if pd.isna(v) else float(v) for v in df[col]])
              for name, col in (("precision@10", "precision_at_10"), ("MAP@10", "map_at_10"), ("AUC", "auc"),
                                ("log-loss", "log_loss"))]
    charts.line_chart(out / "report_model_metrics.png", labels, series, title="Model hold-out metrics by model",
                      ylabel="metric", subtitle=f"{len(df)} model(s), live: "
                      f"{', '.join(df.model_id[df.is_live]) or 'none'}")
    s.images.append("report_model_metrics.png")
    s.table = df[["version", "model_id", "trained_at", "status", "precision_at_10", "map_at_10", "auc", "log_loss"]]
    return s


def _funnel_sections(con, out: Path) -> list[Section]:
    funnel = Section("Notification funnel", "How do scored moments become pushes and purchases, by true state?")
    refusals = Section("Refused, by reason", "Why were the other moments not pushed?")
    hours = Section("Funnel by hour of day", "When in the day are moments scored, refused and delivered?")
    df = con.execute("SELECT * FROM analytics.notification_funnel").df()
    if df.empty:
        for sec in (funnel, refusals, hours):
            sec.no_data = "no scored moments in the store yet: run `osr demo` (or the stream and the sink)"
        return [funnel, refusals, hours]
    by_state = df.groupby("true_state").sum(numeric_only=True)
    states = [st for st in STATE_ORDER if st in by_state.index] + [st for st in by_state.index if st not in STATE_ORDER]
    by_state = by_state.loc[states]
    converted_known = df.converted.notna().all() and df.delivered.sum() > 0
    stages = [("scored", "scored"), ("approved", "approved"), ("delivered", "delivered")]
    if converted_known:
        stages.append(("converted", "converted"))
    sub = ("converted: purchases of the pushed item within an hour" if converted_known else
           "converted: not shown, no purchase outcomes recorded for the pushed moments yet")
    charts.bar_chart(out / "report_funnel.png", states, [(label, by_state[col].tolist()) for label, col in stages],
                     title="Notification funnel by true state", ylabel="moments", subtitle=sub)
    funnel.images.append("report_funnel.png")
    total = df[["scored", "approved", "refused", "delivered"]].sum()
    funnel.note = (f"{int(total.scored)} moments scored, {int(total.approved)} approved "
                   f"({total.approved / max(total.scored, 1):.1%}), {int(total.refused)} refused, "
                   f"{int(total.delivered)} delivered. {sub}.")
    funnel.table = by_state[["scored", "approved", "refused", "delivered", "converted"]].reset_index()

    ref = con.execute("SELECT * FROM analytics.notification_refusals").df()
    if ref.empty:
        refusals.no_data = "no refused moments"
    else:
        piv = ref.pivot_table(index="true_state", columns="reason_class", values="moments", aggfunc="sum").fillna(0)
        piv = piv.loc[[st for st in states if st in piv.index]]
        reasons = [r for r in REFUSAL_ORDER if r in piv.columns]
        charts.bar_chart(out / "report_refusals.png", piv.index.tolist(),
                         [(r.replace("_", " "), piv[r].tolist()) for r in reasons], stacked=True,
                         title="Refused moments by tuner reason", ylabel="moments",
                         subtitle="stacked per true state")
        refusals.images.append("report_refusals.png")
        top = ref.groupby("reason_class").moments.sum().sort_values(ascending=False)
        refusals.note = "; ".join(f"{k.replace('_', ' ')} {int(v)}" for k, v in top.items())

    h = df.groupby("hour_utc")[["scored", "refused", "delivered"]].sum().reindex(range(24), fill_value=0)
    charts.line_chart(out / "report_funnel_by_hour.png", [f"{k:02d}" for k in h.index],
                      [(c, h[c].tolist()) for c in h.columns], title="Scored, refused, delivered by hour (UTC)",
                      ylabel="moments", y_range=(0, float(h.values.max()) * 1.1 or 1.0))
    hours.images.append("report_funnel_by_hour.png")
    return [funnel, refusals, hours]


def _lift_section(con, out: Path) -> Section:
    s = Section("OSR lift over state-blind", "Does pushing at the right moment sell more than the same recommender "
                                              "pushing at random moments?")
    lift = con.execute("SELECT * FROM analytics.osr_lift").df()
    mix = con.execute("SELECT * FROM analytics.push_mix_by_state").df()
    if not lift.empty:
        labels = [f"{_short_ts(r.finished_at)}" for r in lift.itertuples()]
        charts.bar_chart(out / "report_lift.png", labels,
                         [("OSR pushes", lift.osr_purchase_rate.tolist()),
                          ("state-blind", lift.state_blind_purchase_rate.tolist())],
                         title="Expected purchase rate of the pushes, per run", ylabel="purchase rate",
                         subtitle=f"latest lift {lift.lift.iloc[-1]:.2f}x over {int(lift.pushes.iloc[-1])} pushes "
                                  f"(generator's ground truth)")
        s.images.append("report_lift.png")
        last = lift.iloc[-1]
        s.note = (f"Latest run {last.run_id}: {last.osr_purchase_rate:.1%} vs {last.state_blind_purchase_rate:.1%} "
                  f"state-blind = {last.lift:.2f}x.")
    if not mix.empty and mix.pushes.sum() > 0:
        charts.bar_chart(out / "report_push_mix.png", mix.true_state.tolist(),
                         [("share of moments", mix.moment_share.tolist()), ("share of pushes", mix.push_share.tolist())],
                         title="Where the OSR pushes: pushes vs moments by true state", ylabel="share",
                         subtitle="a state-blind pusher would draw equal bars")
        s.images.append("report_push_mix.png")
    if not s.images:
        s.no_data = "no run has measured the lift yet: `osr demo` measures and records it"
    return s


def _qos_section(con, out: Path) -> Section:
    s = Section("QoS accuracy against the baselines", "How accurate is each QoS model on held-out observations, "
                                                     "against UIPCC, LACF and the other baselines?")
    df = con.execute("SELECT * FROM analytics.qos_model_accuracy").df()
    if df.empty:
        s.no_data = ("no QoS refresh has compared models yet: `osr qos ingest --matrix ...` then `osr qos refresh` "
                     "(or the qos_random_walk_refresh DAG)")
        return s
    runs = df.drop_duplicates("run_id")[["run_id", "created_at", "metric"]]
    models = sorted(df.model.unique(), key=lambda m: (not m.endswith(tuple(["RW-paper", "RW-tuned"])), m))
    if len(runs) == 1:
        r = df.sort_values("holdout_mae")
        charts.bar_chart(out / "report_qos_accuracy.png", r.model.tolist(), [("held-out MAE", r.holdout_mae.tolist())],
                         title=f"QoS held-out MAE by model ({runs.metric.iloc[0]})", ylabel="MAE (lower is better)",
                         subtitle=f"refresh {runs.run_id.iloc[0]}; published: {', '.join(r.model[r.chosen])}")
    else:
        labels = [_short_ts(t) for t in runs.created_at]
        series = []
        for m in models:
            by_run = df[df.model == m].set_index("run_id").holdout_mae
            series.append((m, [None if rid not in by_run.index else float(by_run[rid]) for rid in runs.run_id]))
        charts.line_chart(out / "report_qos_accuracy.png", labels, series, title="QoS held-out MAE by refresh",
                          ylabel="MAE (lower is better)")
    s.images.append("report_qos_accuracy.png")
    latest = df[df.run_id == runs.run_id.iloc[-1]].sort_values("rank_in_run")
    best = latest.iloc[0]
    s.note = (f"Latest refresh: best {best.model} MAE {best.holdout_mae:.4f}"
              + (f", {best.vs_best_baseline:.2f}x the best baseline's" if pd.notna(best.vs_best_baseline) else ""))
    s.table = latest[["model", "family", "holdout_mae", "vs_best_baseline", "chosen"]]
    return s


def _partition_section(con, out: Path, waiting: dict[str, str]) -> Section:
    s = Section("Partition qualities over time", "How good is the stream's partitioning (clustering, balance, "
                                                 "migration, overall quality) run by run?")
    if "partition_quality" in waiting:
        s.no_data = f"analytics.partition_quality {waiting['partition_quality']} (the live repartitioning records it)"
        return s
    df = con.execute("SELECT * FROM analytics.partition_quality").df()
    if df.empty:
        s.no_data = "no repartitioning check has run yet (`osr repartition plan|apply`, or its DAG)"
        return s
    labels = [_short_ts(t) for t in df.started_at]
    series = [(name, [None if pd.isna(v) else float(v) for v in df[col]])
              for name, col in (("clustering Qc", "cluster_quality"), ("balance Qb", "balance_quality"),
                                ("migration Qm", "migration_quality"), ("overall Q", "overall_quality"))]
    charts.line_chart(out / "report_partition_quality.png", labels, series, title="Partition qualities by run",
                      ylabel="quality", subtitle=f"{len(df)} run(s), {int((df.status == 'applied').sum())} applied")
    s.images.append("report_partition_quality.png")
    last = df.iloc[-1]
    s.note = (f"Latest run {last.run_id} ({last.status}): Q {last.overall_quality:.3f}"
              + (f", moved {last.moved_share:.1%} of the state" if pd.notna(last.moved_share) else "") + ".")
    s.table = df[["run_id", "started_at", "status", "cluster_quality", "balance_quality", "migration_quality",
                  "overall_quality", "moved_share", "pause_p99_s"]]
    return s


def _load_section(con, out: Path, waiting: dict[str, str]) -> Section:
    s = Section("Load, workers and latency", "How much load came in, how many workers served it, and how late were "
                                             "the pushes?")
    missing = []
    runs = con.execute("SELECT * FROM analytics.stream_runs").df()
    timed = runs[runs.latency_p50_ms.notna()] if not runs.empty else runs
    if not timed.empty:
        labels = [_short_ts(t) for t in timed.started_at]
        charts.bar_chart(out / "report_latency.png", labels,
                         [("p50", timed.latency_p50_ms.tolist()), ("p99", timed.latency_p99_ms.tolist())],
                         title="Push latency per run: produce to notification", ylabel="ms",
                         subtitle="record timestamps; a flooded demo stream includes its queueing")
        charts.bar_chart(out / "report_throughput.png", labels, [("readings/s", timed.readings_per_s.tolist())],
                         title="Readings fused per second, per run", ylabel="readings/s",
                         subtitle="first upload to last decision")
        s.images += ["report_latency.png", "report_throughput.png"]
        s.table = timed[["run_id", "seconds", "uploads_in", "reconciled", "readings_per_s", "latency_p50_ms",
                         "latency_p99_ms"]]
    else:
        missing.append("push latency and throughput: no run with stream figures yet (`osr demo` records them)")
    if "capacity_sla" in waiting:
        missing.append(f"workers and capacity: analytics.capacity_sla {waiting['capacity_sla']}")
    else:
        sla = con.execute("SELECT * FROM analytics.capacity_sla").df()
        if sla.empty:
            missing.append("workers and capacity: no capacity run recorded yet (the capacity loop records them)")
        else:
            last = sla.iloc[-1]
            samples = con.execute("SELECT * FROM analytics.stg_capacity_samples WHERE run_id = ? AND group_id = ? "
                                  "ORDER BY sampled_at", [last.run_id, last.group_id]).df()
            t0 = samples.sampled_at.iloc[0]
            labels = [f"{(t - t0).total_seconds():.0f}s" for t in samples.sampled_at]
            charts.line_chart(out / "report_capacity_load.png", labels,
                              [("arrival rec/s", samples.arrival_rate.tolist()),
                               ("processed rec/s", samples.processing_rate.tolist())],
                              title=f"Load of {last.group_id} in capacity run {last.run_id}", ylabel="records/s")
            lat = [None if pd.isna(v) else float(v) for v in samples.latency_p99_s]
            charts.line_chart(out / "report_capacity_workers.png", labels,
                              [("workers", samples.workers.astype(float).tolist()), ("latency p99 s", lat),
                               ("SLA s", [float(last.sla_s)] * len(samples))],
                              title="Workers and latency against the SLA", ylabel="workers / seconds",
                              subtitle=f"{int(last.samples_over_sla)} of {int(last.samples)} samples over the "
                                       f"{last.sla_s:g} s SLA",
                              y_range=(0.0, max([float(samples.workers.max()), float(last.sla_s)]
                                                + [v for v in lat if v is not None]) * 1.1))
            s.images += ["report_capacity_load.png", "report_capacity_workers.png"]
            s.table = sla
    s.note = " ".join(f"No data yet for {m}." for m in missing) if s.images else ""
    if not s.images:
        s.no_data = "; ".join(missing)
    return s


def _page(result: ReportResult, catalog: str, specs: list[views.ViewSpec]) -> str:
    esc = html.escape
    parts = [f"""<!doctype html><html><head><meta charset="utf-8"><title>OSR report</title>
<style>body{{font-family:sans-serif;max-width:1150px;margin:2em auto;padding:0 1em;color:#222}}
img{{max-width:100%;border:1px solid #ddd;margin:.5em 0}} .nodata{{color:#a33;font-style:italic}}
table{{border-collapse:collapse;font-size:.85em;margin:.5em 0}} td,th{{border:1px solid #ccc;padding:2px 6px}}
.pass{{color:#272}} .fail{{color:#a22;font-weight:bold}} code{{background:#f4f4f4}}</style></head><body>
<h1>OSR platform report</h1>
<p>Generated {esc(datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC'))} from the store <code>{esc(catalog)}</code>.
Every plot is drawn from one analyst view (<code>osr sql --list</code>).</p><ul>"""]
    for k, sec in enumerate(result.sections):
        parts.append(f'<li><a href="#s{k}">{esc(sec.title)}</a></li>')
    parts.append('<li><a href="#quality">Data quality (Great Expectations Data Docs)</a></li>'
                 '<li><a href="#views">Analyst views and their tests</a></li></ul>')
    for k, sec in enumerate(result.sections):
        parts.append(f'<h2 id="s{k}">{esc(sec.title)}</h2><p><em>{esc(sec.question)}</em></p>')
        if sec.no_data:
            parts.append(f'<p class="nodata">No data yet: {esc(sec.no_data)}</p>')
        for img in sec.images:
            parts.append(f'<img src="{esc(img)}" alt="{esc(sec.title)}">')
        if sec.note:
            parts.append(f"<p>{esc(sec.note)}</p>")
        if sec.table is not None and not sec.table.empty:
            parts.append(sec.table.to_html(index=False, float_format=lambda v: f"{v:.4g}", border=0))
    parts.append('<h2 id="quality">Data quality</h2>')
    docs = result.docs
    if docs is None:
        parts.append('<p class="nodata">Data Docs not built (--no-data-docs).</p>')
    else:
        if docs.index:
            parts.append(f'<p><a href="data_docs/index.html">Great Expectations Data Docs</a> of every suite, validated '
                         f'now on the store and the live snapshot (the page loads its styles from the web; the '
                         f'content reads offline too).</p>')
        parts.append("<table><tr><th>suite</th><th>rows</th><th>result</th></tr>")
        for r in docs.suites:
            verdict = (f'<span class="nodata">skipped: {esc(r.skipped)}</span>' if r.skipped else
                       '<span class="pass">passed</span>' if r.success else
                       f'<span class="fail">FAILED</span> {esc("; ".join(r.failures[:3]))}')
            parts.append(f"<tr><td>{esc(r.suite)}</td><td>{r.rows}</td><td>{verdict}</td></tr>")
        parts.append("</table>")
    parts.append('<h2 id="views">Analyst views</h2><table><tr><th>view</th><th>question</th><th>declared tests</th></tr>')
    by_view: dict[str, list[checks.CheckResult]] = {}
    for c in result.checks:
        by_view.setdefault(c.view, []).append(c)
    for spec in specs:
        res = by_view.get(spec.name, [])
        if spec.name in result.skipped_views:
            verdict = f'<span class="nodata">waiting: {esc(result.skipped_views[spec.name])}</span>'
        else:
            bad = [c for c in res if not c.ok]
            verdict = (f'<span class="pass">{len(res)} passed</span>' if not bad else
                       f'<span class="fail">{len(bad)} of {len(res)} failed</span>: ' +
                       esc("; ".join(c.line() for c in bad[:3])))
        parts.append(f"<tr><td><code>analytics.{esc(spec.name)}</code></td><td>{esc(spec.question)}</td>"
                     f"<td>{verdict}</td></tr>")
    parts.append("</table></body></html>")
    return "\n".join(parts)


def build_report(out_dir: Path | None = None, data_docs: bool = True, progress=None) -> ReportResult:
    """Apply the analyst views, draw every plot, run the views' tests, build the Data Docs, write index.html."""
    from pipelines.analytics import data_docs as docs_mod

    say = progress or (lambda m: None)
    out = Path(out_dir) if out_dir else config.path("OSR_REPORTS_DIR", create=True) / "report"
    con = connect(read_only=True)  # fails with what to do when there is no store yet
    con.close()
    say("applying the analyst views (sql/analytics) to the store")
    con = connect()
    try:
        specs = views.load_specs()
        applied = views.apply_views(con, specs)
    finally:
        con.close()
    say(f"  {len(applied.applied)} applied, {len(applied.unchanged)} unchanged, {len(applied.skipped)} waiting for tables")
    if out.exists():
        for old in out.glob("report_*.png"):
            old.unlink()
    out.mkdir(parents=True, exist_ok=True)
    con = connect(read_only=True)
    try:
        sections = []
        steps = [("model metrics", lambda: [_model_section(con, out)]),
                 ("notification funnel", lambda: _funnel_sections(con, out)),
                 ("OSR lift", lambda: [_lift_section(con, out)]),
                 ("QoS accuracy", lambda: [_qos_section(con, out)]),
                 ("partition qualities", lambda: [_partition_section(con, out, applied.skipped)]),
                 ("load, workers, latency", lambda: [_load_section(con, out, applied.skipped)])]
        for k, (name, step) in enumerate(steps, 1):
            say(f"[{k}/{len(steps)}] plotting {name}")
            sections += step()
        say("running the analyst views' declared tests")
        results = checks.check_all(con, specs, skip=set(applied.skipped))
    finally:
        con.close()
    bad = [r for r in results if not r.ok]
    say(f"  {len(results) - len(bad)} of {len(results)} passed" + (f"; failing: {bad[0].line()}" if bad else ""))
    docs = None
    if data_docs:
        say("building Great Expectations Data Docs for every suite")
        docs = docs_mod.build(out / "data_docs", progress=lambda m: say("  " + m))
    elif (out / "data_docs").exists():
        shutil.rmtree(out / "data_docs")
    result = ReportResult(out, out / "index.html", sections, results, docs, applied.skipped)
    result.index.write_text(_page(result, config.get("OSR_STORE_CATALOG"), specs))
    return result
