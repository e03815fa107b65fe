-- question: What state was each person really in at each moment (the generator's ground truth)?
-- grain: one row per moment (event_id)
-- source: events.state_truth
-- columns:
--   event_id    the moment (history and streamed moments alike)
--   user_id     the person
--   truth_at    the moment's end (UTC)
--   true_state  workout / commute / idle / near_store
-- tests:
--   unique: event_id
--   not_null: event_id, user_id, truth_at, true_state
--   accepted_values: true_state in (workout, commute, idle, near_store)
SELECT
    event_id,
    user_id,
    ts    AS truth_at,
    state AS true_state
FROM events.state_truth
