-- 002: the feature table holds pipelines.contracts.FeatureRow exactly: the fields the
-- contract declares as never null are NOT NULL here too (001 left them nullable), so a
-- row the features code could not have built cannot be stored either.
ALTER TABLE features.state_features ALTER COLUMN speed_mps SET NOT NULL;
ALTER TABLE features.state_features ALTER COLUMN heading_deg SET NOT NULL;
ALTER TABLE features.state_features ALTER COLUMN activity SET NOT NULL;
ALTER TABLE features.state_features ALTER COLUMN hour_of_day SET NOT NULL;
ALTER TABLE features.state_features ALTER COLUMN day_of_week SET NOT NULL;
ALTER TABLE features.state_features ALTER COLUMN n_readings SET NOT NULL;
ALTER TABLE features.state_features ALTER COLUMN spikes_rejected SET NOT NULL;
