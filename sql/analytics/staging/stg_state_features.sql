-- question: Which moments were fused into a state (from the stream, or backfilled from history)?
-- grain: one row per fused moment (event_id)
-- source: features.state_features (only the columns the marts read)
-- columns:
--   event_id        the moment
--   user_id         the person
--   feature_at      time of the moment's last reading (UTC)
--   source          stream / history
--   n_devices       how many devices' uploads were fused into it
--   activity_level  0 sedentary .. 3 vigorous (null on rows stored before migration 062)
-- tests:
--   unique: event_id
--   not_null: event_id, user_id, feature_at, source, n_devices
--   accepted_values: source in (stream, history)
SELECT
    event_id,
    user_id,
    ts                                         AS feature_at,
    source,
    len(string_split(device_id, '+'))::INTEGER AS n_devices,
    activity_level
FROM features.state_features
