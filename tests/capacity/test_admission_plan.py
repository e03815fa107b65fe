"""Admission control end to end on the planning side: the planner's "admission" decisions on synthetic
observations, the loop handing the plan to its sink, the plan's round trip through the store, and the
workers' follower."""

import logging

import pytest

from pipelines.capacity import admission_follow, store
from pipelines.capacity.admission import MIN_SHARE, AdmissionPlan, plan_admission, plan_cost
from pipelines.capacity.decision import Decision, Observation
from pipelines.capacity.loop import ControlLoop
from pipelines.capacity.plan import Planner, PlannerConfig
from pipelines.store import db

# service 100/s per worker, cap 2, headroom 0.8: the capped workers serve 160 records/s
CAPACITY = 160.0


def planner(**kw) -> Planner:
    cfg = dict(sla_s=5.0, service_rate=100.0, cap=2, drain_s=30.0, warmup_s=10.0, probation_s=10.0,
               candidates=10, degraded_top_k=3, score_share=0.5)
    cfg.update(kw)
    return Planner(PlannerConfig(**cfg))  # reactive only: the observed rate (plus backlog) is planned for


def obs(t, rate, workers=2, lag=0.0, latency=1.0, true_rate=None):
    return Observation(t=t, hour=12.0, arrival_rate=rate, processing_rate=rate, lag=lag, workers=workers,
                       partitions=4, latency_s=latency, true_rate=true_rate)


def test_at_the_cap_the_plan_goes_degraded_then_admission_then_back_to_normal_with_reasons():
    p = planner()
    assert p.decide(obs(0, 120.0)).action == "hold"  # within the capacity at the cap: nothing to do
    d = p.decide(obs(5, 200.0))  # > 160/s; degraded (cost 0.65) serves 246/s
    assert (d.action, d.workers_from, d.workers_to) == ("admission", 2, 2)
    assert d.admission.mode == "degraded" and d.admission.top_k == 3 and d.admission.admit_share == 1.0
    assert "normal -> degraded" in d.reason and "160.0/s" in d.reason and "the cap" in d.reason
    assert d.inputs["admission_mode"] == "degraded" and d.inputs["capacity_at_cap"] == pytest.approx(CAPACITY)
    assert p.decide(obs(10, 205.0)).action == "hold"  # same mode: no new decision
    d = p.decide(obs(15, 300.0))  # beyond the degraded capacity: defer people
    # only the scoring waits: (1 - 0.5) + 0.5 * 0.3 * a <= 160 / 300
    assert d.action == "admission" and d.admission.mode == "admission"
    assert d.admission.admit_share == pytest.approx((CAPACITY / 300 - 0.5) / 0.15)
    assert "degraded -> admission" in d.reason
    d = p.decide(obs(20, 150.0))  # under the capacity, but not under 0.9 of it: the plan stays
    assert d.action == "hold" and d.inputs["admission_mode"] == "admission" and "admission stays admission" in d.reason
    d = p.decide(obs(25, 100.0))  # clearly under, but only 10 s after the last change: the plan holds
    assert d.action == "hold" and p.admission.mode == "admission" and "20 s have passed" in d.reason
    d = p.decide(obs(35, 100.0))  # the hold passed: back to normal, with its reason
    assert d.action == "admission" and d.admission.mode == "normal" and d.admission.top_k is None
    assert "admission -> normal" in d.reason and "within capacity 160.0/s" in d.reason


def test_below_the_cap_the_planner_scales_and_never_admits():
    p = planner(cap=4)
    d = p.decide(obs(0, 300.0, workers=2))
    assert d.action == "scale_up" and d.workers_to > 2 and d.admission is None
    assert p.admission.mode == "normal"


def test_a_moved_admit_share_is_published_a_small_move_is_not():
    p = planner()
    first = p.decide(obs(0, 300.0))
    assert first.admission.mode == "admission"
    assert p.decide(obs(5, 305.0)).action == "hold"  # share moved by < admission_step
    assert p.decide(obs(10, 250.0)).action == "hold"  # a larger share relaxes the plan: after the hold
    d = p.decide(obs(20, 250.0))
    assert d.action == "admission" and d.admission.admit_share > first.admission.admit_share + 0.1


def test_a_plan_tightens_at_once_but_relaxes_only_after_the_hold():
    """At the edge of the capacity the backlog term made the plan change at every sample (seen in
    bench/capacity.py: 17 plan changes in 90 s). Tightening must not wait: a flash crowd is now."""
    p = planner(admission_hold_s=20.0)
    modes = [p.decide(obs(t, rate)).admission for t, rate in
             [(0, 200.0), (2, 140.0), (4, 210.0), (6, 120.0), (8, 300.0), (10, 120.0), (12, 100.0)]]
    changes = [(t, a.mode) for t, a in zip(range(0, 14, 2), modes) if a is not None]
    assert changes == [(0, "degraded"), (8, "admission")]  # up at once, never down within 20 s
    assert p.decide(obs(30, 100.0)).admission.mode == "normal"  # 22 s after the last change


