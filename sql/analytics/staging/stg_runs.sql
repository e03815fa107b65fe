-- question: What did each recorded run (e.g. `osr demo`) take in, produce, and how fast?
-- grain: one row per run (run_id)
-- source: ops.runs (summary JSON cast to columns; null where a run kind does not record a figure)
-- columns:
--   run_id                     the run
--   kind                       demo, ...
--   started_at                 UTC
--   finished_at                UTC
--   status                     ok / ...
--   model_id                   the live model of the run
--   uploads_in                 uploads produced
--   uploads_fused              uploads fused into moments
--   deadlettered               uploads dead-lettered
--   moments                    fused moments
--   decisions                  tuner decisions
--   notifications              delivered pushes
--   pushes                     pushes the lift was computed over
--   osr_purchase_rate          expected purchase rate of the pushes (generator's truth)
--   state_blind_purchase_rate  the same for ALS top-1 at random moments
--   lift                       osr_purchase_rate / state_blind_purchase_rate
--   readings_per_s             readings fused per second (first upload to last decision)
--   latency_p50_ms             produce -> notification, median
--   latency_p99_ms             produce -> notification, 99th percentile
-- tests:
--   unique: run_id
--   not_null: run_id, kind, started_at, status
SELECT
    run_id,
    kind,
    started_at,
    finished_at,
    status,
    summary ->> 'model_id'                                    AS model_id,
    (summary -> 'produced' ->> 'total')::BIGINT               AS uploads_in,
    (summary -> 'counts' ->> 'uploads_fused')::BIGINT         AS uploads_fused,
    (summary -> 'counts' ->> 'deadlettered')::BIGINT          AS deadlettered,
    (summary -> 'counts' ->> 'features')::BIGINT              AS moments,
    (summary -> 'counts' ->> 'decisions')::BIGINT             AS decisions,
    (summary -> 'counts' ->> 'notifications')::BIGINT         AS notifications,
    (summary -> 'lift' ->> 'pushes')::BIGINT                  AS pushes,
    (summary -> 'lift' ->> 'osr_purchase_rate')::DOUBLE       AS osr_purchase_rate,
    (summary -> 'lift' ->> 'state_blind_purchase_rate')::DOUBLE AS state_blind_purchase_rate,
    (summary -> 'lift' ->> 'lift')::DOUBLE                    AS lift,
    (summary -> 'figures' ->> 'readings_per_s')::DOUBLE       AS readings_per_s,
    (summary -> 'figures' ->> 'p50_ms')::DOUBLE               AS latency_p50_ms,
    (summary -> 'figures' ->> 'p99_ms')::DOUBLE               AS latency_p99_ms
FROM ops.runs
