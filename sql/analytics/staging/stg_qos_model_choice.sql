-- question: How did every candidate model score on the same held-out observations of a QoS refresh?
-- grain: one row per (refresh, candidate model)
-- source: qos.model_choice
-- columns:
--   run_id        the refresh
--   metric        rt / tp
--   model         the candidate (HL-RW-paper, HL-RW-tuned, UIPCC, LACF, ...)
--   holdout_mae   MAE on the held-out observations (fit on the rest)
--   holdout_nmae  the same, normalised
--   cells         observations held out
--   seconds       the validation fit's wall time
--   chosen        whether it was published
--   created_at    UTC
-- tests:
--   unique: run_id, model
--   not_null: run_id, metric, model, chosen, created_at
--   accepted_values: metric in (rt, tp)
SELECT
    run_id,
    metric,
    model,
    holdout_mae,
    holdout_nmae,
    cells,
    seconds,
    chosen,
    created_at
FROM qos.model_choice
