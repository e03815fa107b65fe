-- question: What did each check or repartitioning of the live profile stream decide, and how good was the placement before and after?
-- grain: one row per check / repartitioning run (run_id)
-- source: ops.repartition_runs (migration 100)
-- columns:
--   run_id                  the run
--   started_at              UTC
--   finished_at             UTC
--   action                  plan / apply / force
--   status                  no-op / planned / applied / failed
--   reason                  the trigger's verdict, or the error
--   n_nodes                 nodes (workers) placed on
--   profiles                profiles placed
--   moved_profiles          profiles moved
--   moved_state             state moved (buckets)
--   total_state             all state
--   cluster_quality_before  Q^c before
--   balance_quality_before  Q^b before
--   overall_quality_before  Q before
--   cluster_quality         Q^c of the new placement (= before when nothing was applied)
--   balance_quality         Q^b of the new placement
--   migration_quality       Q^m of the new placement
--   overall_quality         Q of the new placement
--   migration_seconds       barriers written -> last moved profile installed
--   pause_p99_s             99th percentile of how long a moved profile's update waited
-- tests:
--   unique: run_id
--   not_null: run_id, started_at, action, status
--   accepted_values: status in (no-op, planned, applied, failed)
SELECT
    run_id,
    started_at,
    finished_at,
    action,
    status,
    reason,
    n_nodes,
    profiles,
    moved_profiles,
    moved_state,
    total_state,
    cluster_quality_before,
    balance_quality_before,
    overall_quality_before,
    cluster_quality,
    balance_quality,
    migration_quality,
    overall_quality,
    migration_seconds,
    pause_p99_s
FROM ops.repartition_runs
