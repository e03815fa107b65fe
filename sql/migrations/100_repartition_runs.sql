-- 100: every check / repartitioning of the live profile stream (pipelines.partitioning.runs).
-- Why: "when did the placement last change, how good is it, how much moved, how long did moving
-- profiles wait?" is answered from here (`osr repartition history`, the qualities plot). One row per
-- stream_repartition_check run or `osr repartition plan|apply`. Qualities are computed on the
-- nodes' micro-cluster summaries (Q^c estimated on centroids; Q^b, Q^m exact), before and after.
-- key: run_id
CREATE TABLE IF NOT EXISTS ops.repartition_runs (
    run_id               VARCHAR NOT NULL,
    started_at           TIMESTAMP NOT NULL,
    finished_at          TIMESTAMP NOT NULL,
    action               VARCHAR NOT NULL,   -- plan (decide only) / apply (decide and migrate when decided) / force
    status               VARCHAR NOT NULL,   -- no-op / planned / applied / failed
    reason               VARCHAR NOT NULL,   -- the trigger's verdict, or the error
    n_nodes              INTEGER,
    version_from         BIGINT,             -- routing version the summaries were taken on
    version_to           BIGINT,             -- installed version (applied runs)
    summaries            INTEGER,            -- nodes that reported
    profiles             BIGINT,
    microclusters        INTEGER,
    min_nmi              DOUBLE,             -- lowest node NMI vs its micro-clustering at the last install
    moved_profiles       BIGINT,
    moved_state          DOUBLE,             -- sum of |S(d)| moved (buckets)
    total_state          DOUBLE,
    budget               DOUBLE,             -- G = 2 x state per node
    state_bytes          BIGINT,             -- bytes of profile state shipped
    cluster_quality_before DOUBLE,
    balance_quality_before DOUBLE,
    overall_quality_before DOUBLE,
    cluster_quality      DOUBLE,             -- of the new placement (equal to before when nothing applied)
    balance_quality      DOUBLE,
    migration_quality    DOUBLE,
    overall_quality      DOUBLE,
    microcluster_seconds DOUBLE,
    partition_seconds    DOUBLE,
    migration_seconds    DOUBLE,             -- barriers written -> last moved profile installed
    paused_profiles      BIGINT,             -- moved profiles that had an update waiting
    pause_p50_s          DOUBLE,
    pause_p99_s          DOUBLE,
    pause_max_s          DOUBLE
);
