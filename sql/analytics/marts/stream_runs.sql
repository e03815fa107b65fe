-- question: How much did each recorded stream run take in, did every upload reconcile, and how fast and how late were its pushes?
-- grain: one row per recorded run with stream figures (ops.runs, e.g. each `osr demo`)
-- columns:
--   run_id           the run
--   kind             demo, ...
--   started_at       UTC
--   seconds          wall time of the run
--   uploads_in       uploads produced
--   uploads_fused    uploads fused into moments
--   deadlettered     uploads dead-lettered (with their reason)
--   reconciled       uploads_in = uploads_fused + deadlettered
--   moments          fused moments
--   notifications    delivered pushes
--   readings_per_s   readings fused per second (first upload to last decision)
--   latency_p50_ms   produce -> notification, median (includes queueing of a flooded stream)
--   latency_p99_ms   produce -> notification, 99th percentile
-- tests:
--   unique: run_id
--   not_null: run_id, kind, started_at, uploads_in, reconciled
--   relationships: run_id -> analytics.stg_runs.run_id
--   expression: latency_p50_ms IS NULL OR latency_p50_ms <= latency_p99_ms
--   expression: deadlettered <= uploads_in
WITH
runs AS (SELECT * FROM analytics.stg_runs),                          -- import

streamed AS (                                                        -- logic
    SELECT *, epoch(finished_at) - epoch(started_at) AS seconds,
           coalesce(uploads_in = uploads_fused + deadlettered, false) AS reconciled
    FROM runs
    WHERE uploads_in IS NOT NULL
),
final AS (                                                           -- final
    SELECT run_id, kind, started_at, round(seconds, 1) AS seconds, uploads_in, uploads_fused, deadlettered,
           reconciled, moments, notifications, readings_per_s, latency_p50_ms, latency_p99_ms
    FROM streamed
)
SELECT * FROM final
ORDER BY started_at, run_id
