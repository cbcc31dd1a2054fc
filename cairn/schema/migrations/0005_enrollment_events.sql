-- openedx.enrollment_events: enrollments, unenrollments and mode changes.
{% import 'macros.jinja' as m %}

CREATE TABLE IF NOT EXISTS `{{ database }}`.enrollment_events {{ on_cluster }}
(
    event_id UUID COMMENT 'id of the event in openedx.events',
    time DateTime64(6, 'UTC') COMMENT 'event time (UTC)',
    name LowCardinality(String) COMMENT 'edx.course.enrollment.activated, .deactivated, .mode_changed, ...',
    action LowCardinality(String) COMMENT 'activated, deactivated, mode_changed, upgrade.clicked, ...',
    course_id LowCardinality(String) COMMENT 'course key',
    org LowCardinality(String) COMMENT 'organisation',
    user_id Nullable(Int64) COMMENT 'the enrolled learner (event.user_id, not the staff member who acted)',
    actor_user_id Nullable(Int64) COMMENT 'who triggered the event (context user), may differ for staff enrollments',
    mode LowCardinality(String) COMMENT 'audit, honor, verified, professional, no-id-professional, credit, masters, ...'
)
ENGINE = {{ table_engine('MergeTree') }}
PARTITION BY toYYYYMM(time)
ORDER BY (org, course_id, time)
SETTINGS {{ m.dedup_settings() }}
COMMENT 'Enrollment events, one row per event';

CREATE MATERIALIZED VIEW IF NOT EXISTS `{{ database }}`._enrollment_events_mv {{ on_cluster }}
TO `{{ database }}`.enrollment_events
AS
SELECT
    event_id, time, name,
    replaceOne(name, 'edx.course.enrollment.', '') AS action,
    if(JSONExtractString(payload, 'course_id') != '', JSONExtractString(payload, 'course_id'), _event_rows.course_id) AS course_id,
    if({{ m.org_of_course('course_id') }} != '', {{ m.org_of_course('course_id') }}, _event_rows.org) AS org,
    coalesce(JSONExtract(payload, 'user_id', 'Nullable(Int64)'), _event_rows.user_id) AS user_id,
    _event_rows.user_id AS actor_user_id,
    JSONExtractString(payload, 'mode') AS mode
FROM `{{ database }}`._event_rows
WHERE startsWith(name, 'edx.course.enrollment.');
