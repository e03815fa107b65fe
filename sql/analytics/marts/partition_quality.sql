-- question: How good was the stream's partitioning run by run (clustering, balance, migration, overall quality), what did each repartitioning move and how long did moved profiles wait?
-- grain: one row per check / repartitioning run (run_id)
-- columns:
--   run_id                  the run
--   started_at              UTC
--   action                  plan / apply / force
--   status                  no-op / planned / applied / failed
--   n_nodes                 nodes placed on
--   cluster_quality         Q^c after the run (= before when nothing was applied)
--   balance_quality         Q^b after
--   migration_quality       Q^m after
--   overall_quality         Q after
--   overall_quality_before  Q before
--   quality_gain            overall_quality - overall_quality_before
--   moved_share             moved_state / total_state (0 when nothing moved)
--   migration_seconds       barriers written -> last moved profile installed
--   pause_p99_s             99th percentile wait of a moved profile's update
--   reason                  the trigger's verdict, or the error
-- tests:
--   unique: run_id
--   not_null: run_id, started_at, action, status
--   accepted_values: status in (no-op, planned, applied, failed)
--   relationships: run_id -> analytics.stg_repartition_runs.run_id
--   expression: moved_share IS NULL OR moved_share BETWEEN 0 AND 1
--   expression: migration_quality IS NULL OR migration_quality <= 1
WITH
runs AS (SELECT * FROM analytics.stg_repartition_runs),              -- import

scored AS (                                                          -- logic
    SELECT *,
           overall_quality - overall_quality_before                  AS quality_gain,
           coalesce(moved_state, 0) / nullif(total_state, 0)         AS moved_share
    FROM runs
),
final AS (                                                           -- final
    SELECT run_id, started_at, action, status, n_nodes, cluster_quality, balance_quality, migration_quality,
           overall_quality, overall_quality_before, round(quality_gain, 4) AS quality_gain,
           round(moved_share, 4) AS moved_share, migration_seconds, pause_p99_s, reason
    FROM scored
)
SELECT * FROM final
ORDER BY started_at, run_id
