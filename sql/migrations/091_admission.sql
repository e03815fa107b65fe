-- 091: admission control (pipelines.capacity.admission): the plan the stream's workers follow when even
-- the cap of workers cannot keep the latency under the SLA.
-- Why in the store: the capacity loop decides, every worker follows (pipelines.capacity.admission_follow
-- polls the newest version through a read-only connection, as the tuner rules are followed), and
-- "why was this moment scored on 3 candidates?" is answered from the plan, its reason and the decision
-- that made it. One row per plan change; the current plan is the one with the highest version, and no
-- row means normal.
-- key: version
CREATE TABLE IF NOT EXISTS ops.admission_plans (
    version      BIGINT NOT NULL,      -- 1, 2, ...: max(version) is the current plan
    decided_at   TIMESTAMP NOT NULL,
    mode         VARCHAR NOT NULL,     -- normal / degraded / admission
    top_k        INTEGER,              -- candidates scored per person (null: all)
    admit_share  DOUBLE NOT NULL,      -- share of people scored per micro-batch (1: everyone)
    reason       VARCHAR NOT NULL,
    decided_by   VARCHAR,              -- the loop's run id, or the operator (osr capacity admission)
    decision_id  VARCHAR               -- the ops.capacity_decisions row that made it, when a planner did
);
