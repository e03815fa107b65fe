-- question: Who are the people the platform pushes to?
-- grain: one row per person (user_id)
-- source: ref.users
-- columns:
--   user_id       the person
--   age           years
--   handset       ios / android
--   tz            IANA time zone (null = UTC)
--   person_class  segment the tuner rules can target (null = none)
-- tests:
--   unique: user_id
--   not_null: user_id, age, handset
SELECT
    user_id,
    age,
    handset,
    tz,
    person_class
FROM ref.users