def test_admission_follows_the_demand_now_not_the_prediction_ahead():
    """Workers start early for a predicted peak; people are not deferred for one: a plan takes effect
    in seconds, once the load is there."""
    from pipelines.capacity.predict import HourlyModel

    p = Planner(PlannerConfig(sla_s=5.0, service_rate=100.0, cap=2, drain_s=30.0, warmup_s=10.0,
                              score_share=0.5, threshold=10.0),  # the prediction wins over the observation
                model=HourlyModel(95, {h: 400.0 for h in range(24)}))
    d = p.decide(obs(0, 120.0))  # 400/s predicted, 120/s arriving: within the 160/s at the cap
    assert d.admission is None and p.admission.mode == "normal"
    d = p.decide(obs(5, 120.0, lag=3000.0))  # + a backlog of 3000 / 30 s: 220/s to serve now
    assert d.admission.mode == "degraded"


def test_while_degraded_the_measured_rate_is_taken_back_to_a_normal_records_cost():
    """Workers that score 3 of 10 candidates serve more records per busy second; taking that as the
    service rate would make the planner think the cap is enough and end the degraded mode at once."""
    p = planner(rate_alpha=1.0)
    p.decide(obs(0, 200.0))
    assert p.admission.mode == "degraded"
    cost = plan_cost(p.admission, candidates=10, score_share=0.5, defer_saves="score")
    d = p.decide(obs(5, 200.0, true_rate=100.0 / cost))  # what the degraded workers measure
    assert d.inputs["service_rate"] == pytest.approx(100.0) and p.admission.mode == "degraded"


def test_a_demand_beyond_what_deferring_scores_can_absorb_says_so():
    plan = plan_admission(1000.0, 100.0, score_share=0.12, defer_saves="score")
    # deferring would have to leave fewer than MIN_SHARE admitted: it stays degraded, no one deferred
    assert plan.mode == "degraded" and plan.admit_share == 1.0 and plan.top_k == 3
    assert "even with every score deferred" in plan.reason and f"{100 / 0.88:.1f}/s" in plan.reason
    assert "no one is deferred" in plan.reason
    # just inside what deferring can absorb, it defers, and never admits fewer than MIN_SHARE
    edge = plan_admission(100 / (0.88 + 0.036 * MIN_SHARE) - 0.01, 100.0, score_share=0.12, defer_saves="score")
    assert edge.mode == "admission" and edge.admit_share >= MIN_SHARE
    # the survey's model (a deferred person costs nothing) is still there, unchanged
    assert plan_admission(300, 100, score_share=0.5).admit_share == pytest.approx(100 / 0.65 / 300)
    with pytest.raises(ValueError):
        plan_admission(300, 100, defer_saves="nothing")


# --- the loop hands the plan on ------------------------------------------------------------------------

class _Monitor:
    def __init__(self, rates):
        self.rates = list(rates)

    def sample(self, _logs):
        from pipelines.capacity.monitor import Sample

        rate = self.rates.pop(0)
        return Sample(1000.0 + len(self.rates), "g", "t", 4, {}, {}, rate, rate, 0, 2, "Stable", 0.5, None, 1.0, 2, {})


class _Effector:
    workers = 2

    def apply(self, d):
        raise AssertionError("an admission decision must not start or stop workers")


def test_the_loop_gives_an_admission_decision_to_its_sink_and_retries_after_a_failed_one():
    got, fail = [], {"on": True}

    def sink(d: Decision) -> str:
        if fail["on"]:
            raise OSError("store away")
        got.append(d.admission)
        return f"recorded {d.admission.mode}"

    loop = ControlLoop(_Monitor([200.0, 200.0, 200.0]), planner(), _Effector(), hour_of=lambda t: 12.0,
                       admission_sink=sink, t0=0.0)
    _o, d, outcome = loop.step()
    assert d.action == "admission" and outcome.startswith("admission plan not recorded: OSError: store away")
    fail["on"] = False
    _o, d, outcome = loop.step()  # the workers never got it: decided again
    assert d.action == "admission" and outcome == "recorded degraded" and [p.mode for p in got] == ["degraded"]
    _o, d, outcome = loop.step()
    assert d.action == "hold" and outcome is None and loop.decisions[-2][1] == "recorded degraded"


# --- the store and the workers' follower -----------------------------------------------------------------

@pytest.fixture
def where(tmp_path):
    path = tmp_path / "store"
    c = db.connect(path)
    db.migrate(c)
    yield path, c
    c.close()


