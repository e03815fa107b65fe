-- question: In which true states does the OSR push, against how often people are in each state (a state-blind pusher would match the moment share)?
-- grain: one row per true state seen in the stream
-- columns:
--   true_state          the generator's true state
--   moments             streamed moments in that state
--   moment_share        moments / all streamed moments
--   pushes              delivered pushes in that state
--   push_share          pushes / all delivered pushes (0 when there are none)
--   over_representation push_share / moment_share (> 1: the OSR favours the state)
--   avg_pushed_score    mean OSR score of those pushes (null without pushes)
-- tests:
--   unique: true_state
--   not_null: true_state, moments, moment_share, pushes, push_share, over_representation
--   accepted_values: true_state in (workout, commute, idle, near_store, unknown)
--   expression: moment_share BETWEEN 0 AND 1 AND push_share BETWEEN 0 AND 1
WITH
features AS (SELECT * FROM analytics.stg_state_features),           -- import
truth AS (SELECT * FROM analytics.stg_state_truth),
notifications AS (SELECT * FROM analytics.stg_notifications),

streamed AS (                                                        -- logic
    SELECT coalesce(t.true_state, 'unknown') AS true_state, count(*) AS moments
    FROM features f LEFT JOIN truth t USING (event_id)
    WHERE f.source = 'stream'
    GROUP BY 1
),
pushed AS (
    SELECT coalesce(t.true_state, 'unknown') AS true_state, count(*) AS pushes, avg(n.osr_score) AS avg_pushed_score
    FROM notifications n LEFT JOIN truth t USING (event_id)
    GROUP BY 1
),
joined AS (
    SELECT s.true_state, s.moments, coalesce(p.pushes, 0) AS pushes, p.avg_pushed_score
    FROM streamed s LEFT JOIN pushed p USING (true_state)
),
final AS (                                                           -- final
    SELECT
        true_state,
        moments,
        round(moments / sum(moments) OVER (), 4)                                   AS moment_share,
        pushes,
        round(coalesce(pushes / nullif(sum(pushes) OVER (), 0), 0), 4)             AS push_share,
        round(coalesce(pushes / nullif(sum(pushes) OVER (), 0), 0)
              / (moments / sum(moments) OVER ()), 3)                               AS over_representation,
        round(avg_pushed_score, 4)                                                 AS avg_pushed_score
    FROM joined
)
SELECT * FROM final
ORDER BY true_state
