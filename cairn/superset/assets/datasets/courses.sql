-- Courses: one row per course, from the course settings and from the events (lists the org and course filters).
-- columns: course_id String, org String, course_name String
SELECT course_id, any(org) AS org, any(course_name) AS course_name
FROM (
    SELECT id AS course_id, org, ifNull(display_name, id) AS course_name
    FROM course_overviews
    WHERE 1 {{ scope('id', 'org') }}
    UNION ALL
    SELECT DISTINCT course_id, org, course_id AS course_name
    FROM events
    WHERE course_id != '' {{ scope() }}
)
GROUP BY course_id
ORDER BY course_id
