-- Convenience views over the Open edX MySQL tables and the events, for analysts and
-- dashboards. They read the views of 0100 (users, enrollments, ...), so they work the same
-- in live and synced mode. Joins are LEFT joins: a missing user or profile gives empty
-- values (ClickHouse defaults), not NULL.
{% import 'macros.jinja' as m %}

CREATE VIEW IF NOT EXISTS `{{ database }}`.enrollments_with_profile {{ on_cluster }}
AS SELECT
    e.id AS enrollment_id,
    e.user_id AS user_id,
    u.username AS username,
    u.email AS email,
    p.name AS full_name,
    e.course_id AS course_id,
    {{ m.org_of_course('e.course_id') }} AS org,
    e.mode AS mode,
    e.is_active AS is_active,
    e.created AS enrolled_at,
    u.date_joined AS date_joined,
    u.last_login AS last_login,
    u.is_active AS account_active,
    p.year_of_birth AS year_of_birth,
    p.gender AS gender,
    p.level_of_education AS level_of_education,
    p.country AS country
FROM `{{ database }}`.enrollments AS e
LEFT JOIN `{{ database }}`.users AS u ON u.id = e.user_id
LEFT JOIN `{{ database }}`.user_profiles AS p ON p.user_id = e.user_id
COMMENT 'One row per enrollment with the learner account and profile';

CREATE VIEW IF NOT EXISTS `{{ database }}`.grades_with_learner {{ on_cluster }}
AS SELECT
    g.user_id AS user_id,
    u.username AS username,
    u.email AS email,
    p.name AS full_name,
    g.course_id AS course_id,
    {{ m.org_of_course('g.course_id') }} AS org,
    g.percent_grade AS percent_grade,
    g.letter_grade AS letter_grade,
    g.passed_timestamp IS NOT NULL AS passed,
    g.passed_timestamp AS passed_at,
    g.modified AS graded_at,
    e.mode AS enrollment_mode,
    e.is_active AS enrolled
FROM `{{ database }}`.course_grades AS g
LEFT JOIN `{{ database }}`.users AS u ON u.id = g.user_id
LEFT JOIN `{{ database }}`.user_profiles AS p ON p.user_id = g.user_id
LEFT JOIN `{{ database }}`.enrollments AS e ON e.user_id = g.user_id AND e.course_id = g.course_id
COMMENT 'One row per course grade with the learner and the enrollment mode';

CREATE VIEW IF NOT EXISTS `{{ database }}`.learner_activity {{ on_cluster }}
AS SELECT
    assumeNotNull(user_id) AS user_id,
    course_id,
    any(org) AS org,
    anyIf(username, username != '') AS username,
    min(time) AS first_event,
    max(time) AS last_event,
    uniqExact(toDate(time)) AS active_days,
    count() AS events,
    countIf(startsWith(name, 'edx.video.') OR name IN ('play_video', 'pause_video', 'seek_video', 'stop_video',
        'load_video', 'speed_change_video', 'complete_video', 'show_transcript', 'hide_transcript')) AS video_events,
    countIf(startsWith(name, 'problem_') OR startsWith(name, 'edx.problem.') OR name = 'showanswer') AS problem_events,
    countIf(name IN ('seq_goto', 'seq_next', 'seq_prev') OR startsWith(name, 'edx.ui.lms.')) AS navigation_events,
    countIf(startsWith(name, 'edx.forum.')) AS forum_events,
    sumMap(map(name, toUInt64(1))) AS events_by_name
FROM `{{ database }}`.events
WHERE user_id IS NOT NULL AND user_id > 0
GROUP BY user_id, course_id
COMMENT 'Per learner and course (course_id empty: outside any course): first and last event, active days, events by kind and by name';
