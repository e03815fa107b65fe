-- 001: the schemas of the OSR store. One schema per concern, so analysts can
-- tell reference data from stream output from model artefacts at a glance.
--
-- The store is a DuckLake: it has no primary key, unique or check constraints.
-- Each table's key is written as `-- key: ...` above it and declared in
-- pipelines.store.db.KEYS, where the writers keep it unique (insert-if-new by
-- key); the former checks are pipelines.store.db.CHECKS. Key columns are NOT NULL.
CREATE SCHEMA IF NOT EXISTS ref;      -- people, devices, items, stores (slowly changing)
CREATE SCHEMA IF NOT EXISTS events;   -- interaction history and outcomes (facts)
CREATE SCHEMA IF NOT EXISTS features; -- state features, from the stream and from history backfills
CREATE SCHEMA IF NOT EXISTS reco;     -- model registry and top-N recommendations
CREATE SCHEMA IF NOT EXISTS stream;   -- OSR scores, notifications and dead letters written by the sink
CREATE SCHEMA IF NOT EXISTS tuner;    -- Notification Frequency Tuner rules and personal preferences
CREATE SCHEMA IF NOT EXISTS ops;      -- runs, sink batches, capacity

-- Reference data -------------------------------------------------------------
-- Why: features need each person's key destinations and peak heart rate.
-- key: user_id
CREATE TABLE IF NOT EXISTS ref.users (
    user_id     VARCHAR NOT NULL,
    age         INTEGER NOT NULL,
    peak_hr     DOUBLE  NOT NULL,      -- 220 - age unless measured
    handset     VARCHAR NOT NULL,      -- ios / android (a propensity attribute)
    home_x      DOUBLE NOT NULL, home_y DOUBLE NOT NULL,   -- metres in the city frame
    work_x      DOUBLE NOT NULL, work_y DOUBLE NOT NULL
);
-- key: device_id
CREATE TABLE IF NOT EXISTS ref.devices (
    device_id   VARCHAR NOT NULL,
    user_id     VARCHAR NOT NULL,
    device_type VARCHAR NOT NULL       -- check: device_type IN ('phone', 'watch')
);
-- key: item_id
CREATE TABLE IF NOT EXISTS ref.items (
    item_id     VARCHAR NOT NULL,
    category    VARCHAR NOT NULL,
    price       DOUBLE  NOT NULL,
    offer_type  VARCHAR NOT NULL       -- discount / bogo / free_gift (coupon-study attribute)
);
-- key: store_id
CREATE TABLE IF NOT EXISTS ref.stores (
    store_id    VARCHAR NOT NULL,
    category    VARCHAR NOT NULL,
    x DOUBLE NOT NULL, y DOUBLE NOT NULL
);

-- Facts ----------------------------------------------------------------------
-- Why: the purchase history ALS learns preferences from.
-- key: interaction_id
CREATE TABLE IF NOT EXISTS events.interactions (
    interaction_id VARCHAR NOT NULL,
    user_id  VARCHAR NOT NULL,
    item_id  VARCHAR NOT NULL,
    weight   DOUBLE  NOT NULL,         -- purchase count / implicit confidence
    ts       TIMESTAMP NOT NULL
);
-- Why: an item shown to a person in some state, and whether they bought it;
-- the propensity model learns E(item | state) from these.
-- key: outcome_id
CREATE TABLE IF NOT EXISTS events.outcomes (
    outcome_id VARCHAR NOT NULL,
    user_id  VARCHAR NOT NULL,
    item_id  VARCHAR NOT NULL,
    ts       TIMESTAMP NOT NULL,
    purchased BOOLEAN NOT NULL
);
-- Why: the generator's ground truth, to score filtering and the OSR lift.
-- key: event_id
CREATE TABLE IF NOT EXISTS events.state_truth (
    event_id VARCHAR NOT NULL,
    user_id  VARCHAR NOT NULL,
    ts       TIMESTAMP NOT NULL,
    state    VARCHAR NOT NULL          -- workout / commute / idle / near_store
);

-- State features (one row per processed sensor event) ------------------------
-- The table holds pipelines.contracts.FeatureRow exactly: the fields the contract
-- declares as never null are NOT NULL here too, so a row the features code could
-- not have built cannot be stored either. (On the DuckDB file this was migration
-- 002's ALTER ... SET NOT NULL; DuckLake refuses SET NOT NULL on a table that has
-- never held a row, so a new lake declares it here.)
-- key: event_id
CREATE TABLE IF NOT EXISTS features.state_features (
    event_id    VARCHAR NOT NULL,
    user_id     VARCHAR NOT NULL,
    device_id   VARCHAR NOT NULL,
    device_type VARCHAR NOT NULL,
    ts          TIMESTAMP NOT NULL,    -- time of the last reading in the event
    source      VARCHAR NOT NULL,      -- stream / history
    speed_mps   DOUBLE NOT NULL,
    heading_deg DOUBLE NOT NULL,
    dist_home_m DOUBLE,
    dist_work_m DOUBLE,
    dist_store_m DOUBLE,
    hr_pct_peak DOUBLE,                -- NULL when the device has no heart-rate sensor
    hr_rate_bpm_per_min DOUBLE,
    activity    DOUBLE NOT NULL,       -- std of filtered acceleration magnitude
    hour_of_day INTEGER NOT NULL,
    day_of_week INTEGER NOT NULL,
    n_readings  INTEGER NOT NULL,
    spikes_rejected INTEGER NOT NULL
);

