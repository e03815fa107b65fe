-- question: What did the tuner decide for each scored moment, and why?
-- grain: one row per scored moment (event_id)
-- source: stream.tuner_decisions
-- columns:
--   event_id       the moment (<user_id>:<moment>)
--   user_id        the person
--   decided_at     the moment's time (UTC)
--   approved       whether a push was approved
--   item_id        the approved item (null when refused)
--   reason         the tuner's reason, as written ("approved", "quiet hours", "best score 0.043 under threshold", ...)
--   rule_scope     the tuner rule that decided (null when no rule did)
--   threshold      that rule's threshold
--   rules_version  the tuner rules' version the worker held (null = the snapshot's rules)
--   model_id       the model that scored the moment
-- tests:
--   unique: event_id
--   not_null: event_id, user_id, decided_at, approved, reason, model_id
--   relationships: user_id -> analytics.stg_users.user_id
--   expression: approved = (item_id IS NOT NULL)
SELECT
    event_id,
    user_id,
    ts            AS decided_at,
    approved,
    item_id,
    reason,
    rule_scope,
    threshold,
    rules_version,
    model_id
FROM stream.tuner_decisions
