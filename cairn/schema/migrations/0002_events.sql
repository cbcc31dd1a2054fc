-- openedx.events: one row per tracking event, the full original JSON kept in `raw`.
--
-- Both on-disk shapes are accepted: the tracking-log shape (`event`, `time`, request
-- fields at the top level) and the in-process shape (`data`, `timestamp`, request
-- fields inside `context`). Course ids missing from the context are recovered from the
-- payload, the page URL, the request path or the event name.
{% import 'macros.jinja' as m %}

CREATE TABLE IF NOT EXISTS `{{ database }}`.events {{ on_cluster }}
(
    event_id UUID COMMENT 'stable id: hash of the original JSON (same event, same id)',
    time DateTime64(6, 'UTC') COMMENT 'when the event happened (UTC, microseconds)',
    name LowCardinality(String) COMMENT 'event name (event_type when the log has no name; the URL path for request events)',
    event_type LowCardinality(String) COMMENT 'legacy event type (seq_goto, play_video, ... or the name)',
    event_source LowCardinality(String) COMMENT 'server, browser, task or mobile',
    course_id LowCardinality(String) COMMENT 'course key (course-v1:..., ccx-v1:... or ORG/COURSE/RUN), empty when none',
    org LowCardinality(String) COMMENT 'organisation of the course (or context.org_id)',
    user_id Nullable(Int64) COMMENT 'learner id: context.user_id, else the payload user_id (grade and enrollment events); NULL when anonymous',
    username String COMMENT 'username, empty for anonymous or background events',
    session String COMMENT 'tracking session id (32 hex), empty outside requests',
    page String COMMENT 'page URL of browser events ("x_module" for XBlock handlers)',
    path String COMMENT 'request path (context.path)',
    raw String CODEC(ZSTD(3)) COMMENT 'the full original event JSON',
    source LowCardinality(String) COMMENT 'log file the event was read from',
    source_offset UInt64 COMMENT 'byte offset of the line in that file',
    inserted_at DateTime64(3, 'UTC') DEFAULT now64(3) COMMENT 'when Cairn stored the event',
    -- Computed when queried, from raw (no storage):
    event String ALIAS multiIf(
        JSONType(raw, 'event') = 'String',
            if(match(JSONExtractString(raw, 'event'), '^\\s*[\\[{]') AND isValidJSON(JSONExtractString(raw, 'event')),
               JSONExtractString(raw, 'event'), JSONExtractRaw(raw, 'event')),
        JSONHas(raw, 'event'), JSONExtractRaw(raw, 'event'),
        JSONType(raw, 'data') = 'String',
            if(match(JSONExtractString(raw, 'data'), '^\\s*[\\[{]') AND isValidJSON(JSONExtractString(raw, 'data')),
               JSONExtractString(raw, 'data'), JSONExtractRaw(raw, 'data')),
        JSONHas(raw, 'data'), JSONExtractRaw(raw, 'data'),
        '{}') COMMENT 'the payload as JSON text; JSON-encoded strings decoded',
    context String ALIAS JSONExtractRaw(raw, 'context') COMMENT 'the context object as JSON text',
    ip String ALIAS if(JSONHas(raw, 'ip'), JSONExtractString(raw, 'ip'), JSONExtractString(raw, 'context', 'ip')) COMMENT 'client IP address',
    agent String ALIAS if(JSONHas(raw, 'agent'), JSONExtractString(raw, 'agent'), JSONExtractString(raw, 'context', 'agent')) COMMENT 'browser user agent',
    host String ALIAS if(JSONHas(raw, 'host'), JSONExtractString(raw, 'host'), JSONExtractString(raw, 'context', 'host')) COMMENT 'server name the request reached',
    referer String ALIAS if(JSONHas(raw, 'referer'), JSONExtractString(raw, 'referer'), JSONExtractString(raw, 'context', 'referer')) COMMENT 'HTTP referer',
    accept_language String ALIAS if(JSONHas(raw, 'accept_language'), JSONExtractString(raw, 'accept_language'), JSONExtractString(raw, 'context', 'accept_language')) COMMENT 'HTTP Accept-Language',
    INDEX idx_name name TYPE set(512) GRANULARITY 4,
    INDEX idx_user_id user_id TYPE bloom_filter GRANULARITY 4,
    INDEX idx_username username TYPE bloom_filter GRANULARITY 4
)
ENGINE = {{ table_engine('MergeTree') }}
PARTITION BY toYYYYMM(time)
ORDER BY (org, course_id, time)
SETTINGS {{ m.dedup_settings() }}
COMMENT 'Every Open edX tracking event, one row each';

