-- question: Where does each web service sit on the network?
-- grain: one row per service (service_id)
-- source: qos.services
-- columns:
--   service_id  the matrix column
--   label       the dataset's id when known
--   country     null = unknown
--   asn         autonomous system; null = unknown
-- tests:
--   unique: service_id
--   not_null: service_id
SELECT
    service_id,
    label,
    country,
    asn
FROM qos.services
