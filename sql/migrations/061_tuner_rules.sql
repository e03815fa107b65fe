-- 061: tuner rules people manage (`osr tuner set|delete`), versioned so running workers pick a
-- change up without a restart (pipelines.online.tuner_rules.RulesFollower polls the version),
-- global tuner settings, and each person's time zone and class (segment).

-- Why a change log rather than a version column on tuner.rules: a delete leaves no row to carry a
-- new version, and the log says who changed what when (`osr tuner explain` replays it to show the
-- rules a decision saw). The rules' version is max(version); every set / delete adds one version
-- (a population load adds one for all the default rules it wrote). Writers hold the store's writer
-- lock (pipelines.store.db.transaction), so two changes never take the same number.
-- key: version, scope, scope_key
CREATE TABLE IF NOT EXISTS tuner.rule_changes (
    version    BIGINT NOT NULL,
    changed_at TIMESTAMP NOT NULL,
    action     VARCHAR NOT NULL,       -- set / delete
    scope      VARCHAR NOT NULL,       -- a tuner.rules scope, or 'setting' (tuner.settings)
    scope_key  VARCHAR NOT NULL,       -- the rule's key, or the setting's name
    threshold  DOUBLE,                 -- the rule after a set (null after a delete)
    min_gap_s  DOUBLE,
    value      DOUBLE,                 -- the setting's value after a set
    changed_by VARCHAR
);

-- Why: global knobs of the tuner that are not per-scope rules, e.g. the staleness limits
-- (pipelines.online.staleness: stale_move_m, ...). A missing row means the documented default.
-- key: name
CREATE TABLE IF NOT EXISTS tuner.settings (
    name  VARCHAR NOT NULL,
    value DOUBLE  NOT NULL
);

-- Quiet hours and the daily cap are in the person's own time zone (IANA name, e.g. Asia/Tokyo;
-- NULL = UTC), and rules can target a person class (segment) with scope 'person_class'.
ALTER TABLE ref.users ADD COLUMN IF NOT EXISTS tz VARCHAR;
ALTER TABLE ref.users ADD COLUMN IF NOT EXISTS person_class VARCHAR;
