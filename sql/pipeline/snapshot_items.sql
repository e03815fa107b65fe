-- Items as the stream sees them: attributes plus how often they were bought
-- (the popularity that ranks fallback candidates for people without a top-N).
SELECT i.*, coalesce(p.n, 0)::DOUBLE AS popularity
FROM ref.items i
LEFT JOIN (SELECT item_id, count(*) AS n FROM events.interactions GROUP BY 1) p USING (item_id)
