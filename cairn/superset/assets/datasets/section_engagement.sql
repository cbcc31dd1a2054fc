-- Engagement per section and subsection: per learner, the pages (units) they opened, the videos they played
-- and the problems they submitted in each subsection of the course.
-- columns: course_id String, org String, section String, subsection String, user_id Int64, page_views UInt64, video_plays UInt64, problem_checks UInt64
SELECT
    e.course_id AS course_id,
    any(b.org) AS org,
    {{ section_label('b') }} AS section,
    {{ subsection_label('b') }} AS subsection,
    e.user_id AS user_id,
    countIf(e.kind = 'page') AS page_views,
    countIf(e.kind = 'video') AS video_plays,
    countIf(e.kind = 'problem') AS problem_checks
FROM (
    SELECT course_id, replaceRegexpOne(sequence_id, '^.*block@', '') AS block_id, assumeNotNull(user_id) AS user_id,
           'page' AS kind
    FROM navigation_events
    WHERE sequence_id != '' AND user_id IS NOT NULL {{ scope() }} {{ period('time') }}
    UNION ALL
    SELECT course_id, video_id, assumeNotNull(user_id), 'video'
    FROM video_events
    WHERE event_type = 'play_video' AND user_id IS NOT NULL {{ scope() }} {{ period('time') }}
    UNION ALL
    SELECT course_id, block_id, assumeNotNull(user_id), 'problem'
    FROM problem_events
    WHERE name = 'problem_check' AND event_source = 'server' AND user_id IS NOT NULL {{ scope() }} {{ period('time') }}
) AS e
INNER JOIN (
    SELECT course_id, org, block_id, section_index, section_name, subsection_index, subsection_name
    FROM course_blocks
    WHERE depth >= 2 {{ scope() }}
) AS b ON b.course_id = e.course_id AND b.block_id = e.block_id
GROUP BY course_id, section, subsection, user_id
