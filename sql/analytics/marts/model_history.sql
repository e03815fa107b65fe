-- question: Which models were trained when, how good was each on its hold-out, did it go live, and how did it compare with the model before it?
-- grain: one row per registered model (model_id)
-- columns:
--   model_id               the model
--   trained_at             when it was registered (UTC)
--   algorithm              preference + propensity algorithms
--   status                 candidate / live / rejected / retired
--   is_live                whether it serves now
--   precision_at_10        hold-out precision@10 of the preferences (guarded at promotion)
--   map_at_10              hold-out MAP@10 (recorded)
--   auc                    hold-out AUC of the propensity model (guarded at promotion)
--   log_loss               hold-out log-loss (recorded)
--   precision_at_10_delta  change against the previous model trained (null for the first)
--   auc_delta              the same for AUC
--   version                1 for the first model trained, then 2, 3, ...
--   note                   the promotion verdict
-- tests:
--   unique: model_id
--   unique: version
--   not_null: model_id, trained_at, algorithm, status, is_live, version
--   accepted_values: status in (candidate, live, rejected, retired)
--   relationships: model_id -> analytics.stg_model_registry.model_id
--   expression: auc IS NULL OR auc BETWEEN 0 AND 1
--   expression: precision_at_10 IS NULL OR precision_at_10 BETWEEN 0 AND 1
WITH
registry AS (SELECT * FROM analytics.stg_model_registry),           -- import

ordered AS (                                                         -- logic
    SELECT *, row_number() OVER (ORDER BY trained_at, model_id) AS version
    FROM registry
),
final AS (                                                           -- final
    SELECT
        model_id, trained_at, algorithm, status, status = 'live' AS is_live,
        precision_at_10, map_at_10, auc, log_loss,
        precision_at_10 - lag(precision_at_10) OVER (ORDER BY version) AS precision_at_10_delta,
        auc - lag(auc) OVER (ORDER BY version)                         AS auc_delta,
        version,
        note
    FROM ordered
)
SELECT * FROM final
ORDER BY version
