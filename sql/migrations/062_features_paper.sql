-- 062: the paper's state transformations as columns of features.state_features
-- (pipelines.contracts.FeatureRow): "direction (source-destination) of approach" as closing
-- speeds to the nearest store, home and work; an ordinal activity level; minutes since the
-- person's last workout; and the last filtered position, which the tuner's staleness rule
-- compares (not part of the state vector).
--
-- Why ALTER ... ADD COLUMN: DuckLake 1.5.5 adds a column to a table in place (checked on a real
-- lake, empty and with rows; old rows read NULL). Why all nullable: it refuses a column added with
-- a constraint ("Adding columns with constraints not yet supported"), and SET NOT NULL afterwards
-- ("no column stats are available"); rows stored before this migration have no such values anyway.
-- ADD COLUMN appends, so the contract declares these fields last, in this order.
ALTER TABLE features.state_features ADD COLUMN IF NOT EXISTS min_since_workout DOUBLE;   -- NULL: no workout seen yet
ALTER TABLE features.state_features ADD COLUMN IF NOT EXISTS activity_level INTEGER;     -- 0 sedentary .. 3 vigorous
ALTER TABLE features.state_features ADD COLUMN IF NOT EXISTS approach_store_mps DOUBLE;  -- > 0 approaching
ALTER TABLE features.state_features ADD COLUMN IF NOT EXISTS approach_home_mps DOUBLE;   -- NULL: home unknown
ALTER TABLE features.state_features ADD COLUMN IF NOT EXISTS approach_work_mps DOUBLE;
ALTER TABLE features.state_features ADD COLUMN IF NOT EXISTS x_m DOUBLE;                 -- last filtered position
ALTER TABLE features.state_features ADD COLUMN IF NOT EXISTS y_m DOUBLE;
