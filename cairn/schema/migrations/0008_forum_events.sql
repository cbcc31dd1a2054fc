-- openedx.forum_events: discussion threads, responses and comments.
{% import 'macros.jinja' as m %}

CREATE TABLE IF NOT EXISTS `{{ database }}`.forum_events {{ on_cluster }}
(
    event_id UUID COMMENT 'id of the event in openedx.events',
    time DateTime64(6, 'UTC') COMMENT 'event time (UTC)',
    name LowCardinality(String) COMMENT 'edx.forum.<object>.<action>, or edx.forum.searched',
    object_type LowCardinality(String) COMMENT 'thread, response or comment (empty for searches)',
    action LowCardinality(String) COMMENT 'created, edited, deleted, voted, viewed, reported, unreported, searched, ...',
    course_id LowCardinality(String) COMMENT 'course key',
    org LowCardinality(String) COMMENT 'organisation',
    user_id Nullable(Int64) COMMENT 'author or actor',
    username String COMMENT 'author or actor username',
    post_id String COMMENT 'id of the thread, response or comment acted on',
    thread_id String COMMENT 'id of the thread the post belongs to',
    response_id String COMMENT 'comments: id of the parent response',
    commentable_id String COMMENT 'discussion topic id',
    category_name String COMMENT 'discussion topic name',
    title String COMMENT 'thread title (cut at 1000 characters by Open edX)',
    body String COMMENT 'post body (cut at 2000 characters by Open edX)',
    truncated Nullable(Bool) COMMENT 'body was cut',
    vote_value LowCardinality(String) COMMENT 'votes: up or down',
    team_id String COMMENT 'team discussions: team id'
)
ENGINE = {{ table_engine('MergeTree') }}
PARTITION BY toYYYYMM(time)
ORDER BY (org, course_id, time)
SETTINGS {{ m.dedup_settings() }}
COMMENT 'Forum events, one row per event';

CREATE MATERIALIZED VIEW IF NOT EXISTS `{{ database }}`._forum_events_mv {{ on_cluster }}
TO `{{ database }}`.forum_events
AS
SELECT
    event_id, time, name,
    if(length(splitByChar('.', name)) >= 4, splitByChar('.', name)[3], '') AS object_type,
    if(length(splitByChar('.', name)) >= 4, arrayStringConcat(arraySlice(splitByChar('.', name), 4), '.'),
       splitByChar('.', name)[-1]) AS action,
    course_id, org, user_id, username,
    JSONExtractString(payload, 'id') AS post_id,
    multiIf(JSONExtractString(payload, 'discussion', 'id') != '', JSONExtractString(payload, 'discussion', 'id'),
            object_type = 'thread', post_id, '') AS thread_id,
    JSONExtractString(payload, 'response', 'id') AS response_id,
    JSONExtractString(payload, 'commentable_id') AS commentable_id,
    JSONExtractString(payload, 'category_name') AS category_name,
    JSONExtractString(payload, 'title') AS title,
    JSONExtractString(payload, 'body') AS body,
    JSONExtract(payload, 'truncated', 'Nullable(Bool)') AS truncated,
    JSONExtractString(payload, 'vote_value') AS vote_value,
    JSONExtractString(payload, 'team_id') AS team_id
FROM `{{ database }}`._event_rows
WHERE startsWith(name, 'edx.forum.');
