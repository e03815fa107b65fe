-- What the stream produced, for the reconciliation "uploads in = fused + dead-lettered".
-- A feature row is one person's moment fused from one or more devices' uploads; its device_id
-- lists them joined by '+' (pipelines.filtering.moment), so uploads fused = the number of parts.
SELECT
    (SELECT count(*) FROM features.state_features WHERE source = 'stream')        AS features,
    (SELECT coalesce(sum(len(string_split(device_id, '+'))), 0)
       FROM features.state_features WHERE source = 'stream')                       AS uploads_fused,
    (SELECT count(DISTINCT event_id) FROM features.state_features WHERE source = 'stream') AS distinct_feature_events,
    (SELECT count(*) FROM stream.deadletter WHERE deadletter_id NOT LIKE '%sensor.deadletter%'
                                              AND reason NOT LIKE 'sink could not decode%') AS deadlettered,
    (SELECT count(*) FROM stream.osr_scores)                                       AS scores,
    (SELECT count(DISTINCT event_id) FROM stream.osr_scores)                       AS scored_events,
    (SELECT count(*) FROM stream.tuner_decisions)                                  AS decisions,
    (SELECT count(*) FILTER (WHERE reason LIKE 'stale%') FROM stream.tuner_decisions) AS dropped_stale,
    (SELECT count(*) FROM stream.notifications)                                    AS notifications,
    (SELECT count(DISTINCT user_id) FROM stream.notifications)                     AS notified_people
