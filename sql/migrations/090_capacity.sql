-- 090: capacity planning (pipelines.capacity): what the monitor saw, what the planner decided and why,
-- and the hourly arrival model the capacity_planning DAG rebuilds.
-- Why in the store: "why did the stream scale at 17:05?" is answered from the decision, its inputs and
-- the samples around it; the DAG rebuilds the predictive model from the samples of past days.
-- key: sample_id
CREATE TABLE IF NOT EXISTS ops.capacity_samples (
    sample_id        VARCHAR NOT NULL,
    run_id           VARCHAR NOT NULL,     -- the loop (or bench policy run) that took it
    ts               TIMESTAMP NOT NULL,
    hour             DOUBLE,               -- hour of day on the load's clock (compressed in a replay)
    group_id         VARCHAR NOT NULL,
    topic            VARCHAR NOT NULL,
    partitions       INTEGER NOT NULL,
    arrival_rate     DOUBLE,               -- records/s into the topic (log-end offsets)
    processing_rate  DOUBLE,               -- records/s the group committed
    lag              BIGINT NOT NULL,      -- log-end - committed, summed over partitions
    workers          INTEGER NOT NULL,     -- workers the effector runs
    members          INTEGER NOT NULL,     -- members the group coordinator reports
    group_state      VARCHAR NOT NULL,
    busy_fraction    DOUBLE,
    true_rate        DOUBLE,               -- records per busy second of one worker (DS2)
    latency_p50_s    DOUBLE,               -- produce -> committed, records committed since the last sample
    latency_p99_s    DOUBLE,
    head_age_s       DOUBLE                -- age of the oldest record not committed yet
);
-- key: sample_id, worker
CREATE TABLE IF NOT EXISTS ops.capacity_worker_samples (
    sample_id     VARCHAR NOT NULL,
    worker        VARCHAR NOT NULL,
    records       BIGINT NOT NULL,
    busy_s        DOUBLE NOT NULL,
    interval_s    DOUBLE NOT NULL,
    busy_fraction DOUBLE,
    true_rate     DOUBLE
);
-- key: decision_id
CREATE TABLE IF NOT EXISTS ops.capacity_decisions (
    decision_id   VARCHAR NOT NULL,
    run_id        VARCHAR NOT NULL,
    ts            TIMESTAMP NOT NULL,
    policy        VARCHAR NOT NULL,     -- predictive_reactive / reactive_lag / ds2 / static
    action        VARCHAR NOT NULL,     -- scale_up / scale_down_temporary / scale_down_permanent / restore / hold
    workers_from  INTEGER NOT NULL,
    workers_to    INTEGER NOT NULL,
    state         VARCHAR NOT NULL,     -- STEADY / MIGRATION / PROBATION after the decision
    reason        VARCHAR NOT NULL,
    inputs        JSON,                 -- the observation and the planner's figures it decided on
    outcome       VARCHAR               -- what the effector did (started worker 2, pid ...), or why not
);
-- key: model_id, hour
CREATE TABLE IF NOT EXISTS ops.capacity_model (
    model_id    VARCHAR NOT NULL,
    built_at    TIMESTAMP NOT NULL,
    hour        INTEGER NOT NULL,       -- hour of day 0-23
    percentile  DOUBLE NOT NULL,
    rate        DOUBLE NOT NULL,        -- records/s to provision for in that hour
    samples     INTEGER NOT NULL,
    days        INTEGER NOT NULL
);
