-- Learner activity per section: per learner, course and section, the units opened, videos played, problems
-- submitted and points earned, next to the course's average per learner (over the learners active in the course).
-- columns: course_id String, org String, section String, username String, page_views UInt64, video_plays UInt64, problem_checks UInt64, course_page_views Float64, course_video_plays Float64, course_problem_checks Float64
SELECT *
FROM (
    SELECT
        course_id, org, section, username, page_views, video_plays, problem_checks,
        round(sum(page_views) OVER course_section / uniqExact(username) OVER course, 1) AS course_page_views,
        round(sum(video_plays) OVER course_section / uniqExact(username) OVER course, 1) AS course_video_plays,
        round(sum(problem_checks) OVER course_section / uniqExact(username) OVER course, 1) AS course_problem_checks
    FROM (
        SELECT
            e.course_id AS course_id,
            any(b.org) AS org,
            {{ section_label('b') }} AS section,
            any(e.username) AS username,
            countIf(e.kind = 'page') AS page_views,
            countIf(e.kind = 'video') AS video_plays,
            countIf(e.kind = 'problem') AS problem_checks
        FROM (
            SELECT course_id, replaceRegexpOne(sequence_id, '^.*block@', '') AS block_id, assumeNotNull(user_id) AS user_id,
                   username, 'page' AS kind
            FROM navigation_events
            WHERE sequence_id != '' AND user_id IS NOT NULL {{ scope() }}
            UNION ALL
            SELECT course_id, video_id, assumeNotNull(user_id), username, 'video'
            FROM video_events
            WHERE event_type = 'play_video' AND user_id IS NOT NULL {{ scope() }}
            UNION ALL
            SELECT course_id, block_id, assumeNotNull(user_id), username, 'problem'
            FROM problem_events
            WHERE name = 'problem_check' AND event_source = 'server' AND user_id IS NOT NULL {{ scope() }}
        ) AS e
        INNER JOIN (
            SELECT course_id, org, block_id, section_index, section_name
            FROM course_blocks
            WHERE depth >= 2 {{ scope() }}
        ) AS b ON b.course_id = e.course_id AND b.block_id = e.block_id
        GROUP BY course_id, section, e.user_id
    )
    WINDOW course AS (PARTITION BY course_id), course_section AS (PARTITION BY course_id, section)
)
WHERE 1 {{ learner('username') }}
