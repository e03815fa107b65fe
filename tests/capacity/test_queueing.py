"""M/M/c sizing against hand-worked cases (pipelines.capacity.queueing)."""

import math

import pytest

from pipelines.capacity.queueing import erlang_c, response_percentile, response_tail, workers_for_sla


def test_erlang_c_and_the_response_percentile_of_a_hand_worked_mmc():
    """lam = 2/s, mu = 1/s, so the offered load a = lam/mu = 2.

    c = 3 (rho = 2/3):
      sum_{k<3} a^k/k! = 1 + 2 + 2 = 5;  a^3/3! = 8/6 = 4/3;  times 1/(1 - rho) = 3 -> 4
      Erlang C = 4 / (5 + 4) = 4/9 = 0.4444
      the conditional wait is Exp(theta), theta = c*mu - lam = 1 = mu, so
      P(T > t) = (1 - 4/9) e^-t + (4/9)(1 + t) e^-t = e^-t (1 + 4t/9)
      p95: e^-t (1 + 4t/9) = 0.05 -> t = 4.0207 s (solved numerically)
    c = 4 (rho = 1/2):
      sum_{k<4} = 5 + 8/6 = 19/3;  a^4/4! = 2/3, times 1/(1 - 1/2) -> 4/3;  C = (4/3)/(23/3) = 4/23
      theta = 2: P(T > t) = (19/23) e^-t + (4/23)(2 e^-t - e^-2t) = (27/23) e^-t - (4/23) e^-2t
      p95 -> t = 3.1497 s
    c = 2: rho = 1, unstable (infinite percentile).
    So for a p95 SLA of 3.5 s the fewest workers are 4; for an SLA of 4.1 s, 3.
    """
    assert erlang_c(3, 2.0) == pytest.approx(4 / 9)
    assert erlang_c(4, 2.0) == pytest.approx(4 / 23)
    assert response_tail(1.0, 3, 2.0, 1.0) == pytest.approx(math.exp(-1) * (1 + 4 / 9))
    assert response_tail(1.0, 4, 2.0, 1.0) == pytest.approx(27 / 23 * math.exp(-1) - 4 / 23 * math.exp(-2))
    assert response_percentile(0.95, 3, 2.0, 1.0) == pytest.approx(4.0207, abs=1e-3)
    assert response_percentile(0.95, 4, 2.0, 1.0) == pytest.approx(3.1497, abs=1e-3)
    assert response_percentile(0.95, 2, 2.0, 1.0) == math.inf
    assert workers_for_sla(2.0, 1.0, 3.5, 0.95).workers == 4
    assert workers_for_sla(2.0, 1.0, 4.1, 0.95).workers == 3


def test_one_server_is_mm1():
    """M/M/1: P(wait) = rho and T ~ Exp(mu - lam), so the q-quantile is -ln(1 - q) / (mu - lam)."""
    assert erlang_c(1, 0.6) == pytest.approx(0.6)
    assert response_percentile(0.99, 1, 60.0, 100.0) == pytest.approx(-math.log(0.01) / 40.0, rel=1e-6)


def test_tier_factor_cap_and_minimum():
    base = workers_for_sla(150.0, 100.0, 0.1, 0.99)
    fan_out = workers_for_sla(150.0, 100.0, 0.1, 0.99, beta=2.0)
    assert fan_out.workers > base.workers  # twice the work per input needs more workers
    assert workers_for_sla(1.0, 100.0, 1.0, minimum=2).workers == 2
    capped = workers_for_sla(1000.0, 100.0, 0.1, cap=4)
    assert capped.workers == 4 and capped.needed is None and "admission" in capped.reason
    with pytest.raises(ValueError):
        workers_for_sla(1.0, 1.0, 0.0)
