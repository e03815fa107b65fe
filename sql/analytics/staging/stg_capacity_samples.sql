-- question: What did the capacity monitor see at each sample: load, workers, backlog, latency?
-- grain: one row per monitor sample (sample_id)
-- source: ops.capacity_samples (migration 090)
-- columns:
--   sample_id        <run_id>:<epoch>
--   run_id           the capacity loop (or bench policy run) that took it
--   sampled_at       when
--   group_id         the consumer group watched
--   topic            its topic
--   partitions       the topic's partitions
--   arrival_rate     records/s into the topic
--   processing_rate  records/s the group committed
--   lag              records not committed yet
--   workers          workers the effector runs
--   members          members the group coordinator reports
--   busy_fraction    share of the interval the workers were busy
--   latency_p50_s    produce -> committed, median of the records committed since the last sample
--   latency_p99_s    the same, 99th percentile
--   head_age_s       age of the oldest record not committed yet
-- tests:
--   unique: sample_id
--   not_null: sample_id, run_id, sampled_at, group_id, lag, workers
--   expression: workers >= 0 AND lag >= 0
SELECT
    sample_id,
    run_id,
    ts AS sampled_at,
    group_id,
    topic,
    partitions,
    arrival_rate,
    processing_rate,
    lag,
    workers,
    members,
    busy_fraction,
    latency_p50_s,
    latency_p99_s,
    head_age_s
FROM ops.capacity_samples
