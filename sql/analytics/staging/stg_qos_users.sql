-- question: Where does each QoS user (a WS-DREAM node invoking services) sit on the network?
-- grain: one row per QoS user (qos_user_id)
-- source: qos.users
-- columns:
--   qos_user_id  the matrix row
--   label        the dataset's id / IP when known
--   country      null = unknown
--   asn          autonomous system, e.g. AS7018; null = unknown
-- tests:
--   unique: qos_user_id
--   not_null: qos_user_id
SELECT
    user_id AS qos_user_id,
    label,
    country,
    asn
FROM qos.users