-- Parsed events on their way to `events` and the typed tables (stores nothing). The
-- payload is decoded once here, so the typed-table views read a column instead of each
-- re-parsing `raw`.
CREATE TABLE IF NOT EXISTS `{{ database }}`._event_rows {{ on_cluster }}
(
    event_id UUID,
    time DateTime64(6, 'UTC'),
    name LowCardinality(String),
    event_type LowCardinality(String),
    event_source LowCardinality(String),
    course_id LowCardinality(String),
    org LowCardinality(String),
    user_id Nullable(Int64),
    username String,
    session String,
    page String,
    path String,
    raw String,
    source LowCardinality(String),
    source_offset UInt64,
    payload String COMMENT 'the event payload as JSON text (JSON-encoded strings decoded)',
    context_json String COMMENT 'the context object as JSON text'
)
ENGINE = Null
COMMENT 'Parsed events (internal, stores nothing)';

CREATE MATERIALIZED VIEW IF NOT EXISTS `{{ database }}`._events_parse {{ on_cluster }}
TO `{{ database }}`._event_rows
AS
SELECT
    reinterpretAsUUID(sipHash128(json)) AS event_id,
    assumeNotNull(time) AS time,
    if(top.name != '', top.name, top.event_type) AS name,
    if(top.event_type != '', top.event_type, top.name) AS event_type,
    multiIf(top.event_source != '', top.event_source, ctx.event_source != '', ctx.event_source, 'server') AS event_source,
    multiIf(
        ctx.course_id != '', ctx.course_id,
        payload_course != '', payload_course,
        {{ m.course_id_in_text('page') }} != '', {{ m.course_id_in_text('page') }},
        {{ m.course_id_in_text('ctx.path') }} != '', {{ m.course_id_in_text('ctx.path') }},
        {{ m.course_id_in_text('name') }}) AS course_id,
    if({{ m.org_of_course('course_id') }} != '', {{ m.org_of_course('course_id') }}, ctx.org_id) AS org,
    coalesce(toInt64OrNull(ctx.user_id), payload_user) AS user_id,
    if(top.username != '', top.username, ctx.username) AS username,
    if(top.session != '', top.session, ctx.session) AS session,
    if(top.page != '', top.page, ctx.page) AS page,
    ctx.path AS path,
    json AS raw,
    source,
    source_offset,
    if(payload_is_string AND NOT (match(payload_text, '^\\s*[\\[{]') AND isValidJSON(payload_text)),
       JSONExtractRaw(json, payload_key), payload_text) AS payload,
    JSONExtractRaw(json, 'context') AS context_json
FROM
(
    SELECT
        json,
        time,
        source,
        source_offset,
        JSONExtract(json, 'Tuple(name String, event_type String, event_source String, username String, session String, page String)') AS top,
        JSONExtract(json, 'context', 'Tuple(course_id String, org_id String, user_id Nullable(String), path String, username String, session String, page String, event_source String)') AS ctx,
        if(JSONHas(json, 'event'), 'event', 'data') AS payload_key,
        JSONType(json, payload_key) = 'String' AS payload_is_string,
        multiIf(payload_is_string, JSONExtractString(json, payload_key),
                JSONHas(json, payload_key), JSONExtractRaw(json, payload_key), '{}') AS payload_text,
        if(JSONType(payload_text) = 'Object', JSONExtractString(payload_text, 'course_id'), '') AS payload_course,
        if(JSONType(payload_text) = 'Object', JSONExtract(payload_text, 'user_id', 'Nullable(Int64)'), NULL) AS payload_user
    FROM `{{ database }}`._lines
    WHERE status = 'event'
);

CREATE MATERIALIZED VIEW IF NOT EXISTS `{{ database }}`._events_mv {{ on_cluster }}
TO `{{ database }}`.events
AS
SELECT event_id, time, name, event_type, event_source, course_id, org, user_id, username, session, page, path,
       raw, source, source_offset
FROM `{{ database }}`._event_rows;
