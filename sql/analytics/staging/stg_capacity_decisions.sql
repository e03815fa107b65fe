-- question: What did the capacity planner decide, when, and why?
-- grain: one row per planner decision (decision_id)
-- source: ops.capacity_decisions (migration 090)
-- columns:
--   decision_id   the decision
--   run_id        the capacity loop
--   decided_at    when
--   policy        predictive_reactive / reactive_lag / ds2 / static
--   action        scale_up / scale_down_temporary / scale_down_permanent / restore / hold
--   workers_from  workers before
--   workers_to    workers after
--   state         STEADY / MIGRATION / PROBATION after the decision
--   reason        why
--   outcome       what the effector did, or why not
-- tests:
--   unique: decision_id
--   not_null: decision_id, run_id, decided_at, policy, action, workers_from, workers_to
SELECT
    decision_id,
    run_id,
    ts AS decided_at,
    policy,
    action,
    workers_from,
    workers_to,
    state,
    reason,
    outcome
FROM ops.capacity_decisions
