"""The baselines (pipelines.capacity.policies): static, KEDA-style lag threshold, DS2-style rate."""

from pipelines.capacity.decision import Observation
from pipelines.capacity.policies import Ds2Policy, LagThresholdPolicy, StaticPolicy


def obs(t, rate=100.0, workers=1, lag=0.0, true_rate=None, settled=True, partitions=4):
    return Observation(t=t, hour=0.0, arrival_rate=rate, processing_rate=rate, lag=lag, workers=workers,
                       partitions=partitions, true_rate=true_rate, settled=settled)


def test_static_holds_its_count():
    assert StaticPolicy(2).decide(obs(0, workers=1)).workers_to == 2
    assert StaticPolicy(2).decide(obs(0, workers=2)).action == "hold"


def test_keda_lag_over_threshold_capped_by_partitions_with_stabilized_scale_down():
    k = LagThresholdPolicy(lag_threshold=500, stabilization_s=30)
    assert k.decide(obs(0, lag=1200)).workers_to == 3  # ceil(1200 / 500)
    assert k.decide(obs(1, lag=10_000, workers=3)).workers_to == 4  # 20 wanted, 4 partitions
    d = k.decide(obs(10, lag=0, workers=4))
    assert d.workers_to == 4 and "stabilization" in d.reason  # the window still holds a desire of 4
    assert k.decide(obs(45, lag=0, workers=4)).workers_to == 1  # window passed: down to the minimum


def test_ds2_true_rate_target_utilization_stabilization_and_scale_down_delay():
    p = Ds2Policy(target_utilization=0.5, catch_up_s=10, stabilization_s=20, scale_down_delay_s=30)
    # demand 300/s + 1000/10 s = 400/s over 100 records per busy second x 0.5 -> 8, capped at 4 partitions
    d = p.decide(obs(0, rate=300, lag=1000, true_rate=100))
    assert d.workers_to == 4 and d.action == "scale_up"
    assert p.decide(obs(5, rate=10, workers=4, true_rate=100)).reason == "stabilizing after a rescale"
    d = p.decide(obs(25, rate=40, workers=4, true_rate=100))  # wants 1, waits for the delay
    assert d.workers_to == 4 and "waits" in d.reason
    assert p.decide(obs(56, rate=40, workers=4, true_rate=100)).workers_to == 1
    assert Ds2Policy().decide(obs(0)).reason == "no busy-time measurement yet"


def test_baselines_respect_the_operators_maximum_below_the_partitions():
    """KEDA's maxReplicaCount and Flink's maximum parallelism: the bench gives every policy the same cap."""
    k = LagThresholdPolicy(lag_threshold=100, maximum=2)
    d = k.decide(obs(0, lag=10_000, partitions=4))
    assert d.workers_to == 2 and "cap 2" in d.reason
    p = Ds2Policy(target_utilization=0.5, catch_up_s=10, maximum=2)
    assert p.decide(obs(0, rate=300, lag=1000, true_rate=100, partitions=4)).workers_to == 2
    # a maximum above the partitions changes nothing: one worker per partition still binds
    assert LagThresholdPolicy(lag_threshold=100, maximum=8).decide(obs(0, lag=10_000)).workers_to == 4
