-- Ingestion at engine speed (issue 9): each line is read once.
--
-- Before, a line went through four JSON parsers and three regular expressions: the
-- classifier located the JSON with a regex, validated it, read `name`, `event_type`,
-- `time` and `timestamp` one call each; `_events_parse` parsed it again (top level,
-- context, payload type, payload text, payload again), and each typed view called
-- JSONExtract once per field. Now:
--
-- * the JSON is found with position() (the regex only runs for the rare line where
--   the fast rule finds nothing, so every line is classified exactly as before);
-- * one JSONExtract to a Tuple reads the top level, the context and the payload;
--   isValidJSON runs only on lines without a name, to tell broken JSON apart;
-- * the payload is decoded once (one more call only for plain-string payloads);
-- * each typed view reads its fields from the payload with one JSONExtract.
--
-- The tables the views fill, their columns and `event_id` (the same hash of the same
-- JSON text) do not change: rows loaded before and after this migration are alike.
-- The views writing to stored tables keep their names. The intermediate Null tables
-- (`_lines`, `_event_rows`) get new columns, so they are created again.
{% import 'macros.jinja' as m %}

DROP VIEW IF EXISTS `{{ database }}`._video_events_mv {{ on_cluster }};
DROP VIEW IF EXISTS `{{ database }}`._problem_events_mv {{ on_cluster }};
DROP VIEW IF EXISTS `{{ database }}`._enrollment_events_mv {{ on_cluster }};
DROP VIEW IF EXISTS `{{ database }}`._navigation_events_mv {{ on_cluster }};
DROP VIEW IF EXISTS `{{ database }}`._grade_events_mv {{ on_cluster }};
DROP VIEW IF EXISTS `{{ database }}`._forum_events_mv {{ on_cluster }};
DROP VIEW IF EXISTS `{{ database }}`._completion_events_mv {{ on_cluster }};
DROP VIEW IF EXISTS `{{ database }}`._certificate_events_mv {{ on_cluster }};
DROP VIEW IF EXISTS `{{ database }}`._events_mv {{ on_cluster }};
DROP VIEW IF EXISTS `{{ database }}`._events_parse {{ on_cluster }};
DROP VIEW IF EXISTS `{{ database }}`._quarantine_mv {{ on_cluster }};
DROP VIEW IF EXISTS `{{ database }}`._ingest_stats_mv {{ on_cluster }};
DROP VIEW IF EXISTS `{{ database }}`._ingest_classify {{ on_cluster }};
DROP TABLE IF EXISTS `{{ database }}`._event_rows {{ on_cluster }};
DROP TABLE IF EXISTS `{{ database }}`._lines {{ on_cluster }};

CREATE TABLE IF NOT EXISTS `{{ database }}`._lines {{ on_cluster }}
(
    source LowCardinality(String),
    source_offset UInt64,
    line String,
    json String COMMENT 'the JSON object of the line, logging prefix removed',
    time Nullable(DateTime64(6, 'UTC')) COMMENT 'event time parsed from time or timestamp',
    status LowCardinality(String) COMMENT 'event, skipped or quarantined',
    reason LowCardinality(String) COMMENT 'why the line is skipped or quarantined',
    event_id UUID,
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
    payload String COMMENT 'the event payload as JSON text (JSON-encoded strings decoded)',
    payload_is_object Bool COMMENT 'the payload is a JSON object (typed views read fields from it)',
    module_usage_key String COMMENT 'context.module.usage_key'
)
ENGINE = Null
COMMENT 'Classified and parsed lines (internal, stores nothing)';

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
    payload_is_object Bool COMMENT 'the payload is a JSON object',
    module_usage_key String COMMENT 'context.module.usage_key'
)
ENGINE = Null
COMMENT 'Parsed events (internal, stores nothing)';

