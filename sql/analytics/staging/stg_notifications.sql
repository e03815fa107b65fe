-- question: Which pushes were delivered (written to the notifications topic by the push gateway)?
-- grain: one row per delivered push (notification_id)
-- source: stream.notifications
-- columns:
--   notification_id  = the score_id of the approved score
--   event_id         the moment
--   user_id          the person
--   item_id          the pushed item
--   category         the item's category
--   pushed_at        the moment's time (UTC)
--   osr_score        the score that was approved
--   threshold        the threshold it passed
--   rule_scope       the tuner rule whose threshold applied
--   model_id         the model that scored it
-- tests:
--   unique: notification_id
--   unique: event_id
--   not_null: notification_id, event_id, user_id, item_id, pushed_at, osr_score, model_id
--   relationships: event_id -> analytics.stg_tuner_decisions.event_id
--   relationships: notification_id -> analytics.stg_osr_scores.score_id
--   expression: osr_score >= threshold
SELECT
    notification_id,
    event_id,
    user_id,
    item_id,
    category,
    ts AS pushed_at,
    osr_score,
    threshold,
    rule_scope,
    model_id
FROM stream.notifications
