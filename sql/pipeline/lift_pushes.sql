-- Every push with the generator's true state at that moment (OSR lift, numerator).
SELECT n.user_id, n.item_id, t.state
FROM stream.notifications n
JOIN events.state_truth t USING (event_id)