-- Models and recommendations -------------------------------------------------
-- key: model_id
CREATE TABLE IF NOT EXISTS reco.model_registry (
    model_id    VARCHAR NOT NULL,
    kind        VARCHAR NOT NULL,      -- reco_snapshot (ALS top-N + propensity)
    algorithm   VARCHAR NOT NULL,
    params      JSON,
    metrics     JSON,
    trained_at  TIMESTAMP NOT NULL,
    status      VARCHAR NOT NULL,      -- check: status IN ('candidate', 'live', 'rejected', 'retired')
    snapshot_path VARCHAR,
    note        VARCHAR
);
-- key: model_id, user_id, rank
CREATE TABLE IF NOT EXISTS reco.topn (
    model_id VARCHAR NOT NULL,
    user_id  VARCHAR NOT NULL,
    rank     INTEGER NOT NULL,
    item_id  VARCHAR NOT NULL,
    score    DOUBLE  NOT NULL
);

-- Stream output (written only by the sink, keyed for idempotence) -------------
-- key: score_id
CREATE TABLE IF NOT EXISTS stream.osr_scores (
    score_id   VARCHAR NOT NULL,       -- event_id || ':' || item_id
    event_id   VARCHAR NOT NULL,
    user_id    VARCHAR NOT NULL,
    item_id    VARCHAR NOT NULL,
    category   VARCHAR NOT NULL,
    ts         TIMESTAMP NOT NULL,
    preference DOUBLE NOT NULL,        -- E(item | R(user)), from ALS, scaled to [0, 1] per user
    propensity DOUBLE NOT NULL,        -- E(item | V(state)), from the propensity model
    raw_score  DOUBLE NOT NULL,        -- F(preference, propensity)
    osr_score  DOUBLE NOT NULL,        -- min-max scaled over the snapshot
    model_id   VARCHAR NOT NULL
);
-- key: notification_id
CREATE TABLE IF NOT EXISTS stream.notifications (
    notification_id VARCHAR NOT NULL,     -- = score_id of the approved score
    event_id   VARCHAR NOT NULL,
    user_id    VARCHAR NOT NULL,
    item_id    VARCHAR NOT NULL,
    category   VARCHAR NOT NULL,
    ts         TIMESTAMP NOT NULL,
    osr_score  DOUBLE NOT NULL,
    threshold  DOUBLE NOT NULL,
    rule_scope VARCHAR NOT NULL,       -- which tuner rule's threshold applied
    model_id   VARCHAR NOT NULL
);
-- key: deadletter_id
CREATE TABLE IF NOT EXISTS stream.deadletter (
    deadletter_id VARCHAR NOT NULL,    -- source topic:partition:offset of the bad message
    event_id   VARCHAR,                -- when the payload had one
    reason     VARCHAR NOT NULL,
    payload    VARCHAR,
    received_at TIMESTAMP NOT NULL
);

-- Notification Frequency Tuner -----------------------------------------------
-- scope: global / class (item category) / item / user / user_item; the most
-- specific matching rule wins. min_gap_s: minimum time between two pushes of
-- items of the same category to one person.
-- key: scope, scope_key
CREATE TABLE IF NOT EXISTS tuner.rules (
    scope      VARCHAR NOT NULL,       -- check: scope IN ('global', 'class', 'item', 'user', 'user_item', 'person_class')
    scope_key  VARCHAR NOT NULL,       -- '*', a category, an item id, a user id, or user_id|item_id
    threshold  DOUBLE  NOT NULL,       -- check: threshold BETWEEN 0 AND 1
    min_gap_s  DOUBLE  NOT NULL        -- check: min_gap_s >= 0
);
-- key: user_id
CREATE TABLE IF NOT EXISTS tuner.preferences (
    user_id     VARCHAR NOT NULL,
    opted_out   BOOLEAN NOT NULL DEFAULT false,
    quiet_start_hour INTEGER,          -- quiet hours [start, end) in event time (UTC here); NULL = none
    quiet_end_hour   INTEGER,
    daily_cap   INTEGER NOT NULL DEFAULT 3
);

-- Operations -----------------------------------------------------------------
-- key: run_id
CREATE TABLE IF NOT EXISTS ops.runs (
    run_id      VARCHAR NOT NULL,
    kind        VARCHAR NOT NULL,
    started_at  TIMESTAMP NOT NULL,
    finished_at TIMESTAMP,
    status      VARCHAR NOT NULL,
    summary     JSON
);
-- key: batch_id
CREATE TABLE IF NOT EXISTS ops.sink_batches (
    batch_id    VARCHAR NOT NULL,
    topic       VARCHAR NOT NULL,
    n_messages  INTEGER NOT NULL,
    n_new_rows  INTEGER NOT NULL,
    committed_at TIMESTAMP NOT NULL
);