def test_plans_are_versioned_in_the_store_and_a_repeated_plan_adds_no_version(where):
    _path, con = where
    assert store.read_plan(con) is None
    deg = AdmissionPlan("degraded", 3, 1.0, "demand 200/s > capacity 160/s")
    assert store.write_plan(con, deg, by="run1", decision_id="run1:p:5.000") == 1
    assert store.write_plan(con, deg, by="run1") == 1
    version, plan, at = store.read_plan(con)
    assert (version, plan) == (1, deg) and at is not None
    assert store.write_plan(con, AdmissionPlan("admission", 3, 0.4, "more")) == 2
    assert store.write_plan(con, AdmissionPlan("normal", 3, 0.5, "fell")) == 3  # normal is normal: all, everyone
    assert store.read_plan(con)[1] == AdmissionPlan("normal", None, 1.0, "fell")
    assert con.execute("SELECT decision_id FROM ops.admission_plans WHERE version = 1").fetchone()[0] == "run1:p:5.000"
    for bad in (AdmissionPlan("panic", None, 1.0, ""), AdmissionPlan("admission", 3, 0.0, ""),
                AdmissionPlan("degraded", 0, 1.0, "")):
        with pytest.raises(ValueError):
            store.write_plan(con, bad)


def test_the_recorder_writes_the_decisions_plan_with_its_id(where):
    _path, con = where
    plan = AdmissionPlan("degraded", 3, 1.0, "r")
    out = store.admission_recorder(con, "run7")(Decision(12.5, "predictive_reactive", "admission", 2, 2, "why",
                                                          admission=plan))
    assert "version 1 (degraded)" in out
    assert con.execute("SELECT decided_by, decision_id FROM ops.admission_plans").fetchone() == \
        ("run7", "run7:predictive_reactive:12.500")


def test_the_follower_serves_normal_then_the_recorded_plan_and_keeps_it_while_the_store_is_away(
        where, monkeypatch, caplog):
    path, con = where
    f = admission_follow.AdmissionFollower(store=path)
    assert f.current().mode == "normal" and f.refresh().mode == "normal" and f.version is None
    deg = AdmissionPlan("degraded", 3, 1.0, "demand 200/s > capacity 160/s")
    store.write_plan(con, deg)
    assert f.current().mode == "normal"  # current() never reads the store
    assert f.refresh() == deg and f.current() == deg and f.version == 1

    def away(*_a, **_k):
        raise OSError("catalog unreachable")

    f._drop_connection()
    monkeypatch.setattr("pipelines.store.kept_connection.connect", away)
    caplog.clear()  # the INFO line of the plan read above is captured too when the root logger is at INFO
    with caplog.at_level(logging.WARNING, logger=admission_follow.__name__):
        for _ in range(3):
            assert f.refresh() == deg  # never raises, keeps the last plan
    warned = [r for r in caplog.records if r.name == admission_follow.__name__ and r.levelno >= logging.WARNING]
    assert len(warned) == 1 and "serving version 1 (degraded)" in warned[0].getMessage()
    monkeypatch.undo()
    store.write_plan(con, AdmissionPlan("normal", None, 1.0, "demand fell"))
    assert f.refresh().mode == "normal" and f.version == 2
    f.close()


def test_a_follower_that_never_reached_the_store_runs_normal(tmp_path):
    f = admission_follow.AdmissionFollower(store=tmp_path / "no" / "store-here")
    assert f.refresh().mode == "normal" and f.current().top_k is None
    f.close()


# --- osr capacity admission / status -------------------------------------------------------------------------

def test_osr_capacity_admission_records_a_plan_and_status_shows_its_mode_and_reason(tmp_path, monkeypatch, capsys):
    import json

    from pipelines import config
    from pipelines.capacity import monitor
    from pipelines.ops import cli

    for name in config.SETTINGS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OSR_HOME", str(tmp_path / "home"))

    class NoBroker:
        def __init__(self, *_a, **_k):
            raise ConnectionError("no broker at 127.0.0.1:1")

    monkeypatch.setattr(monitor, "Monitor", NoBroker)
    assert cli.main(["capacity", "admission", "admission", "--top-k", "2"]) == 2  # no --share: a clear error
    assert "needs --share" in capsys.readouterr().err
    assert cli.main(["capacity", "admission", "degraded", "--top-k", "2", "--reason", "flash crowd"]) == 0
    capsys.readouterr()
    assert cli.main(["capacity", "status", "--group", "g", "--topic", "t"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["broker"].startswith("unavailable: no broker")
    assert {k: out["admission"][k] for k in ("mode", "top_k", "admit_share", "reason", "version")} == \
        {"mode": "degraded", "top_k": 2, "admit_share": 1.0, "reason": "flash crowd", "version": 1}
    assert cli.main(["capacity", "admission", "normal"]) == 0
    capsys.readouterr()
    cli.main(["capacity", "status", "--group", "g", "--topic", "t"])
    assert json.loads(capsys.readouterr().out)["admission"]["mode"] == "normal"
