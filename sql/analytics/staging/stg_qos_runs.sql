-- question: What did each QoS refresh publish, and how accurate was it on its own hold-out?
-- grain: one row per refresh (run_id)
-- source: qos.runs
-- columns:
--   run_id          the refresh
--   metric          rt / tp
--   model           the published model
--   n_users         users in the matrix
--   n_services      services in the matrix
--   n_observations  observations it learned from
--   holdout_mae     MAE on observations held out of a validation fit
--   holdout_nmae    the same, normalised by the mean
--   seconds         fit + predict wall time
--   created_at      UTC
-- tests:
--   unique: run_id
--   not_null: run_id, metric, model, created_at
--   accepted_values: metric in (rt, tp)
SELECT
    run_id,
    metric,
    model,
    n_users,
    n_services,
    n_observations,
    holdout_mae,
    holdout_nmae,
    seconds,
    created_at
FROM qos.runs
