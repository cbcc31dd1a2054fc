-- openedx.certificate_events: certificates created, revoked, shared, visited.
{% import 'macros.jinja' as m %}

CREATE TABLE IF NOT EXISTS `{{ database }}`.certificate_events {{ on_cluster }}
(
    event_id UUID COMMENT 'id of the event in openedx.events',
    time DateTime64(6, 'UTC') COMMENT 'event time (UTC)',
    name LowCardinality(String) COMMENT 'edx.certificate.created, .revoked, .shared, .evidence_visited',
    action LowCardinality(String) COMMENT 'created, revoked, shared, evidence_visited',
    course_id LowCardinality(String) COMMENT 'course key',
    org LowCardinality(String) COMMENT 'organisation',
    user_id Nullable(Int64) COMMENT 'certificate holder',
    certificate_id String COMMENT 'verify_uuid of the certificate',
    certificate_url String COMMENT 'public URL of the certificate',
    enrollment_mode LowCardinality(String) COMMENT 'mode of the enrollment certified',
    generation_mode LowCardinality(String) COMMENT 'batch or self',
    source LowCardinality(String) COMMENT 'revoked/shared: where the action came from'
)
ENGINE = {{ table_engine('MergeTree') }}
PARTITION BY toYYYYMM(time)
ORDER BY (org, course_id, time)
SETTINGS {{ m.dedup_settings() }}
COMMENT 'Certificate events, one row per event';

CREATE MATERIALIZED VIEW IF NOT EXISTS `{{ database }}`._certificate_events_mv {{ on_cluster }}
TO `{{ database }}`.certificate_events
AS
SELECT
    event_id, time, name,
    replaceOne(name, 'edx.certificate.', '') AS action,
    if(JSONExtractString(payload, 'course_id') != '', JSONExtractString(payload, 'course_id'), _event_rows.course_id) AS course_id,
    if({{ m.org_of_course('course_id') }} != '', {{ m.org_of_course('course_id') }}, _event_rows.org) AS org,
    coalesce(JSONExtract(payload, 'user_id', 'Nullable(Int64)'), _event_rows.user_id) AS user_id,
    JSONExtractString(payload, 'certificate_id') AS certificate_id,
    JSONExtractString(payload, 'certificate_url') AS certificate_url,
    JSONExtractString(payload, 'enrollment_mode') AS enrollment_mode,
    JSONExtractString(payload, 'generation_mode') AS generation_mode,
    JSONExtractString(payload, 'source') AS source
FROM `{{ database }}`._event_rows
WHERE startsWith(name, 'edx.certificate.');
