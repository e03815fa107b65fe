-- Every streamed moment with its true state: the state-blind baseline draws from these.
SELECT f.event_id, f.user_id, t.state
FROM features.state_features f
JOIN events.state_truth t USING (event_id)
WHERE f.source = 'stream'
