-- question: Which services does each QoS user get recommended, where do they sit, and does the recommendation stay inside the user's own AS?
-- grain: one row per (metric, qos_user_id, rank) of the latest refresh per metric
-- columns:
--   metric           rt (lowest response time first) / tp (highest throughput first)
--   qos_user_id      the user
--   user_asn         the user's AS (null = unknown)
--   user_country     the user's country (null = unknown)
--   rank             1 = best predicted
--   service_id       the recommended service
--   service_asn      the service's AS
--   service_country  the service's country
--   same_as          user and service in one known AS
--   predicted        predicted QoS (s or kbps)
--   model            the model the refresh published
--   run_id           the refresh
-- tests:
--   unique: metric, qos_user_id, rank
--   not_null: metric, qos_user_id, rank, service_id, same_as, predicted, model, run_id
--   accepted_values: metric in (rt, tp)
--   relationships: qos_user_id -> analytics.stg_qos_users.qos_user_id
--   relationships: service_id -> analytics.stg_qos_services.service_id
--   expression: rank >= 1
WITH
recommendations AS (SELECT * FROM analytics.stg_qos_recommendations),  -- import
users AS (SELECT * FROM analytics.stg_qos_users),
services AS (SELECT * FROM analytics.stg_qos_services),
runs AS (SELECT * FROM analytics.stg_qos_runs),

located AS (                                                         -- logic
    SELECT r.metric, r.qos_user_id, u.asn AS user_asn, u.country AS user_country, r.rank,
           r.service_id, s.asn AS service_asn, s.country AS service_country,
           coalesce(u.asn IS NOT NULL AND u.asn = s.asn, false) AS same_as,
           r.predicted, q.model, r.run_id
    FROM recommendations r
    LEFT JOIN users u USING (qos_user_id)
    LEFT JOIN services s USING (service_id)
    LEFT JOIN runs q USING (run_id)
),
final AS (SELECT * FROM located)                                     -- final
SELECT * FROM final
ORDER BY metric, qos_user_id, rank
