-- question: Which recommendation models were trained, with what hold-out quality and verdict?
-- grain: one row per model (model_id)
-- source: reco.model_registry (metrics JSON cast to columns)
-- columns:
--   model_id         the model
--   kind             reco_snapshot
--   algorithm        e.g. implicit_als+lightgbm
--   trained_at       when it was registered (UTC)
--   status           candidate / live / rejected / retired
--   precision_at_10  hold-out precision@10 of the preferences
--   map_at_10        hold-out MAP@10 of the preferences
--   auc              hold-out AUC of the propensity model
--   log_loss         hold-out log-loss of the propensity model
--   note             the promotion verdict and the previous live model
-- tests:
--   unique: model_id
--   not_null: model_id, algorithm, trained_at, status
--   accepted_values: status in (candidate, live, rejected, retired)
SELECT
    model_id,
    kind,
    algorithm,
    trained_at,
    status,
    (metrics ->> 'precision_at_10')::DOUBLE AS precision_at_10,
    (metrics ->> 'map_at_10')::DOUBLE       AS map_at_10,
    (metrics ->> 'auc')::DOUBLE             AS auc,
    (metrics ->> 'log_loss')::DOUBLE        AS log_loss,
    note
FROM reco.model_registry
