-- question: For each scored moment, what was the person really doing, what did the tuner decide and why, was the push delivered, and did it sell?
-- grain: one row per scored moment (event_id)
-- columns:
--   event_id        the moment
--   user_id         the person
--   scored_at       the moment's time (UTC)
--   hour_utc        its hour of day, 0..23 (UTC)
--   true_state      the generator's true state; 'unknown' without ground truth
--   candidates      items scored for the moment
--   best_osr_score  the highest OSR score among them
--   decision        approved / refused / undecided (no tuner decision stored yet)
--   reason_class    approved, under_threshold, quiet_hours, opted_out, daily_cap, min_gap, stale, late_event, no_candidate, tuner_error, other; null when undecided
--   reason          the tuner's reason as written
--   delivered       whether the push reached the notifications topic (the push gateway)
--   item_id         the delivered item (null when not delivered)
--   converted       whether the person bought the pushed item within an hour; null when not delivered, or when no outcome was recorded after the push (no outcome feed for that period yet)
-- tests:
--   unique: event_id
--   not_null: event_id, user_id, scored_at, hour_utc, true_state, candidates, decision, delivered
--   accepted_values: decision in (approved, refused, undecided)
--   accepted_values: reason_class in (approved, under_threshold, quiet_hours, opted_out, daily_cap, min_gap, stale, late_event, no_candidate, tuner_error, other)
--   accepted_values: true_state in (workout, commute, idle, near_store, unknown)
--   relationships: event_id -> analytics.stg_tuner_decisions.event_id
--   relationships: user_id -> analytics.stg_users.user_id
--   expression: hour_utc BETWEEN 0 AND 23
--   expression: NOT delivered OR decision = 'approved'
--   expression: (decision = 'undecided') = (reason_class IS NULL)
WITH
scores AS (SELECT * FROM analytics.stg_osr_scores),                 -- import
decisions AS (SELECT * FROM analytics.stg_tuner_decisions),
notifications AS (SELECT * FROM analytics.stg_notifications),
truth AS (SELECT * FROM analytics.stg_state_truth),
outcomes AS (SELECT * FROM analytics.stg_outcomes),

scored_moments AS (                                                  -- logic
    SELECT event_id, any_value(user_id) AS user_id, min(scored_at) AS scored_at,
           count(*) AS candidates, max(osr_score) AS best_osr_score
    FROM scores
    GROUP BY event_id
),
classified AS (
    SELECT event_id, approved, reason,
           -- classified without the admission-control note a deferred / degraded moment carries (" [deferred ...]")
           CASE
               WHEN approved                          THEN 'approved'
               WHEN base_reason LIKE '%under threshold'    THEN 'under_threshold'
               WHEN base_reason = 'quiet hours'            THEN 'quiet_hours'
               WHEN base_reason = 'opted out'              THEN 'opted_out'
               WHEN base_reason LIKE 'daily cap%'          THEN 'daily_cap'
               WHEN base_reason LIKE 'similar item%'       THEN 'min_gap'
               WHEN base_reason LIKE 'stale%'              THEN 'stale'
               WHEN base_reason LIKE 'late event%'         THEN 'late_event'
               WHEN base_reason = 'no candidate'           THEN 'no_candidate'
               WHEN base_reason LIKE 'tuner error%'        THEN 'tuner_error'
               ELSE 'other'
           END AS reason_class
    FROM (SELECT *, regexp_replace(reason, ' \[[^\]]*\]$', '') AS base_reason FROM decisions)
),
outcome_feed AS (
    SELECT max(exposed_at) AS last_outcome_at FROM outcomes
),
conversions AS (
    SELECT n.notification_id, bool_or(o.purchased) AS bought
    FROM notifications n
    JOIN outcomes o
      ON o.user_id = n.user_id AND o.item_id = n.item_id
     AND o.exposed_at >= n.pushed_at AND o.exposed_at < n.pushed_at + INTERVAL 1 HOUR
    GROUP BY n.notification_id
),
final AS (                                                           -- final
    SELECT
        m.event_id,
        m.user_id,
        m.scored_at,
        hour(m.scored_at)::INTEGER                         AS hour_utc,
        coalesce(t.true_state, 'unknown')                  AS true_state,
        m.candidates,
        m.best_osr_score,
        CASE WHEN c.approved IS NULL THEN 'undecided'
             WHEN c.approved THEN 'approved' ELSE 'refused' END AS decision,
        c.reason_class,
        c.reason,
        n.notification_id IS NOT NULL                      AS delivered,
        n.item_id,
        CASE WHEN n.notification_id IS NULL THEN NULL
             WHEN f.last_outcome_at IS NULL OR f.last_outcome_at < n.pushed_at THEN NULL
             ELSE coalesce(v.bought, false) END            AS converted
    FROM scored_moments m
    LEFT JOIN classified c USING (event_id)
    LEFT JOIN truth t USING (event_id)
    LEFT JOIN notifications n USING (event_id)
    LEFT JOIN conversions v ON v.notification_id = n.notification_id
    CROSS JOIN outcome_feed f
)
SELECT * FROM final
