-- question: Per capacity run and consumer group: how much load came in, how many workers served it, and how often was the latency over the SLA?
-- grain: one row per (run_id, group_id) of the capacity monitor
-- columns:
--   run_id             the capacity loop (or bench policy run)
--   group_id           the consumer group watched
--   first_sample_at    first sample
--   last_sample_at     last sample
--   samples            monitor samples
--   mean_arrival_rate  records/s in, mean over samples
--   peak_arrival_rate  records/s in, highest sample
--   mean_processing_rate records/s committed, mean
--   min_workers        fewest workers run
--   max_workers        most workers run
--   worker_seconds     workers x seconds between samples, summed (what the run cost)
--   max_lag            largest backlog
--   p99_latency_max_s  highest per-sample p99 latency (produce -> committed)
--   sla_s              the latency target: 5 s, the planner's default (pipelines.capacity.plan.PlanParams.sla_s)
--   samples_over_sla   samples whose latency (p99, or the head of line's age if older) exceeded the SLA
--   share_over_sla     samples_over_sla / samples with a latency
--   decisions          planner decisions in the run (all policies)
--   scale_ups          decisions that added workers
--   scale_downs        decisions that removed workers
-- tests:
--   unique: run_id, group_id
--   not_null: run_id, group_id, samples, min_workers, max_workers, sla_s, samples_over_sla, decisions
--   expression: min_workers <= max_workers
--   expression: share_over_sla IS NULL OR share_over_sla BETWEEN 0 AND 1
--   expression: scale_ups + scale_downs <= decisions
WITH
samples AS (SELECT * FROM analytics.stg_capacity_samples),          -- import
decisions AS (SELECT * FROM analytics.stg_capacity_decisions),

params AS (SELECT 5.0::DOUBLE AS sla_s),                             -- logic
timed AS (
    SELECT s.*, p.sla_s,
           greatest(coalesce(s.latency_p99_s, s.head_age_s), coalesce(s.head_age_s, s.latency_p99_s)) AS latency_s,
           epoch(lead(s.sampled_at) OVER (PARTITION BY s.run_id, s.group_id ORDER BY s.sampled_at))
             - epoch(s.sampled_at) AS interval_s
    FROM samples s CROSS JOIN params p
),
per_group AS (
    SELECT run_id, group_id, min(sampled_at) AS first_sample_at, max(sampled_at) AS last_sample_at,
           count(*) AS samples, avg(arrival_rate) AS mean_arrival_rate, max(arrival_rate) AS peak_arrival_rate,
           avg(processing_rate) AS mean_processing_rate, min(workers) AS min_workers, max(workers) AS max_workers,
           sum(workers * coalesce(interval_s, 0)) AS worker_seconds, max(lag) AS max_lag,
           max(latency_p99_s) AS p99_latency_max_s, any_value(sla_s) AS sla_s,
           count(*) FILTER (WHERE latency_s > sla_s) AS samples_over_sla,
           count(latency_s) AS samples_with_latency
    FROM timed
    GROUP BY run_id, group_id
),
per_run_decisions AS (
    SELECT run_id, count(*) AS decisions,
           count(*) FILTER (WHERE workers_to > workers_from) AS scale_ups,
           count(*) FILTER (WHERE workers_to < workers_from) AS scale_downs
    FROM decisions
    GROUP BY run_id
),
final AS (                                                           -- final
    SELECT g.run_id, g.group_id, g.first_sample_at, g.last_sample_at, g.samples,
           round(g.mean_arrival_rate, 2) AS mean_arrival_rate, round(g.peak_arrival_rate, 2) AS peak_arrival_rate,
           round(g.mean_processing_rate, 2) AS mean_processing_rate, g.min_workers, g.max_workers,
           round(g.worker_seconds, 1) AS worker_seconds, g.max_lag, g.p99_latency_max_s, g.sla_s,
           g.samples_over_sla,
           round(g.samples_over_sla / nullif(g.samples_with_latency, 0), 4) AS share_over_sla,
           coalesce(d.decisions, 0) AS decisions, coalesce(d.scale_ups, 0) AS scale_ups,
           coalesce(d.scale_downs, 0) AS scale_downs
    FROM per_group g
    LEFT JOIN per_run_decisions d USING (run_id)
)
SELECT * FROM final
ORDER BY first_sample_at, run_id, group_id
