-- Problem attempts: per learner, problem and day, the graded submissions (server problem_check) and how many
-- were correct, with the problem's place in the course.
-- time: day
-- columns: course_id String, org String, day Date, problem String, problem_order UInt32, section String, user_id Int64, attempts UInt64, correct UInt64, points Float64, max_points Float64
SELECT
    p.course_id AS course_id,
    p.org AS org,
    toDate(p.time) AS day,
    {{ block_label('b') }} AS problem,
    any(b.course_order) AS problem_order,
    any({{ section_label('b') }}) AS section,
    assumeNotNull(p.user_id) AS user_id,
    count() AS attempts,
    countIf(p.success = 'correct') AS correct,
    ifNull(sum(p.grade), 0) AS points,
    ifNull(sum(p.max_grade), 0) AS max_points
FROM problem_events AS p
INNER JOIN (
    SELECT course_id, block_id, course_order, section_index, section_name, subsection_index, unit_index, display_name
    FROM course_blocks
    WHERE block_type = 'problem' {{ scope() }}
) AS b ON b.course_id = p.course_id AND b.block_id = p.block_id
WHERE p.name = 'problem_check' AND p.event_source = 'server' AND p.user_id IS NOT NULL
  {{ scope('p.course_id', 'p.org') }} {{ period('p.time') }}
GROUP BY course_id, org, day, problem, user_id
