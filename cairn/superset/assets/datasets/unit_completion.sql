-- Completion per unit, in course order: per unit, the learners who completed every html, video and problem
-- block of it (block completions from Open edX, course structure from the imported courses).
-- columns: course_id String, org String, unit_order UInt32, unit String, blocks UInt64, learners_started UInt64, learners_completed UInt64
SELECT
    u.course_id AS course_id,
    u.org AS org,
    u.course_order AS unit_order,
    u.label AS unit,
    u.blocks AS blocks,
    ifNull(c.started, 0) AS learners_started,
    ifNull(c.completed, 0) AS learners_completed
FROM (
    SELECT course_id, org, unit_key, min(course_order) AS course_order,
           anyIf({{ block_label('b') }}, block_type = 'vertical') AS label, countIf(depth > 3) AS blocks
    FROM course_blocks AS b
    WHERE unit_key != '' AND (block_type = 'vertical' OR (depth > 3 AND block_type IN ('html', 'video', 'problem'))) {{ scope('course_id', 'org') }}
    GROUP BY course_id, org, unit_key
    HAVING blocks > 0
) AS u
LEFT JOIN (
    SELECT course_id, unit_key, count() AS started, countIf(done >= total) AS completed
    FROM (
        SELECT c.course_key AS course_id, b.unit_key AS unit_key, c.user_id AS user_id, count() AS done,
               any(b.total) AS total
        FROM block_completion AS c
        -- one join with the blocks, each carrying its unit's block count: a chain of joins let the
        -- planner reorder them from the previous run's hash-table sizes, 10x slower on one course
        INNER JOIN (
            SELECT course_id, block_key, unit_key, total
            FROM (
                SELECT course_id, block_key, unit_key,
                       countIf(depth > 3) OVER (PARTITION BY course_id, unit_key) AS total
                FROM course_blocks
                WHERE block_type IN ('html', 'video', 'problem') {{ scope('course_id', 'org') }}
            )
            WHERE total > 0
        ) AS b ON b.course_id = c.course_key AND b.block_key = c.block_key
        WHERE c.completion >= 1 {{ scope('c.course_key', org_of('c.course_key')) }}
        GROUP BY course_id, unit_key, user_id
    )
    GROUP BY course_id, unit_key
) AS c ON c.course_id = u.course_id AND c.unit_key = u.unit_key
ORDER BY course_id, unit_order
