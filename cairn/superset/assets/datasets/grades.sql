-- Course grades: one row per learner with a grade, whether they pass, and their enrollment mode.
-- columns: course_id String, org String, user_id Int64, grade_percent Float64, letter_grade String, passed UInt8, passed_at DateTime, enrollment_mode String, enrolled Bool
SELECT
    course_id,
    org,
    toInt64(user_id) AS user_id,
    round(percent_grade * 100, 1) AS grade_percent,
    letter_grade,
    passed,
    passed_at,
    enrollment_mode,
    enrolled
FROM grades_with_learner
WHERE 1 {{ scope() }}
