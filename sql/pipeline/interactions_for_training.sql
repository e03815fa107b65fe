-- Purchase history aggregated to one confidence weight per (person, item), the
-- input of implicit-feedback ALS.
SELECT user_id, item_id, sum(weight) AS weight, count(*) AS n_events
FROM events.interactions
GROUP BY user_id, item_id
ORDER BY user_id, item_id
