-- question: Which services are recommended most to the users of each autonomous system (AS), and how often from inside that AS?
-- grain: one row per (metric, user_asn, service_id) among each AS's 5 most recommended services
-- columns:
--   metric           rt / tp
--   user_asn         the users' AS ('unknown' when not known)
--   users_in_as      QoS users of that AS with recommendations
--   as_rank          1 = the service recommended to most users of the AS
--   service_id       the service
--   service_asn      its AS (null = unknown)
--   recommended_to   users of the AS it is recommended to
--   share_of_users   recommended_to / users_in_as
--   same_as          whether the service sits in the same AS
--   mean_predicted   mean predicted QoS for those users
-- tests:
--   unique: metric, user_asn, service_id
--   unique: metric, user_asn, as_rank
--   not_null: metric, user_asn, users_in_as, as_rank, service_id, recommended_to, share_of_users, same_as, mean_predicted
--   accepted_values: metric in (rt, tp)
--   relationships: service_id -> analytics.stg_qos_services.service_id
--   expression: share_of_users > 0 AND share_of_users <= 1
--   expression: as_rank BETWEEN 1 AND 5
WITH
top AS (SELECT * FROM analytics.qos_top_services),                   -- import

per_service AS (                                                     -- logic
    SELECT metric, coalesce(user_asn, 'unknown') AS user_asn, service_id, any_value(service_asn) AS service_asn,
           count(DISTINCT qos_user_id) AS recommended_to, bool_and(same_as) AS same_as,
           avg(predicted) AS mean_predicted
    FROM top
    GROUP BY metric, coalesce(user_asn, 'unknown'), service_id
),
as_users AS (
    SELECT metric, coalesce(user_asn, 'unknown') AS user_asn, count(DISTINCT qos_user_id) AS users_in_as
    FROM top
    GROUP BY metric, coalesce(user_asn, 'unknown')
),
ranked AS (
    SELECT p.*, a.users_in_as,
           row_number() OVER (PARTITION BY p.metric, p.user_asn
                              ORDER BY p.recommended_to DESC, p.mean_predicted, p.service_id) AS as_rank
    FROM per_service p JOIN as_users a USING (metric, user_asn)
),
final AS (                                                           -- final
    SELECT metric, user_asn, users_in_as, as_rank, service_id, service_asn, recommended_to,
           round(recommended_to / users_in_as, 4) AS share_of_users, same_as, round(mean_predicted, 4) AS mean_predicted
    FROM ranked
    WHERE as_rank <= 5
)
SELECT * FROM final
ORDER BY metric, user_asn, as_rank
