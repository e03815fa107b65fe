"""Predictive + reactive planning with hysteresis: the planner this platform runs.

- Predictive: the hourly model's rate for the next `lead` (a worker's warm-up, in the load's
  hours), so capacity is up before the load is.
- Reactive: when the observed rate differs from the predicted one by more than `threshold`, the
  observation wins (above: size for it; below: the prediction ahead is scaled by observed /
  predicted, keeping the day's shape at the level the day actually has). A backlog adds
  lag / drain_s to the rate to size for.
- Sizing: M/M/c (pipelines.capacity.queueing) at the measured service rate per worker, so the
  latency percentile stays under the SLA; beta is the stage's tier factor.
- STEADY / MIGRATION: after a scale-up, samples are ignored until every worker is ready, the
  group has rebalanced and `warmup_s` passed (latency is high while partitions move; deciding on
  it would add workers that are removed later).
- Scale-down: one worker at a time, never within `warmup_s` of a scale-up, and only when the
  smoothed latency is low; first a temporary removal (PROBATION), restored at once if latency
  or backlog rise, permanent after `probation_s` of low latency.
- Headroom: never planned above `max_utilization` (M/M/c of one record is optimistic near saturation).
- Bounds: at least `minimum`, at most min(cap, partitions).
- Beyond the cap: when the need is beyond it and the workers are at it, the decision is
  "admission" with a plan (pipelines.capacity.admission: degraded, then deferring people) for
  the demand against the capacity at the cap (measured service rate * cap * max_utilization);
  back to "normal", again an "admission" decision, only when the demand is under
  `admission_exit` of that capacity (or a scale-up left the cap), so the mode does not flap. The
  demand here is the one now (observed rate + backlog / drain_s), not the prediction ahead: a plan
  reaches the workers in seconds, so unlike a worker it need not be started early, and deferring
  people for a load that has not come would only delay them. A plan may tighten at once, but it
  relaxes (toward normal) only `admission_hold_s` after the last change: the demand's backlog term
  is noisy, and without the hold the mode changed every sample at the edge of the capacity. While
  a plan is active the workers do less per record, so their measured rate is scaled back to a
  normal record's cost (`plan_cost`) before it feeds the service rate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from pipelines.capacity.admission import AdmissionPlan, plan_admission, plan_cost
from pipelines.capacity.analyze import Ewma, sla_risk
from pipelines.capacity.decision import Decision, Observation
from pipelines.capacity.predict import HourlyModel
from pipelines.capacity.queueing import workers_for_sla

STEADY, MIGRATION, PROBATION = "STEADY", "MIGRATION", "PROBATION"


@dataclass
class PlannerConfig:
    sla_s: float = 5.0  # latency target (seconds) at percentile q
    q: float = 0.99
    service_rate: float = 200.0  # records/s one worker serves (measured; updated from busy time)
    beta: float = 1.0  # tier factor: work per input record at this stage
    minimum: int = 1
    cap: int = 4  # most workers (further capped by the partitions)
    threshold: float = 0.3  # reactive trigger: |observed - predicted| / predicted
    drain_s: float = 30.0  # a backlog should drain within this
    warmup_s: float = 15.0  # MIGRATION lasts this long after the group settled
    probation_s: float = 20.0  # a temporary removal becomes permanent after this
    low: float = 0.3  # smoothed latency below low * SLA: room to remove a worker
    high: float = 0.8  # above high * SLA: at risk
    alpha: float = 0.4  # EWMA weight of the newest latency
    hours_per_s: float = 1 / 3600  # the load clock's hours per real second (compressed in a replay)
    rate_alpha: float = 0.3  # EWMA weight of a newly measured service rate
    #: the service rate is learnt only from samples whose workers were busy at least this share of the
    #: time: a lightly loaded worker runs micro-batches of a few records, whose per-batch cost (state
    #: ack, publish) makes records per busy second look low (bench/capacity.py: 80-106/s per worker
    #: at 2 workers off-peak, against 176-225/s for one saturated worker in the same runs' calibration),
    #: and a planner that believed it would call the cap too small and defer people it could serve
    rate_min_busy: float = 0.5
    #: headroom: M/M/c models one record's service, not the micro-batches, the hold for a person's other
    #: devices or the commit interval, so near saturation it is optimistic; never plan above this utilization
    max_utilization: float = 0.8
    #: admission control beyond the cap (pipelines.capacity.admission): candidates per person (the
    #: snapshot's top_n), how many degraded mode scores, and the scoring's share of a record's cost.
    #: 0.12, measured (README, admission section): in the chain in-process score + tune were 98 of 894
    #: us per upload (11 %; top 3 of 10 took the score stage from 83 to 27 us), the chain is ~75 % of a
    #: worker's busy time, and the osr.scores messages, 67 % of the published bytes (1,183 of 1,774 per
    #: upload; 401 with the top 3), add part of the publish's ~11 %. Deferring saves only the scoring
    #: here (the filter and features run for everyone), so admission mode can add at most 1/(1-0.12) - 1
    #: = 14 % capacity; beyond that the plan says so.
    candidates: int = 10
    degraded_top_k: int = 3
    score_share: float = 0.12
    admission_exit: float = 0.9  # back to normal only when demand <= this * the capacity at the cap
    admission_step: float = 0.1  # a new admit share is published when it moved by at least this
    admission_hold_s: float = 20.0  # a plan relaxes only this long after the last plan change


@dataclass
class Planner:
    config: PlannerConfig = field(default_factory=PlannerConfig)
    model: HourlyModel | None = None
    name: str = "predictive_reactive"
    state: str = STEADY
    _latency: Ewma = None
    _mu: Ewma = None
    _settled_at: float | None = None
    _last_up: float = -math.inf
    _probation_from: float | None = None
    _prev_lag: tuple[float, float] | None = None
    _admission_at: float = -math.inf  # when the last admission plan was decided
    admission: AdmissionPlan = None  # the plan the workers were last told (normal at start)

    def __post_init__(self):
        if self.admission is None:
            self.admission = AdmissionPlan("normal", None, 1.0, "no admission plan yet")
        self._latency = Ewma(self.config.alpha)
        self._mu = Ewma(self.config.rate_alpha)
        self._mu.add(self.config.service_rate)

    # -------------------------------------------------------------------------------------------
    def decide(self, obs: Observation) -> Decision:
        c = self.config
        inputs: dict = {"latency_s": obs.latency_s}
        if self.state == MIGRATION:  # samples of the warm-up feed neither the EWMA nor the service rate
            if not obs.settled:
                self._settled_at = None
                return self._hold(obs, "MIGRATION: workers starting or partitions rebalancing; sample ignored", inputs)
            self._settled_at = self._settled_at if self._settled_at is not None else obs.t
            if obs.t - self._settled_at < c.warmup_s:
                return self._hold(obs, f"MIGRATION: group settled {obs.t - self._settled_at:.0f} s ago, "
                                       f"warm-up {c.warmup_s:g} s; sample ignored", inputs)
            self.state = STEADY
            self._prev_lag = None

        latency = self._latency.add(obs.latency_s)
        busy_enough = obs.busy_fraction is None or obs.busy_fraction >= c.rate_min_busy
        if obs.true_rate and obs.settled and busy_enough:  # a record's rate at its normal cost, under a plan
            self._mu.add(obs.true_rate * plan_cost(self.admission, candidates=c.candidates,
                                                   score_share=c.score_share, defer_saves="score"))
        mu = self._mu.value
        growth = 0.0
        if self._prev_lag is not None and obs.t > self._prev_lag[0]:
            growth = (obs.lag - self._prev_lag[1]) / (obs.t - self._prev_lag[0])
        self._prev_lag = (obs.t, obs.lag)
        risk = sla_risk(latency, c.sla_s, high=c.high, low=c.low, lag=obs.lag, lag_growth_per_s=growth)
        cap = min(c.cap, obs.partitions)
        inputs.update({"latency_ewma_s": latency, "service_rate": mu, "risk": risk.level, "lag_growth_per_s": growth})

        lam_plan, why = self._rate_to_plan(obs, inputs)
        floor = min(cap, max(c.minimum, math.ceil(lam_plan * c.beta / (mu * c.max_utilization))))
        sizing = workers_for_sla(lam_plan, mu, c.sla_s, c.q, beta=c.beta, minimum=floor, cap=cap)
        if sizing.needed is None and floor < cap:  # the floor is not the binding limit: ask the model alone
            sizing = workers_for_sla(lam_plan, mu, c.sla_s, c.q, beta=c.beta, minimum=c.minimum, cap=cap)
        target = sizing.workers
        inputs.update({"rate_planned": lam_plan, "model_p_s": sizing.percentile_s, "needed": sizing.needed,
                       "beyond_cap": sizing.needed is None})
        reason = f"{why}; {sizing.reason}"
        if risk.level == "violation" and target <= obs.workers < cap and growth > 0:
            target = obs.workers + 1  # the model underestimates this load: measured latency wins
            reason += f"; {risk.reason} with a growing backlog -> one more worker"

        if self.state == PROBATION:
            if risk.level in ("risk", "violation") or target > obs.workers:
                return self._up(obs, max(target, obs.workers + 1), "restore",
                                f"temporary removal reverted: {risk.reason}; {reason}", inputs)
            if obs.t - self._probation_from >= c.probation_s:
                self.state, self._probation_from = STEADY, None
                return Decision(obs.t, self.name, "scale_down_permanent", obs.workers, obs.workers,
                                f"removal made permanent: latency stayed low for {c.probation_s:g} s ({risk.reason})",
                                self.state, inputs)
            return self._hold(obs, f"PROBATION: {risk.reason}", inputs)

        if target > obs.workers:
            return self._up(obs, target, "scale_up", reason, inputs)
        changed = self._admission(obs, obs.arrival_rate + obs.lag / c.drain_s, mu, cap, inputs)
        if changed is not None:
            return changed
        if self.admission.mode != "normal":
            a = self.admission
            reason += (f"; admission stays {a.mode} (top {a.top_k} candidates, {a.admit_share:.0%} of people "
                       f"admitted) until demand <= {c.admission_exit:g} x capacity {inputs['capacity_at_cap']:.1f}/s")
            if "admission_wanted" in inputs:
                reason += f" and {c.admission_hold_s:g} s have passed since the last plan change"
        if target < obs.workers:
            if obs.t - self._last_up < c.warmup_s + c.probation_s:
                return self._hold(obs, f"scale-down not within {c.warmup_s + c.probation_s:g} s of a scale-up; "
                                       f"{reason}", inputs)
            if risk.level != "low":
                return self._hold(obs, f"scale-down wanted but {risk.reason}; {reason}", inputs)
            self.state, self._probation_from = PROBATION, obs.t
            return Decision(obs.t, self.name, "scale_down_temporary", obs.workers, obs.workers - 1,
                            f"temporary removal of one worker ({risk.reason}); {reason}", self.state, inputs)
        return self._hold(obs, reason, inputs)

    # -------------------------------------------------------------------------------------------
    def _rate_to_plan(self, obs: Observation, inputs: dict) -> tuple[float, str]:
        c = self.config
        backlog = obs.lag / c.drain_s
        lam_obs = obs.arrival_rate
        if self.model is None:
            return lam_obs + backlog, f"reactive only: observed {lam_obs:.1f}/s + backlog {backlog:.1f}/s"
        lead_h = c.warmup_s * c.hours_per_s * 2  # a worker's start + warm-up, on the load's clock
        now = self.model.predict(obs.hour)
        ahead = self.model.peak_ahead(obs.hour, lead_h)
        inputs.update({"rate_predicted_now": now, "rate_predicted_ahead": ahead})
        if now > 0 and lam_obs > (1 + c.threshold) * now:
            return (max(lam_obs, ahead) + backlog,
                    f"reactive: observed {lam_obs:.1f}/s > predicted {now:.1f}/s by more than {c.threshold:.0%}")
        if now > 0 and lam_obs < (1 - c.threshold) * now:
            scaled = max(lam_obs * (1 + c.threshold), ahead * lam_obs / now)
            return (scaled + backlog,
                    f"reactive: observed {lam_obs:.1f}/s < predicted {now:.1f}/s; prediction scaled to {scaled:.1f}/s")
        return ahead + backlog, f"predictive: {ahead:.1f}/s ahead ({self.model.percentile:g}th pct of the hour)"

    def _admission(self, obs: Observation, demand: float, mu: float, cap: int, inputs: dict) -> Decision | None:
        """An "admission" decision when the admission mode (or the admit share, by admission_step)
        should change, else None; the current plan goes into the inputs either way. demand: the
        records/s to serve now (observed + backlog), not the prediction ahead."""
        c = self.config
        capacity = mu * cap * c.max_utilization / c.beta
        cur = self.admission
        # beyond the cap: the queueing model finds no count within it, or the headroom rule wants more
        beyond = (workers_for_sla(demand, mu, c.sla_s, c.q, beta=c.beta, minimum=cap, cap=cap).needed is None
                  or math.ceil(demand * c.beta / (mu * c.max_utilization)) > cap)
        if beyond and obs.workers >= cap:
            plan = plan_admission(demand, capacity, candidates=c.candidates, degraded_top_k=c.degraded_top_k,
                                  score_share=c.score_share, defer_saves="score")
            plan = AdmissionPlan(plan.mode, plan.top_k, plan.admit_share,
                                 f"{plan.reason} ({obs.workers} workers, the cap)")
        elif obs.workers < cap:
            plan = AdmissionPlan("normal", None, 1.0, f"{obs.workers} of at most {cap} workers: "
                                                     f"capacity is added by scaling, not by admission control")
        else:
            plan = AdmissionPlan("normal", None, 1.0, f"demand {demand:.1f}/s within capacity {capacity:.1f}/s "
                                                     f"at the cap")
        if (plan.mode == "normal" and cur.mode != "normal" and obs.workers >= cap
                and demand > c.admission_exit * capacity):
            plan = cur  # hysteresis: stay until demand is clearly under the capacity
        inputs.update({"admission_mode": plan.mode, "admit_share": plan.admit_share, "top_k": plan.top_k,
                       "capacity_at_cap": capacity})
        moved = (plan.mode == cur.mode == "admission"
                 and abs(plan.admit_share - cur.admit_share) >= c.admission_step)
        if plan.mode == cur.mode and not moved:
            return None
        held = obs.t - self._admission_at
        if _strictness(plan) < _strictness(cur) and held < c.admission_hold_s and obs.workers >= cap:
            inputs.update({"admission_mode": cur.mode, "admit_share": cur.admit_share, "top_k": cur.top_k,
                           "admission_wanted": plan.mode})
            return None  # relaxing waits for the hold; the decision's reason says the plan stays
        self.admission, self._admission_at = plan, obs.t
        why = f"admission {cur.mode} -> {plan.mode}: {plan.reason}"
        return Decision(obs.t, self.name, "admission", obs.workers, obs.workers, why, self.state, inputs, plan)

    def _up(self, obs: Observation, target: int, action: str, reason: str, inputs: dict) -> Decision:
        self.state, self._settled_at, self._last_up, self._probation_from = MIGRATION, None, obs.t, None
        return Decision(obs.t, self.name, action, obs.workers, target, reason, self.state, inputs)

    def _hold(self, obs: Observation, reason: str, inputs: dict) -> Decision:
        return Decision(obs.t, self.name, "hold", obs.workers, obs.workers, reason, self.state, inputs)


def _strictness(plan: AdmissionPlan) -> float:
    """How much a plan holds back: normal 0, degraded 1, admission 2 + the share of people deferred."""
    if plan.mode == "normal":
        return 0.0
    if plan.mode == "degraded":
        return 1.0
    return 2.0 + (1.0 - plan.admit_share)
