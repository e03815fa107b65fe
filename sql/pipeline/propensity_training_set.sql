-- Point-in-time correct training set for the propensity model E(item | state):
-- each outcome joined with the person's latest state features known BEFORE it
-- (ASOF join: features.ts <= outcome.ts), and only if they are at most
-- $max_age_s old, so a stale state is never credited with a purchase.
WITH outcomes AS (                       -- import
    SELECT outcome_id, user_id, item_id, ts AS outcome_ts, purchased
    FROM events.outcomes
),
features AS (
    SELECT * FROM features.state_features WHERE source = 'history'
),
joined AS (                              -- as-of join
    SELECT o.*, f.* EXCLUDE (user_id, ts, source), f.ts AS feature_ts
    FROM outcomes o
    ASOF JOIN features f
      ON o.user_id = f.user_id AND f.ts <= o.outcome_ts
)
SELECT                                   -- final
    j.outcome_id, j.user_id, j.item_id, j.outcome_ts, j.feature_ts, j.event_id, j.device_type,
    j.speed_mps, j.heading_deg, j.dist_home_m, j.dist_work_m, j.dist_store_m,
    j.hr_pct_peak, j.hr_rate_bpm_per_min, j.activity, j.hour_of_day, j.day_of_week,
    j.min_since_workout, j.activity_level, j.approach_store_mps, j.approach_home_mps, j.approach_work_mps,
    i.category, i.price, i.offer_type,
    j.purchased::INTEGER AS label
FROM joined j
JOIN ref.items i USING (item_id)
WHERE epoch(j.outcome_ts) - epoch(j.feature_ts) <= $max_age_s
ORDER BY j.outcome_ts, j.outcome_id
