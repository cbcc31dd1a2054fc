-- Learners: one row per enrollment with the learner's name (lists the Learner filter of the individual dashboard).
-- columns: course_id String, org String, username String, full_name String
SELECT course_id, org, username, full_name
FROM enrollments_with_profile
WHERE username != '' {{ scope() }}
ORDER BY username
