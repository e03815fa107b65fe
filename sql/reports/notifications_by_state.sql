-- How pushes spread over the true states, next to how often each state occurs in the stream.
WITH moments AS (
    SELECT t.state, count(*) AS moments
    FROM features.state_features f JOIN events.state_truth t USING (event_id)
    WHERE f.source = 'stream' GROUP BY 1
), pushes AS (
    SELECT t.state, count(*) AS pushes, avg(n.osr_score) AS avg_score
    FROM stream.notifications n JOIN events.state_truth t USING (event_id) GROUP BY 1
)
SELECT m.state, m.moments, coalesce(p.pushes, 0) AS pushes, round(p.avg_score, 3) AS avg_score
FROM moments m LEFT JOIN pushes p USING (state)
ORDER BY m.state
