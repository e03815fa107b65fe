-- Each person's best ALS item under the live model: what a state-blind push would send.
SELECT user_id, item_id
FROM reco.topn
WHERE rank = 1
  AND model_id = (SELECT model_id FROM reco.model_registry WHERE status = 'live')
