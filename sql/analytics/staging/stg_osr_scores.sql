-- question: Which candidate items did the stream score for each moment, and how high?
-- grain: one row per (moment, candidate item) (score_id)
-- source: stream.osr_scores
-- columns:
--   score_id    <event_id>:<item_id>
--   event_id    the moment
--   user_id     the person
--   item_id     the candidate item
--   category    the item's category
--   scored_at   the moment's time (UTC)
--   preference  E(item | R(user)) from ALS, scaled to [0, 1] per person
--   propensity  E(item | V(state)) from the propensity model
--   raw_score   F(preference, propensity)
--   osr_score   the raw score min-max scaled over the snapshot
--   model_id    the model that scored it
-- tests:
--   unique: score_id
--   not_null: score_id, event_id, user_id, item_id, scored_at, osr_score, model_id
--   relationships: item_id -> analytics.stg_items.item_id
--   expression: propensity BETWEEN 0 AND 1
SELECT
    score_id,
    event_id,
    user_id,
    item_id,
    category,
    ts AS scored_at,
    preference,
    propensity,
    raw_score,
    osr_score,
    model_id
FROM stream.osr_scores
