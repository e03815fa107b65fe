-- 050: QoS prediction for service recommendation (location-aware random walk, UL/SL/HL-RW).
-- Users and services are the WS-DREAM nodes, identified by their matrix index (row /
-- column position), so a stored matrix maps to arrays without a lookup table.
-- No primary keys or checks on DuckLake: keys are `-- key:` comments here and in
-- pipelines.store.db.KEYS; the writers replace or insert by key (pipelines.qos.store).
CREATE SCHEMA IF NOT EXISTS qos;

-- Why: the location weight and same-AS neighbour selection need each node's AS and country.
-- key: user_id
CREATE TABLE IF NOT EXISTS qos.users (
    user_id  INTEGER NOT NULL,         -- matrix row
    label    VARCHAR,                  -- the dataset's own id / IP when known
    country  VARCHAR,                  -- NULL = unknown
    asn      VARCHAR,                  -- e.g. AS7018; NULL = unknown
    lat      DOUBLE,
    lon      DOUBLE
);
-- key: service_id
CREATE TABLE IF NOT EXISTS qos.services (
    service_id INTEGER NOT NULL,       -- matrix column
    label      VARCHAR,
    country    VARCHAR,
    asn        VARCHAR,
    lat        DOUBLE,
    lon        DOUBLE
);

-- Why: the sparse record of invocations the models learn from (one row per user, service, metric).
-- key: user_id, service_id, metric
CREATE TABLE IF NOT EXISTS qos.observations (
    user_id     INTEGER NOT NULL,
    service_id  INTEGER NOT NULL,
    metric      VARCHAR NOT NULL,      -- response time (s) / throughput (kbps); check: metric IN ('rt', 'tp')
    value       DOUBLE  NOT NULL,
    observed_at TIMESTAMP NOT NULL DEFAULT now(),
    source      VARCHAR                -- file or feed it came from
);

-- Why: what each refresh ran with, and how well it did on its own held-out observations.
-- key: run_id
CREATE TABLE IF NOT EXISTS qos.runs (
    run_id          VARCHAR NOT NULL,
    metric          VARCHAR NOT NULL,
    model           VARCHAR NOT NULL,
    params          JSON,
    n_users         INTEGER,
    n_services      INTEGER,
    n_observations  BIGINT,
    holdout_mae     DOUBLE,        -- MAE on observations held out of a validation fit
    holdout_nmae    DOUBLE,
    seconds         DOUBLE,        -- fit + predict wall time of the published fit
    created_at      TIMESTAMP NOT NULL DEFAULT now()
);

-- Why: the predicted QoS of every (user, service) pair not invoked yet; replaced per metric by each refresh.
-- key: metric, user_id, service_id
CREATE TABLE IF NOT EXISTS qos.predictions (
    metric      VARCHAR NOT NULL,
    user_id     INTEGER NOT NULL,
    service_id  INTEGER NOT NULL,
    predicted   DOUBLE  NOT NULL,
    run_id      VARCHAR NOT NULL
);

-- Why: what the platform recommends: each user's K best services not invoked yet
-- (lowest predicted response time / highest predicted throughput).
-- key: metric, user_id, rank
CREATE TABLE IF NOT EXISTS qos.recommendations (
    metric      VARCHAR NOT NULL,
    user_id     INTEGER NOT NULL,
    rank        INTEGER NOT NULL,
    service_id  INTEGER NOT NULL,
    predicted   DOUBLE  NOT NULL,
    run_id      VARCHAR NOT NULL
);

-- Analysts: recommendations with where the user and the service sit on the network.
CREATE OR REPLACE VIEW qos.recommendations_located AS
SELECT r.metric, r.user_id, u.country AS user_country, u.asn AS user_asn,
       r.rank, r.service_id, s.country AS service_country, s.asn AS service_asn,
       r.predicted, (u.asn IS NOT NULL AND u.asn = s.asn) AS same_as, r.run_id
FROM qos.recommendations r
LEFT JOIN qos.users u USING (user_id)
LEFT JOIN qos.services s USING (service_id);
