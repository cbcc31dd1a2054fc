-- openedx.grade_events: subsection and course grades calculated, pass/fail changes.
-- These come from Celery workers: the learner is in the payload's user_id (a string).
{% import 'macros.jinja' as m %}

CREATE TABLE IF NOT EXISTS `{{ database }}`.grade_events {{ on_cluster }}
(
    event_id UUID COMMENT 'id of the event in openedx.events',
    time DateTime64(6, 'UTC') COMMENT 'event time (UTC)',
    name LowCardinality(String) COMMENT 'edx.grades.subsection.grade_calculated, edx.grades.course.grade_calculated, edx.course.grade.passed.first_time, .now_passed, .now_failed, ...',
    course_id LowCardinality(String) COMMENT 'course key',
    org LowCardinality(String) COMMENT 'organisation',
    user_id Nullable(Int64) COMMENT 'the learner graded',
    block_id String COMMENT 'subsection (sequential) usage key, for subsection grades',
    weighted_total_earned Nullable(Float64) COMMENT 'subsection: points earned, all problems',
    weighted_total_possible Nullable(Float64) COMMENT 'subsection: points possible, all problems',
    weighted_graded_earned Nullable(Float64) COMMENT 'subsection: points earned, graded problems',
    weighted_graded_possible Nullable(Float64) COMMENT 'subsection: points possible, graded problems',
    percent_grade Nullable(Float64) COMMENT 'course: grade from 0 to 1',
    letter_grade String COMMENT 'course: letter grade, empty below the passing cutoff',
    passed Nullable(Bool) COMMENT 'true for passed.first_time/now_passed, false for now_failed, else NULL',
    course_version String COMMENT 'course version the grade was computed on',
    event_transaction_id String COMMENT 'links the grade events of one submission'
)
ENGINE = {{ table_engine('MergeTree') }}
PARTITION BY toYYYYMM(time)
ORDER BY (org, course_id, time)
SETTINGS {{ m.dedup_settings() }}
COMMENT 'Grade events, one row per event';

CREATE MATERIALIZED VIEW IF NOT EXISTS `{{ database }}`._grade_events_mv {{ on_cluster }}
TO `{{ database }}`.grade_events
AS
SELECT
    event_id, time, name,
    if(JSONExtractString(payload, 'course_id') != '', JSONExtractString(payload, 'course_id'), _event_rows.course_id) AS course_id,
    if({{ m.org_of_course('course_id') }} != '', {{ m.org_of_course('course_id') }}, _event_rows.org) AS org,
    coalesce(JSONExtract(payload, 'user_id', 'Nullable(Int64)'), _event_rows.user_id) AS user_id,
    JSONExtractString(payload, 'block_id') AS block_id,
    JSONExtract(payload, 'weighted_total_earned', 'Nullable(Float64)') AS weighted_total_earned,
    JSONExtract(payload, 'weighted_total_possible', 'Nullable(Float64)') AS weighted_total_possible,
    JSONExtract(payload, 'weighted_graded_earned', 'Nullable(Float64)') AS weighted_graded_earned,
    JSONExtract(payload, 'weighted_graded_possible', 'Nullable(Float64)') AS weighted_graded_possible,
    JSONExtract(payload, 'percent_grade', 'Nullable(Float64)') AS percent_grade,
    JSONExtractString(payload, 'letter_grade') AS letter_grade,
    multiIf(name IN ('edx.course.grade.passed.first_time', 'edx.course.grade.now_passed'), true,
            name = 'edx.course.grade.now_failed', false, NULL) AS passed,
    JSONExtractString(payload, 'course_version') AS course_version,
    JSONExtractString(payload, 'event_transaction_id') AS event_transaction_id
FROM `{{ database }}`._event_rows
WHERE name IN ('edx.grades.subsection.grade_calculated', 'edx.grades.course.grade_calculated',
               'edx.grades.subsection.score_overridden')
   OR startsWith(name, 'edx.course.grade.');
