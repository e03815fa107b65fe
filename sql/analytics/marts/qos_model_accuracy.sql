-- question: How accurate was each QoS model on the same held-out observations, refresh by refresh, against the baselines (UIPCC, LACF, ...) it competed with?
-- grain: one row per (run_id, model) of every refresh that compared candidates
-- columns:
--   run_id             the refresh
--   created_at         when (UTC)
--   metric             rt / tp
--   model              the candidate
--   family             paper (the random walks: *-RW*) or baseline (every other model)
--   holdout_mae        MAE on the held-out observations (lower is better)
--   holdout_nmae       the same, normalised
--   cells              observations held out
--   chosen             the one published
--   best_baseline_mae  the lowest MAE of a baseline in the same refresh (null when none ran)
--   vs_best_baseline   holdout_mae / best_baseline_mae (< 1: better than every baseline)
--   rank_in_run        1 = lowest MAE of the refresh
-- tests:
--   unique: run_id, model
--   not_null: run_id, created_at, metric, model, family, chosen, rank_in_run
--   accepted_values: family in (paper, baseline)
--   accepted_values: metric in (rt, tp)
--   relationships: run_id -> analytics.stg_qos_runs.run_id
--   expression: holdout_mae IS NULL OR holdout_mae >= 0
WITH
choices AS (SELECT * FROM analytics.stg_qos_model_choice),           -- import

labelled AS (                                                        -- logic
    SELECT *, CASE WHEN model LIKE '%-RW%' THEN 'paper' ELSE 'baseline' END AS family
    FROM choices
),
final AS (                                                           -- final
    SELECT run_id, created_at, metric, model, family, holdout_mae, holdout_nmae, cells, chosen,
           min(holdout_mae) FILTER (WHERE family = 'baseline') OVER (PARTITION BY run_id) AS best_baseline_mae,
           round(holdout_mae / nullif(min(holdout_mae) FILTER (WHERE family = 'baseline')
                                      OVER (PARTITION BY run_id), 0), 4)            AS vs_best_baseline,
           rank() OVER (PARTITION BY run_id ORDER BY holdout_mae NULLS LAST)        AS rank_in_run
    FROM labelled
)
SELECT * FROM final
ORDER BY created_at, run_id, rank_in_run
