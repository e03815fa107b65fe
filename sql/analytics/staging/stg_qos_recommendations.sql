-- question: Which services does the latest QoS refresh recommend to each user?
-- grain: one row per (metric, user, rank)
-- source: qos.recommendations
-- columns:
--   metric       rt (response time, s) / tp (throughput, kbps)
--   qos_user_id  the user
--   rank         1 = best predicted
--   service_id   the recommended service (not invoked by the user yet)
--   predicted    its predicted QoS
--   run_id       the refresh that published it
-- tests:
--   unique: metric, qos_user_id, rank
--   not_null: metric, qos_user_id, rank, service_id, predicted, run_id
--   accepted_values: metric in (rt, tp)
--   relationships: service_id -> analytics.stg_qos_services.service_id
--   relationships: run_id -> analytics.stg_qos_runs.run_id
SELECT
    metric,
    user_id AS qos_user_id,
    rank,
    service_id,
    predicted,
    run_id
FROM qos.recommendations
