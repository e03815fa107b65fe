"""The predictive + reactive planner's rules (pipelines.capacity.plan) on synthetic observations."""

import pytest

from pipelines.capacity.decision import Observation
from pipelines.capacity.plan import MIGRATION, PROBATION, STEADY, Planner, PlannerConfig
from pipelines.capacity.predict import HourlyModel

FLAT = HourlyModel(95, {h: 100.0 for h in range(24)})


def obs(t, rate=100.0, workers=1, lag=0.0, latency=0.5, settled=True, hour=12.0, true_rate=None):
    return Observation(t=t, hour=hour, arrival_rate=rate, processing_rate=rate, lag=lag, workers=workers,
                       partitions=4, latency_s=latency, true_rate=true_rate, settled=settled)


def planner(**kw):
    cfg = dict(sla_s=5.0, q=0.99, service_rate=200.0, warmup_s=10.0, probation_s=10.0, threshold=0.3)
    cfg.update(kw)
    return Planner(PlannerConfig(**cfg), model=FLAT)


def test_predictive_sizing_when_the_observation_agrees():
    d = planner().decide(obs(0, rate=110.0))  # within 30 % of the prediction: the prediction is sized for
    assert d.action == "hold" and d.workers_to == 1 and d.reason.startswith("predictive")


def test_reactive_trigger_only_beyond_the_threshold():
    p = planner()
    below = p.decide(obs(0, rate=125.0))  # +25 %: not triggered
    assert "reactive" not in below.reason
    d = planner().decide(obs(0, rate=350.0))  # +250 % -> sized for the observation
    assert d.reason.startswith("reactive") and d.action == "scale_up" and d.workers_to >= 2
    assert d.inputs["rate_planned"] >= 350.0


def test_migration_ignores_samples_until_settled_and_warm():
    p = planner()
    up = p.decide(obs(0, rate=350.0))
    assert up.state == MIGRATION
    n = up.workers_to
    # while the group rebalances latency is awful; the planner must not add more workers on it
    for t in (2, 4, 6):
        d = p.decide(obs(t, rate=600.0, workers=n, latency=30.0, settled=False))
        assert d.action == "hold" and "MIGRATION" in d.reason
    d = p.decide(obs(8, rate=600.0, workers=n, latency=30.0, settled=True))  # settled, warm-up not over
    assert d.action == "hold" and "warm-up" in d.reason
    d = p.decide(obs(19, rate=600.0, workers=n, latency=1.0, settled=True))  # warm: decides again
    assert d.action == "scale_up" and d.workers_to > n and p._latency.value == pytest.approx(0.4 * 1.0 + 0.6 * 0.5)  # the 30 s warm-up samples not kept


def test_scale_down_is_temporary_then_permanent():
    p = planner()
    d = p.decide(obs(100, rate=20.0, workers=3, latency=0.2))  # low load, low latency: one worker off
    assert d.action == "scale_down_temporary" and d.workers_to == 2 and p.state == PROBATION
    d = p.decide(obs(105, rate=20.0, workers=2, latency=0.2))
    assert d.action == "hold" and "PROBATION" in d.reason  # no further removal during probation
    d = p.decide(obs(111, rate=20.0, workers=2, latency=0.2))
    assert d.action == "scale_down_permanent" and d.workers_to == 2 and p.state == STEADY
    d = p.decide(obs(112, rate=20.0, workers=2, latency=0.2))
    assert d.action == "scale_down_temporary" and d.workers_to == 1


def test_a_temporary_removal_is_restored_when_latency_rises():
    p = planner()
    p.decide(obs(100, rate=20.0, workers=3, latency=0.2))
    d = p.decide(obs(103, rate=20.0, workers=2, latency=4.9))  # EWMA climbs over 0.8 x SLA
    d = d if d.action == "restore" else p.decide(obs(104, rate=20.0, workers=2, latency=8.0))
    assert d.action == "restore" and d.workers_to == 3 and p.state == MIGRATION


def test_never_down_within_the_warm_up_of_an_up_and_not_while_latency_is_moderate():
    p = planner()
    p.decide(obs(0, rate=350.0))  # up to n
    n = p.decide(obs(1, rate=350.0)).workers_from  # (hold in MIGRATION)
    d = p.decide(obs(12, rate=20.0, workers=3, latency=0.2))  # load gone 12 s after an up: still held
    assert d.action == "hold" and "not within" in d.reason
    q = planner()
    d = q.decide(obs(100, rate=20.0, workers=3, latency=2.5))  # 0.5 x SLA: not low enough to remove
    assert d.action == "hold" and "scale-down wanted" in d.reason
    assert n >= 1


def test_cap_minimum_and_beyond_the_cap():
    d = planner(cap=8).decide(obs(0, rate=5000.0))
    assert d.workers_to == 4 and d.inputs["beyond_cap"]  # partitions (4) cap the workers
    p = planner(minimum=2)
    d = p.decide(obs(100, rate=1.0, workers=2, latency=0.1))
    assert d.workers_to == 2 and d.action == "hold"


def test_backlog_adds_to_the_rate_and_true_rate_updates_the_service_rate():
    p = planner(drain_s=10.0)
    d = p.decide(obs(0, rate=100.0, lag=3000.0))  # 100/s + 3000/10 s = 400/s to plan for
    assert d.inputs["rate_planned"] >= 400.0 and d.workers_to >= 3
    q = planner(rate_alpha=1.0)
    q.decide(obs(0, rate=100.0, true_rate=50.0))
    assert q._mu.value == 50.0


def test_the_service_rate_is_learnt_only_from_busy_workers():
    """Records per busy second of a mostly idle worker (tiny micro-batches) understate what it serves
    under load; learning from them made the planner defer people two workers could serve."""
    from dataclasses import replace

    q = planner(rate_alpha=1.0, service_rate=200.0)
    q.decide(replace(obs(0, rate=20.0, true_rate=90.0), busy_fraction=0.2))
    assert q._mu.value == 200.0  # idle: the sample does not teach the rate
    q.decide(replace(obs(5, rate=180.0, true_rate=170.0), busy_fraction=0.9))
    assert q._mu.value == 170.0  # busy: it does


def test_reactive_only_without_a_model():
    p = Planner(PlannerConfig(sla_s=5.0, service_rate=200.0))
    d = p.decide(obs(0, rate=100.0))
    assert d.reason.startswith("reactive only")


def test_utilization_ceiling_adds_headroom_the_queueing_model_alone_would_not():
    """At 180/s and 100/s per worker, M/M/2 meets a 5 s p99 (rho 0.9), but 0.9 > 0.8 headroom -> 3."""
    from pipelines.capacity.queueing import workers_for_sla

    assert workers_for_sla(180.0, 100.0, 5.0, 0.99).workers == 2
    d = planner(service_rate=100.0, max_utilization=0.8).decide(obs(0, rate=180.0))
    assert d.workers_to == 3
