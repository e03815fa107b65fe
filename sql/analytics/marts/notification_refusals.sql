-- question: Why were pushes refused, per true state: which tuner reason stopped how many moments?
-- grain: one row per (true_state, reason_class) among refused moments
-- columns:
--   true_state        the generator's true state ('unknown' without ground truth)
--   reason_class      under_threshold, quiet_hours, opted_out, daily_cap, min_gap, stale, late_event, no_candidate, tuner_error, other
--   moments           refused moments
--   share_of_refused  moments / all refused moments of the state
--   example_reason    one reason as the tuner wrote it
-- tests:
--   unique: true_state, reason_class
--   not_null: true_state, reason_class, moments, share_of_refused, example_reason
--   accepted_values: reason_class in (under_threshold, quiet_hours, opted_out, daily_cap, min_gap, stale, late_event, no_candidate, tuner_error, other)
--   expression: share_of_refused > 0 AND share_of_refused <= 1
WITH
moments AS (SELECT * FROM analytics.moment_decisions),              -- import

refused AS (                                                         -- logic
    SELECT true_state, reason_class, count(*) AS moments, min(reason) AS example_reason
    FROM moments
    WHERE decision = 'refused'
    GROUP BY true_state, reason_class
),
final AS (                                                           -- final
    SELECT true_state, reason_class, moments,
           round(moments / sum(moments) OVER (PARTITION BY true_state), 4) AS share_of_refused,
           example_reason
    FROM refused
)
SELECT * FROM final
ORDER BY true_state, moments DESC
