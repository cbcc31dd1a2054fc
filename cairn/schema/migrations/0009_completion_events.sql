-- openedx.completion_events: block completion changes (openedx/completion).
{% import 'macros.jinja' as m %}

CREATE TABLE IF NOT EXISTS `{{ database }}`.completion_events {{ on_cluster }}
(
    event_id UUID COMMENT 'id of the event in openedx.events',
    time DateTime64(6, 'UTC') COMMENT 'event time (UTC)',
    course_id LowCardinality(String) COMMENT 'course key (course_id, or context_key in older events)',
    org LowCardinality(String) COMMENT 'organisation',
    user_id Nullable(Int64) COMMENT 'learner id',
    block_id String COMMENT 'usage key of the completed block',
    block_type LowCardinality(String) COMMENT 'html, video, problem, ...',
    completion Nullable(Float64) COMMENT 'completion from 0 to 1 (0 or 1 in practice)'
)
ENGINE = {{ table_engine('MergeTree') }}
PARTITION BY toYYYYMM(time)
ORDER BY (org, course_id, time)
SETTINGS {{ m.dedup_settings() }}
COMMENT 'Completion events, one row per event';

CREATE MATERIALIZED VIEW IF NOT EXISTS `{{ database }}`._completion_events_mv {{ on_cluster }}
TO `{{ database }}`.completion_events
AS
SELECT
    event_id, time,
    multiIf(JSONExtractString(payload, 'course_id') != '', JSONExtractString(payload, 'course_id'),
            JSONExtractString(payload, 'context_key') != '', JSONExtractString(payload, 'context_key'),
            _event_rows.course_id) AS course_id,
    if({{ m.org_of_course('course_id') }} != '', {{ m.org_of_course('course_id') }}, _event_rows.org) AS org,
    coalesce(JSONExtract(payload, 'user_id', 'Nullable(Int64)'), _event_rows.user_id) AS user_id,
    JSONExtractString(payload, 'block_id') AS block_id,
    if(JSONExtractString(payload, 'block_type') != '', JSONExtractString(payload, 'block_type'),
       extract(block_id, 'type@([^+]+)')) AS block_type,
    JSONExtract(payload, 'completion', 'Nullable(Float64)') AS completion
FROM `{{ database }}`._event_rows
WHERE name = 'edx.completion.block_completion.changed';
