-- question: How do scored moments turn into pushes and purchases, by the person's true state and the hour of day: scored -> approved (or refused, by reason) -> delivered -> converted?
-- grain: one row per (true_state, hour_utc) with at least one scored moment
-- columns:
--   true_state               the generator's true state ('unknown' without ground truth)
--   hour_utc                 hour of day of the moment, 0..23 (UTC)
--   scored                   moments scored
--   approved                 moments the tuner approved a push for
--   refused                  moments it refused
--   undecided                scored moments with no stored decision (yet)
--   refused_under_threshold  refused: best score under the rule's threshold
--   refused_quiet_hours      refused: the person's quiet hours
--   refused_opted_out        refused: the person opted out
--   refused_daily_cap        refused: the person's daily cap was reached
--   refused_min_gap          refused: a similar item was pushed too recently
--   refused_stale            refused: the state had moved on before the push
--   refused_other            refused for another reason (late event, no candidate, tuner error, ...)
--   delivered                pushes delivered (notifications topic)
--   converted                delivered pushes bought within an hour; null when no outcome was recorded for the period yet
--   approval_rate            approved / scored
-- tests:
--   unique: true_state, hour_utc
--   not_null: true_state, hour_utc, scored, approved, refused, undecided, delivered, approval_rate
--   accepted_values: true_state in (workout, commute, idle, near_store, unknown)
--   expression: approved + refused + undecided = scored
--   expression: refused_under_threshold + refused_quiet_hours + refused_opted_out + refused_daily_cap + refused_min_gap + refused_stale + refused_other = refused
--   expression: delivered <= approved
--   expression: converted <= delivered
--   expression: approval_rate BETWEEN 0 AND 1
WITH
moments AS (SELECT * FROM analytics.moment_decisions),              -- import

counted AS (                                                         -- logic
    SELECT
        true_state,
        hour_utc,
        count(*)                                                     AS scored,
        count(*) FILTER (WHERE decision = 'approved')                AS approved,
        count(*) FILTER (WHERE decision = 'refused')                 AS refused,
        count(*) FILTER (WHERE decision = 'undecided')               AS undecided,
        count(*) FILTER (WHERE reason_class = 'under_threshold')     AS refused_under_threshold,
        count(*) FILTER (WHERE reason_class = 'quiet_hours')         AS refused_quiet_hours,
        count(*) FILTER (WHERE reason_class = 'opted_out')           AS refused_opted_out,
        count(*) FILTER (WHERE reason_class = 'daily_cap')           AS refused_daily_cap,
        count(*) FILTER (WHERE reason_class = 'min_gap')             AS refused_min_gap,
        count(*) FILTER (WHERE reason_class = 'stale')               AS refused_stale,
        count(*) FILTER (WHERE decision = 'refused' AND reason_class IN
                         ('late_event', 'no_candidate', 'tuner_error', 'other')) AS refused_other,
        count(*) FILTER (WHERE delivered)                            AS delivered,
        -- null unless every delivered push of the group could be followed (an outcome feed covers it)
        CASE WHEN count(*) FILTER (WHERE delivered AND converted IS NULL) > 0 THEN NULL
             ELSE count(*) FILTER (WHERE converted) END              AS converted
    FROM moments
    GROUP BY true_state, hour_utc
),
final AS (                                                           -- final
    SELECT *, round(approved / scored, 4) AS approval_rate
    FROM counted
)
SELECT * FROM final
ORDER BY true_state, hour_utc
