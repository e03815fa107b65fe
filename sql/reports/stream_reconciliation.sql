-- What the stream produced, for the reconciliation "uploads in = processed + dead-lettered".
SELECT
    (SELECT count(*) FROM features.state_features WHERE source = 'stream')        AS features,
    (SELECT count(DISTINCT event_id) FROM features.state_features WHERE source = 'stream') AS distinct_feature_events,
    (SELECT count(*) FROM stream.deadletter WHERE deadletter_id NOT LIKE '%sensor.deadletter%'
                                              AND reason NOT LIKE 'sink could not decode%') AS deadlettered,
    (SELECT count(*) FROM stream.osr_scores)                                       AS scores,
    (SELECT count(DISTINCT event_id) FROM stream.osr_scores)                       AS scored_events,
    (SELECT count(*) FROM stream.notifications)                                    AS notifications,
    (SELECT count(DISTINCT user_id) FROM stream.notifications)                     AS notified_people
