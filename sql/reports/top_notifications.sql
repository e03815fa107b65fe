-- The highest-scoring approved pushes, with the generator's true state at that moment.
SELECT n.ts, n.user_id, n.item_id, n.category, n.osr_score, n.rule_scope, t.state AS true_state
FROM stream.notifications n
LEFT JOIN events.state_truth t USING (event_id)
ORDER BY n.osr_score DESC
LIMIT 20
