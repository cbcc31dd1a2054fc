-- Enrollments: one row per enrollment (still enrolled or not), with the learner's profile in words.
-- time: enrolled_at
-- columns: course_id String, org String, user_id Int64, enrolled_at DateTime, mode String, is_active Bool, gender String, education String
SELECT
    course_id,
    org,
    toInt64(user_id) AS user_id,
    enrolled_at,
    mode,
    is_active,
    multiIf(gender = 'm', 'Male', gender = 'f', 'Female', gender = 'o', 'Other', 'Not given') AS gender,
    multiIf(level_of_education = 'p', 'Doctorate',
            level_of_education = 'm', 'Master',
            level_of_education = 'b', 'Bachelor',
            level_of_education = 'a', 'Associate',
            level_of_education = 'hs', 'Secondary',
            level_of_education = 'jhs', 'Junior secondary',
            level_of_education = 'el', 'Elementary',
            level_of_education = 'none', 'None',
            level_of_education IN ('other', 'p_se', 'p_oth'), 'Other',
            'Not given') AS education
FROM enrollments_with_profile
WHERE 1 {{ scope() }} {{ period('enrolled_at') }}
