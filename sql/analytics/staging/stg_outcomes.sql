-- question: Which items were shown to whom, and were they bought?
-- grain: one row per exposure (outcome_id)
-- source: events.outcomes
-- columns:
--   outcome_id  the exposure
--   user_id     the person
--   item_id     the item shown
--   exposed_at  when (UTC)
--   purchased   whether it was bought
-- tests:
--   unique: outcome_id
--   not_null: outcome_id, user_id, item_id, exposed_at, purchased
SELECT
    outcome_id,
    user_id,
    item_id,
    ts AS exposed_at,
    purchased
FROM events.outcomes
