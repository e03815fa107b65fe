-- 070: the model comparison behind each qos_random_walk_refresh run.
-- Why: every refresh validates its candidate models (the paper's HL-RW, the tuned one, the
-- baselines) on the same held-out observations and publishes the best; this keeps what each
-- scored, so "why this model today?" is answered from the store.
-- key: run_id, model
CREATE TABLE IF NOT EXISTS qos.model_choice (
    run_id        VARCHAR NOT NULL,
    metric        VARCHAR NOT NULL,
    model         VARCHAR NOT NULL,
    holdout_mae   DOUBLE,            -- MAE on the held-out observations (fit on the rest)
    holdout_nmae  DOUBLE,
    cells         BIGINT,            -- how many observations were held out
    seconds       DOUBLE,            -- the validation fit's wall time
    chosen        BOOLEAN NOT NULL,  -- the one published
    created_at    TIMESTAMP NOT NULL DEFAULT now()
);
