-- 060: every decision of the Notification Frequency Tuner, with its reason.
-- Why: "why did (or didn't) this person get a push?" is the first question anyone asks of a
-- push platform; `osr tuner explain EVENT` answers it from here. One row per scored moment,
-- written by the sink from tuner.decisions (contract: pipelines.contracts.TunerDecision).
-- key: event_id
CREATE TABLE IF NOT EXISTS stream.tuner_decisions (
    event_id      VARCHAR NOT NULL,
    user_id       VARCHAR NOT NULL,
    ts            TIMESTAMP NOT NULL,     -- the moment's time
    approved      BOOLEAN NOT NULL,
    item_id       VARCHAR,                -- the approved item; null when refused
    reason        VARCHAR NOT NULL,       -- approved / quiet hours / stale: ... / daily cap ...
    rule_scope    VARCHAR,
    threshold     DOUBLE,
    rules_version BIGINT,                 -- the tuner rules' version the worker held
    model_id      VARCHAR NOT NULL
);
