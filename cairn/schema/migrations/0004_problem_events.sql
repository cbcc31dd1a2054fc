-- openedx.problem_events: problem submissions, grading, hints and answers shown.
{% import 'macros.jinja' as m %}

CREATE TABLE IF NOT EXISTS `{{ database }}`.problem_events {{ on_cluster }}
(
    event_id UUID COMMENT 'id of the event in openedx.events',
    time DateTime64(6, 'UTC') COMMENT 'event time (UTC)',
    name LowCardinality(String) COMMENT 'problem_check, problem_graded, showanswer, edx.grades.problem.submitted, ...',
    event_source LowCardinality(String) COMMENT 'server events carry grades; browser events only the answers sent',
    course_id LowCardinality(String) COMMENT 'course key',
    org LowCardinality(String) COMMENT 'organisation',
    user_id Nullable(Int64) COMMENT 'learner id',
    username String COMMENT 'learner username',
    session String COMMENT 'tracking session',
    problem_id String COMMENT 'usage key of the problem (block-v1:... or i4x://...) when the event names it',
    block_id String COMMENT 'short block id (joins with video/browser ids and course_blocks)',
    attempts Nullable(UInt32) COMMENT 'attempt number (problem_check)',
    grade Nullable(Float64) COMMENT 'points earned (grade, or weighted_earned for edx.grades.problem.submitted)',
    max_grade Nullable(Float64) COMMENT 'points possible (max_grade, or weighted_possible)',
    success LowCardinality(String) COMMENT 'correct or incorrect (server problem_check), else empty',
    answers String COMMENT 'answers as JSON (server), URL-encoded form (browser problem_check), or problem_graded answers'
)
ENGINE = {{ table_engine('MergeTree') }}
PARTITION BY toYYYYMM(time)
ORDER BY (org, course_id, block_id, time)
SETTINGS {{ m.dedup_settings() }}
COMMENT 'Problem events, one row per event';

CREATE MATERIALIZED VIEW IF NOT EXISTS `{{ database }}`._problem_events_mv {{ on_cluster }}
TO `{{ database }}`.problem_events
AS
SELECT
    event_id, time, name, event_source, course_id, org, user_id, username, session,
    multiIf(
        JSONExtractString(payload, 'problem_id') != '', JSONExtractString(payload, 'problem_id'),
        JSONExtractString(payload, 'problem') != '', JSONExtractString(payload, 'problem'),
        JSONExtractString(payload, 'module_id') != '', JSONExtractString(payload, 'module_id'),
        JSONExtractString(context_json, 'module', 'usage_key') != '', JSONExtractString(context_json, 'module', 'usage_key'),
        '') AS problem_id,
    multiIf(
        problem_id != '', {{ m.block_id_of('problem_id') }},
        -- browser problem_check sends only input ids: input_<block id>_2_1=...
        match(payload, 'input_[^=&]+_\\d+_\\d+'), extract(payload, 'input_([^=&]+?)_\\d+_\\d+'),
        '') AS block_id,
    JSONExtract(payload, 'attempts', 'Nullable(UInt32)') AS attempts,
    coalesce(JSONExtract(payload, 'grade', 'Nullable(Float64)'), JSONExtract(payload, 'weighted_earned', 'Nullable(Float64)')) AS grade,
    coalesce(JSONExtract(payload, 'max_grade', 'Nullable(Float64)'), JSONExtract(payload, 'weighted_possible', 'Nullable(Float64)')) AS max_grade,
    JSONExtractString(payload, 'success') AS success,
    multiIf(
        JSONHas(payload, 'answers'), JSONExtractRaw(payload, 'answers'),
        JSONType(payload) = 'Array', JSONExtractRaw(payload, 1),
        JSONType(payload) = 'String', JSONExtractString(payload),
        '') AS answers
FROM `{{ database }}`._event_rows
WHERE event_type IN ('problem_check', 'problem_check_fail', 'problem_graded', 'problem_show', 'showanswer',
                     'problem_save', 'problem_reset', 'problem_rescore', 'problem_rescore_fail',
                     'reset_problem', 'reset_problem_fail', 'save_problem_success', 'save_problem_fail',
                     'save_problem_check', 'problem_check_fail')
   OR startsWith(name, 'edx.grades.problem.')
   OR startsWith(name, 'edx.problem.');