-- Classify and parse every line, once. Three layers, innermost first: locate the JSON,
-- parse it, derive the columns (each layer's results are columns for the next one).
CREATE MATERIALIZED VIEW IF NOT EXISTS `{{ database }}`._ingest_classify {{ on_cluster }}
TO `{{ database }}`._lines
AS
SELECT
    source,
    source_offset,
    line,
    json,
    time,
    multiIf(reason = '', 'event', reason IN ('blank line', 'other logger', 'HTTP access log'), 'skipped', 'quarantined') AS status,
    reason,
    reinterpretAsUUID(sipHash128(json)) AS event_id,
    event_name AS name,
    if(top.event_type != '', top.event_type, top.name) AS event_type,
    multiIf(top.event_source != '', top.event_source, ctx.event_source != '', ctx.event_source, 'server') AS event_source,
    -- A course id missing from the context and the payload is looked for in the page
    -- URL, then the request path, then the name (texts that may hold one: see below).
    multiIf(
        ctx.course_id != '', ctx.course_id,
        payload_fields.course_id != '', payload_fields.course_id,
        {{ m.course_id_in_text('course_in_page') }} != '', {{ m.course_id_in_text('course_in_page') }},
        {{ m.course_id_in_text('course_in_path') }} != '', {{ m.course_id_in_text('course_in_path') }},
        {{ m.course_id_in_text('course_in_name') }}) AS course_id,
    -- Few distinct course ids: the regexes run once per distinct value.
    if({{ m.org_of_course('toLowCardinality(course_id)') }} != '', {{ m.org_of_course('toLowCardinality(course_id)') }}, ctx.org_id) AS org,
    coalesce(toInt64OrNull(ctx.user_id), payload_fields.user_id) AS user_id,
    if(top.username != '', top.username, ctx.username) AS username,
    if(top.session != '', top.session, ctx.session) AS session,
    page_url AS page,
    ctx.path AS path,
    payload,
    payload_is_object,
    ctx.module['usage_key'] AS module_usage_key
FROM
(
    SELECT
        *,
        JSONExtract(if(payload_is_object AND reason = '', payload, '{}'),
                    'Tuple(course_id String, user_id Nullable(Int64))') AS payload_fields,
        if(top.name != '', top.name, top.event_type) AS event_name,
        if(top.page != '', top.page, ctx.page) AS page_url,
        ctx.course_id = '' AND payload_fields.course_id = '' AS course_elsewhere,
        -- The text the course-key regexes search: empty unless it may hold a key.
        if(course_elsewhere AND multiSearchAny(page_url, ['-v1:', '/courses/']), page_url, '') AS course_in_page,
        if(course_elsewhere AND multiSearchAny(ctx.path, ['-v1:', '/courses/']), ctx.path, '') AS course_in_path,
        if(course_elsewhere AND multiSearchAny(event_name, ['-v1:', '/courses/']), event_name, '') AS course_in_name
    FROM
    (
        SELECT
            source,
            source_offset,
            line,
            json,
            -- One parse: the top level, the context and the payload (as text).
            JSONExtract(json, 'Tuple(name String, event_type String, time String, timestamp String, event_source String, username String, session String, page String, event Nullable(String), data Nullable(String), context Tuple(course_id String, org_id String, user_id Nullable(String), path String, username String, session String, page String, event_source String, module Map(String, String)))') AS top,
            top.context AS ctx,
            top.name = '' AND top.event_type = '' AS nameless,
            if(json = '', NULL, coalesce(
                parseDateTime64BestEffortOrNull(top.time, 6, 'UTC'),
                parseDateTime64BestEffortOrNull(top.timestamp, 6, 'UTC'))) AS time,
            -- (Functions in branches that are not taken may still run on every row: the
            -- costly ones get an empty argument where their result is not needed.)
            multiIf(
                length(line) > 1048576, 'line longer than 1 MiB',
                NOT utf8, 'not valid UTF-8',
                trimmed = '', 'blank line',
                json = '' AND tag_at = 0
                    AND match(if(json = '' AND tag_at = 0, trimmed, ''), '^(\\S+\\s+\\|\\s+)?\\d{4}-\\d\\d-\\d\\d[ T]\\d\\d:\\d\\d:\\d\\d[,.]\\d+ +[A-Z]+ +\\d+ +\\['), 'other logger',
                json = '' AND match(if(json = '', trimmed, ''), '^(\\S+\\s+\\|\\s+)?(\\[\\d\\d/\\w{3}/\\d{4}[ :]\\d\\d:\\d\\d:\\d\\d\\] "|\\[pid: \\d+\\|)'), 'HTTP access log',
                json = '', 'no JSON event in line',
                -- Broken JSON parses to empty fields: only a line without a name is validated.
                nameless AND NOT isValidJSON(if(nameless, json, '{}')), 'invalid JSON',
                -- (`json` always starts with `{`: valid JSON is an object; 0001's check is kept.)
                nameless AND JSONType(if(nameless, json, '{}')) != 'Object', 'JSON is not an object',
                nameless, 'event has no name',
                time IS NULL, 'event has no valid time',
                '') AS reason,
            -- The payload: `event` when the key is there (even null), else `data`. A JSON
            -- object or array, or a string holding one, is used as its text; anything else
            -- (a plain string, a number, null) as its raw JSON; none at all as {}.
            top.event IS NOT NULL OR JSONHas(if(top.event IS NULL, json, '{}'), 'event') AS has_event,
            if(has_event, top.event, top.data) AS payload_value,
            trimLeft(assumeNotNull(payload_value), ' \t\n\f\r') AS payload_start,
            (startsWith(payload_start, '{') OR startsWith(payload_start, '['))
                AND isValidJSON(assumeNotNull(payload_value)) AS payload_is_json,
            if(payload_is_json, assumeNotNull(payload_value),
               if(JSONHas(if(payload_is_json, '{}', json), if(has_event, 'event', 'data')),
                  JSONExtractRaw(if(payload_is_json, '{}', json), if(has_event, 'event', 'data')), '{}')
            ) AS payload,
            payload_is_json AND startsWith(payload_start, '{') AS payload_is_object
        FROM
        (
            SELECT
                source,
                source_offset,
                line,
                trimBoth(line, ' \t\r') AS trimmed,
                isValidUTF8(line) AS utf8,
                -- The JSON after the logging prefix: the first `{` after `[tracking]`, preceded
                -- by " - ". The regex (0001's rule) only runs when that finds nothing.
                position(trimmed, '[tracking]') AS tag_at,
                if(tag_at > 0, position(trimmed, '{', tag_at), 0) AS brace_at,
                startsWith(trimmed, '{') AS bare,
                utf8 AND brace_at >= tag_at + 13 AND substring(trimmed, brace_at - 3, 3) = ' - ' AS prefixed,
                multiIf(
                    bare, trimmed,
                    prefixed, substring(trimmed, brace_at),
                    tag_at > 0, extract(if(bare OR prefixed, '', trimmed), '\\[tracking\\][^{]*? - (\\{.*)$'),
                    '') AS json
            FROM `{{ database }}`._ingest
        )
    )
);

CREATE MATERIALIZED VIEW IF NOT EXISTS `{{ database }}`._quarantine_mv {{ on_cluster }}
TO `{{ database }}`._quarantine
AS
SELECT now64(3) AS received_at, source, source_offset, reason, line
FROM `{{ database }}`._lines
WHERE status = 'quarantined';

CREATE MATERIALIZED VIEW IF NOT EXISTS `{{ database }}`._ingest_stats_mv {{ on_cluster }}
TO `{{ database }}`._ingest_stats
AS
SELECT
    source,
    status,
    reason,
    count() AS lines,
    sum(length(line) + 1) AS bytes,
    toDateTime(now(), 'UTC') AS last_received,
    max(time) AS last_event_time
FROM `{{ database }}`._lines
GROUP BY source, status, reason;

CREATE MATERIALIZED VIEW IF NOT EXISTS `{{ database }}`._events_parse {{ on_cluster }}
TO `{{ database }}`._event_rows
AS
SELECT
    event_id, assumeNotNull(time) AS time, name, event_type, event_source, course_id, org, user_id, username,
    session, page, path, json AS raw, source, source_offset, payload, payload_is_object, module_usage_key
FROM `{{ database }}`._lines
WHERE status = 'event';

CREATE MATERIALIZED VIEW IF NOT EXISTS `{{ database }}`._events_mv {{ on_cluster }}
TO `{{ database }}`.events
AS
SELECT event_id, time, name, event_type, event_source, course_id, org, user_id, username, session, page, path,
       raw, source, source_offset
FROM `{{ database }}`._event_rows;

-- Typed tables: one JSONExtract of the payload each (only when it is an object: a
-- Tuple read from an array would take its elements by position).
CREATE MATERIALIZED VIEW IF NOT EXISTS `{{ database }}`._video_events_mv {{ on_cluster }}
TO `{{ database }}`.video_events
AS
SELECT
    event_id, time, name, event_type, course_id, org, user_id, username, session,
    {{ m.block_id_of("coalesce(p.id, p.module_id, '')") }} AS video_id,
    p.code AS code,
    coalesce(p.currentTime, p.current_time) AS position,
    p.duration AS duration,
    p.old_time AS old_time,
    p.new_time AS new_time,
    coalesce(p.type, p.seek_type, '') AS seek_type,
    p.old_speed AS old_speed,
    p.new_speed AS new_speed
FROM
(
    SELECT *, JSONExtract(if(payload_is_object, payload, '{}'),
        'Tuple(id Nullable(String), module_id Nullable(String), code String, currentTime Nullable(Float64), current_time Nullable(Float64), duration Nullable(Float64), old_time Nullable(Float64), new_time Nullable(Float64), type Nullable(String), seek_type Nullable(String), old_speed Nullable(Float64), new_speed Nullable(Float64))') AS p
    FROM `{{ database }}`._event_rows
    WHERE event_type IN ('load_video', 'play_video', 'pause_video', 'stop_video', 'seek_video', 'speed_change_video',
                         'complete_video', 'show_transcript', 'hide_transcript', 'video_show_cc_menu', 'video_hide_cc_menu')
       OR startsWith(name, 'edx.video.')
);

CREATE MATERIALIZED VIEW IF NOT EXISTS `{{ database }}`._problem_events_mv {{ on_cluster }}
TO `{{ database }}`.problem_events
AS
SELECT
    event_id, time, name, event_source, course_id, org, user_id, username, session,
    multiIf(
        p.problem_id != '', p.problem_id,
        p.problem != '', p.problem,
        p.module_id != '', p.module_id,
        module_usage_key != '', module_usage_key,
        '') AS problem_id,
    multiIf(
        problem_id != '', {{ m.block_id_of('problem_id') }},
        -- browser problem_check sends only input ids: input_<block id>_2_1=...
        match(payload, 'input_[^=&]+_\\d+_\\d+'), extract(payload, 'input_([^=&]+?)_\\d+_\\d+'),
        '') AS block_id,
    p.attempts AS attempts,
    coalesce(p.grade, p.weighted_earned) AS grade,
    coalesce(p.max_grade, p.weighted_possible) AS max_grade,
    p.success AS success,
    -- An object or array of answers is its JSON text; the rarer shapes (a string, a
    -- list payload, answers null) keep migration 0004's rule.
    if(p.answers IS NOT NULL AND (startsWith(p.answers, '{') OR startsWith(p.answers, '['))
           AND JSONType(payload, 'answers') IN ('Object', 'Array'),
       p.answers,
       multiIf(
           JSONHas(payload, 'answers'), JSONExtractRaw(payload, 'answers'),
           JSONType(payload) = 'Array', JSONExtractRaw(payload, 1),
           JSONType(payload) = 'String', JSONExtractString(payload),
           '')) AS answers
FROM
(
    SELECT *, JSONExtract(if(payload_is_object, payload, '{}'),
        'Tuple(problem_id String, problem String, module_id String, attempts Nullable(UInt32), grade Nullable(Float64), weighted_earned Nullable(Float64), max_grade Nullable(Float64), weighted_possible Nullable(Float64), success String, answers Nullable(String))') AS p
    FROM `{{ database }}`._event_rows
    WHERE event_type IN ('problem_check', 'problem_check_fail', 'problem_graded', 'problem_show', 'showanswer',
                         'problem_save', 'problem_reset', 'problem_rescore', 'problem_rescore_fail',
                         'reset_problem', 'reset_problem_fail', 'save_problem_success', 'save_problem_fail',
                         'save_problem_check', 'problem_check_fail')
       OR startsWith(name, 'edx.grades.problem.')
       OR startsWith(name, 'edx.problem.')
);

CREATE MATERIALIZED VIEW IF NOT EXISTS `{{ database }}`._enrollment_events_mv {{ on_cluster }}
TO `{{ database }}`.enrollment_events
AS
SELECT
    event_id, time, name,
    replaceOne(name, 'edx.course.enrollment.', '') AS action,
    if(p.course_id != '', p.course_id, event_course_id) AS course_id,
    if({{ m.org_of_course('course_id') }} != '', {{ m.org_of_course('course_id') }}, event_org) AS org,
    coalesce(p.user_id, actor_user_id) AS user_id,
    actor_user_id,
    p.mode AS mode
FROM
(
    SELECT event_id, time, name, course_id AS event_course_id, org AS event_org, user_id AS actor_user_id,
           JSONExtract(if(payload_is_object, payload, '{}'),
                       'Tuple(course_id String, user_id Nullable(Int64), mode String)') AS p
    FROM `{{ database }}`._event_rows
    WHERE startsWith(name, 'edx.course.enrollment.')
);

CREATE MATERIALIZED VIEW IF NOT EXISTS `{{ database }}`._navigation_events_mv {{ on_cluster }}
TO `{{ database }}`.navigation_events
AS
SELECT
    event_id, time, name, event_type, course_id, org, user_id, username, session,
    p.id AS sequence_id,
    coalesce(p.current_tab, p.old) AS current_tab,
    coalesce(p.target_tab, p.new) AS target_tab,
    p.tab_count AS tab_count,
    p.current_url AS current_url,
    p.target_url AS target_url,
    p.target_name AS target_name,
    p.widget_placement AS widget_placement
FROM
(
    SELECT *, JSONExtract(if(payload_is_object, payload, '{}'),
        'Tuple(id String, current_tab Nullable(UInt32), old Nullable(UInt32), target_tab Nullable(UInt32), new Nullable(UInt32), tab_count Nullable(UInt32), current_url String, target_url String, target_name String, widget_placement String)') AS p
    FROM `{{ database }}`._event_rows
    WHERE startsWith(name, 'edx.ui.lms.sequence.') OR startsWith(name, 'edx.ui.lms.outline.')
       OR name IN ('edx.ui.lms.link_clicked', 'edx.ui.lms.jump_nav.selected')
       OR event_type IN ('seq_goto', 'seq_next', 'seq_prev')
);

CREATE MATERIALIZED VIEW IF NOT EXISTS `{{ database }}`._grade_events_mv {{ on_cluster }}
TO `{{ database }}`.grade_events
AS
SELECT
    event_id, time, name,
    if(p.course_id != '', p.course_id, event_course_id) AS course_id,
    if({{ m.org_of_course('course_id') }} != '', {{ m.org_of_course('course_id') }}, event_org) AS org,
    coalesce(p.user_id, event_user_id) AS user_id,
    p.block_id AS block_id,
    p.weighted_total_earned AS weighted_total_earned,
    p.weighted_total_possible AS weighted_total_possible,
    p.weighted_graded_earned AS weighted_graded_earned,
    p.weighted_graded_possible AS weighted_graded_possible,
    p.percent_grade AS percent_grade,
    p.letter_grade AS letter_grade,
    multiIf(name IN ('edx.course.grade.passed.first_time', 'edx.course.grade.now_passed'), true,
            name = 'edx.course.grade.now_failed', false, NULL) AS passed,
    p.course_version AS course_version,
    p.event_transaction_id AS event_transaction_id
FROM
(
    SELECT event_id, time, name, course_id AS event_course_id, org AS event_org, user_id AS event_user_id,
           JSONExtract(if(payload_is_object, payload, '{}'),
               'Tuple(course_id String, user_id Nullable(Int64), block_id String, weighted_total_earned Nullable(Float64), weighted_total_possible Nullable(Float64), weighted_graded_earned Nullable(Float64), weighted_graded_possible Nullable(Float64), percent_grade Nullable(Float64), letter_grade String, course_version String, event_transaction_id String)') AS p
    FROM `{{ database }}`._event_rows
    WHERE name IN ('edx.grades.subsection.grade_calculated', 'edx.grades.course.grade_calculated',
                   'edx.grades.subsection.score_overridden')
       OR startsWith(name, 'edx.course.grade.')
);

CREATE MATERIALIZED VIEW IF NOT EXISTS `{{ database }}`._forum_events_mv {{ on_cluster }}
TO `{{ database }}`.forum_events
AS
SELECT
    event_id, time, name,
    if(length(splitByChar('.', name)) >= 4, splitByChar('.', name)[3], '') AS object_type,
    if(length(splitByChar('.', name)) >= 4, arrayStringConcat(arraySlice(splitByChar('.', name), 4), '.'),
       splitByChar('.', name)[-1]) AS action,
    course_id, org, user_id, username,
    p.id AS post_id,
    multiIf(p.discussion['id'] != '', p.discussion['id'], object_type = 'thread', post_id, '') AS thread_id,
    p.response['id'] AS response_id,
    p.commentable_id AS commentable_id,
    p.category_name AS category_name,
    p.title AS title,
    p.body AS body,
    p.truncated AS truncated,
    p.vote_value AS vote_value,
    p.team_id AS team_id
FROM
(
    SELECT *, JSONExtract(if(payload_is_object, payload, '{}'),
        'Tuple(id String, discussion Map(String, String), response Map(String, String), commentable_id String, category_name String, title String, body String, truncated Nullable(Bool), vote_value String, team_id String)') AS p
    FROM `{{ database }}`._event_rows
    WHERE startsWith(name, 'edx.forum.')
);

CREATE MATERIALIZED VIEW IF NOT EXISTS `{{ database }}`._completion_events_mv {{ on_cluster }}
TO `{{ database }}`.completion_events
AS
SELECT
    event_id, time,
    multiIf(p.course_id != '', p.course_id, p.context_key != '', p.context_key, event_course_id) AS course_id,
    if({{ m.org_of_course('course_id') }} != '', {{ m.org_of_course('course_id') }}, event_org) AS org,
    coalesce(p.user_id, event_user_id) AS user_id,
    p.block_id AS block_id,
    if(p.block_type != '', p.block_type, extract(block_id, 'type@([^+]+)')) AS block_type,
    p.completion AS completion
FROM
(
    SELECT event_id, time, course_id AS event_course_id, org AS event_org, user_id AS event_user_id,
           JSONExtract(if(payload_is_object, payload, '{}'),
               'Tuple(course_id String, context_key String, user_id Nullable(Int64), block_id String, block_type String, completion Nullable(Float64))') AS p
    FROM `{{ database }}`._event_rows
    WHERE name = 'edx.completion.block_completion.changed'
);

CREATE MATERIALIZED VIEW IF NOT EXISTS `{{ database }}`._certificate_events_mv {{ on_cluster }}
TO `{{ database }}`.certificate_events
AS
SELECT
    event_id, time, name,
    replaceOne(name, 'edx.certificate.', '') AS action,
    if(p.course_id != '', p.course_id, event_course_id) AS course_id,
    if({{ m.org_of_course('course_id') }} != '', {{ m.org_of_course('course_id') }}, event_org) AS org,
    coalesce(p.user_id, event_user_id) AS user_id,
    p.certificate_id AS certificate_id,
    p.certificate_url AS certificate_url,
    p.enrollment_mode AS enrollment_mode,
    p.generation_mode AS generation_mode,
    p.source AS source
FROM
(
    SELECT event_id, time, name, course_id AS event_course_id, org AS event_org, user_id AS event_user_id,
           JSONExtract(if(payload_is_object, payload, '{}'),
               'Tuple(course_id String, user_id Nullable(Int64), certificate_id String, certificate_url String, enrollment_mode String, generation_mode String, source String)') AS p
    FROM `{{ database }}`._event_rows
    WHERE startsWith(name, 'edx.certificate.')
);
