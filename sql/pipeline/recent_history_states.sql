-- The latest history states, scored against a candidate snapshot to set its
-- raw-score range and to gate its outputs.
SELECT * FROM features.state_features
WHERE source = 'history'
ORDER BY ts DESC
LIMIT $limit
