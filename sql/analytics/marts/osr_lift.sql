-- question: Did pushing at the right moment sell more than pushing the same recommender's items at random moments (OSR lift over state-blind), run by run?
-- grain: one row per run that measured the lift (ops.runs, e.g. each `osr demo`)
-- columns:
--   run_id                     the run
--   finished_at                when it finished (UTC)
--   model_id                   the live model of the run
--   pushes                     pushes the OSR made (the baseline makes as many)
--   osr_purchase_rate          expected purchase rate of the OSR's pushes (generator's ground truth)
--   state_blind_purchase_rate  expected purchase rate of ALS top-1 pushed at random streamed moments
--   lift                       osr_purchase_rate / state_blind_purchase_rate (> 1: the moment matters)
--   lift_vs_previous           lift minus the previous run's lift (null for the first)
-- tests:
--   unique: run_id
--   not_null: run_id, finished_at, pushes, osr_purchase_rate, state_blind_purchase_rate, lift
--   relationships: run_id -> analytics.stg_runs.run_id
--   relationships: model_id -> analytics.stg_model_registry.model_id
--   expression: osr_purchase_rate BETWEEN 0 AND 1 AND state_blind_purchase_rate BETWEEN 0 AND 1
--   expression: pushes > 0
WITH
runs AS (SELECT * FROM analytics.stg_runs),                          -- import

measured AS (                                                        -- logic
    SELECT run_id, finished_at, model_id, pushes, osr_purchase_rate, state_blind_purchase_rate, lift
    FROM runs
    WHERE lift IS NOT NULL AND pushes > 0
),
final AS (                                                           -- final
    SELECT *, lift - lag(lift) OVER (ORDER BY finished_at, run_id) AS lift_vs_previous
    FROM measured
)
SELECT * FROM final
ORDER BY finished_at, run_id
