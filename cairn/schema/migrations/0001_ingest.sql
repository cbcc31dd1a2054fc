-- Ingestion pipeline: tracking-log lines in, classified lines out.
--
-- Loaders insert raw lines into `_ingest` (a Null table: nothing is stored there).
-- `_ingest_classify` decides once per line whether it is an event, a line to skip
-- (blank, another logger, an HTTP access line) or a line to quarantine, and passes
-- the result through `_lines` (Null too) to the views that fill `events`,
-- `_quarantine` and `_ingest_stats`. All parsing happens here, in ClickHouse.
{% import 'macros.jinja' as m %}

CREATE TABLE IF NOT EXISTS `{{ database }}`._ingest {{ on_cluster }}
(
    source LowCardinality(String) COMMENT 'where the line came from (file path, "-" for stdin)',
    source_offset UInt64 COMMENT 'byte offset of the line in its source',
    line String COMMENT 'the line as read, without its newline'
)
ENGINE = Null
COMMENT 'Insert tracking-log lines here; materialized views route them';

CREATE TABLE IF NOT EXISTS `{{ database }}`._lines {{ on_cluster }}
(
    source LowCardinality(String),
    source_offset UInt64,
    line String,
    json String COMMENT 'the JSON object of the line, logging prefix removed',
    time Nullable(DateTime64(6, 'UTC')) COMMENT 'event time parsed from time or timestamp',
    status LowCardinality(String) COMMENT 'event, skipped or quarantined',
    reason LowCardinality(String) COMMENT 'why the line is skipped or quarantined'
)
ENGINE = Null
COMMENT 'Classified lines (internal, stores nothing)';

CREATE TABLE IF NOT EXISTS `{{ database }}`._quarantine {{ on_cluster }}
(
    received_at DateTime64(3, 'UTC') DEFAULT now64(3) COMMENT 'when Cairn read the line',
    source LowCardinality(String) COMMENT 'file path or "-" for stdin',
    source_offset UInt64 COMMENT 'byte offset of the line in its source',
    reason LowCardinality(String) COMMENT 'why the line is not an event',
    line String CODEC(ZSTD(3)) COMMENT 'the line exactly as read (bytes kept)'
)
ENGINE = {{ table_engine('MergeTree') }}
PARTITION BY toYYYYMM(received_at)
ORDER BY (source, source_offset)
SETTINGS {{ m.dedup_settings() }}
COMMENT 'Lines that are not valid events, kept for inspection and reprocessing';

CREATE TABLE IF NOT EXISTS `{{ database }}`._ingest_stats {{ on_cluster }}
(
    source LowCardinality(String),
    status LowCardinality(String) COMMENT 'event, skipped or quarantined',
    reason LowCardinality(String),
    lines SimpleAggregateFunction(sum, UInt64),
    bytes SimpleAggregateFunction(sum, UInt64),
    last_received SimpleAggregateFunction(max, DateTime('UTC')),
    last_event_time SimpleAggregateFunction(max, Nullable(DateTime64(6, 'UTC')))
)
ENGINE = {{ table_engine('AggregatingMergeTree') }}
ORDER BY (source, status, reason)
SETTINGS {{ m.dedup_settings() }}
COMMENT 'Line counts per source and outcome (query with sum() ... GROUP BY)';

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
    reason
FROM
(
    SELECT
        source,
        source_offset,
        line,
        trimBoth(line, ' \t\r') AS trimmed,
        multiIf(
            startsWith(trimmed, '{'), trimmed,
            position(trimmed, '[tracking]') > 0, extract(trimmed, '\\[tracking\\][^{]*? - (\\{.*)$'),
            '') AS json,
        if(json = '', NULL, coalesce(
            parseDateTime64BestEffortOrNull(JSONExtractString(json, 'time'), 6, 'UTC'),
            parseDateTime64BestEffortOrNull(JSONExtractString(json, 'timestamp'), 6, 'UTC'))) AS time,
        multiIf(
            length(line) > 1048576, 'line longer than 1 MiB',
            NOT isValidUTF8(line), 'not valid UTF-8',
            trimmed = '', 'blank line',
            json = '' AND position(trimmed, '[tracking]') = 0
                AND match(trimmed, '^(\\S+\\s+\\|\\s+)?\\d{4}-\\d\\d-\\d\\d[ T]\\d\\d:\\d\\d:\\d\\d[,.]\\d+ +[A-Z]+ +\\d+ +\\['), 'other logger',
            json = '' AND match(trimmed, '^(\\S+\\s+\\|\\s+)?(\\[\\d\\d/\\w{3}/\\d{4}[ :]\\d\\d:\\d\\d:\\d\\d\\] "|\\[pid: \\d+\\|)'), 'HTTP access log',
            json = '', 'no JSON event in line',
            NOT isValidJSON(json), 'invalid JSON',
            JSONType(json) != 'Object', 'JSON is not an object',
            JSONExtractString(json, 'name') = '' AND JSONExtractString(json, 'event_type') = '', 'event has no name',
            time IS NULL, 'event has no valid time',
            '') AS reason
    FROM `{{ database }}`._ingest
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
