-- openedx._query_log: the statements `cairn serve` finished, written by the server itself in
-- batches (cairn/serve/query_log.py). chDB has no system.query_log; this is Cairn's. Internal:
-- only admins (and Superset's admins) can read it.
--
-- Partitioned by day so that the TTL drops whole parts; `cairn serve` sets the TTL to
-- serve.query_log_ttl_days when it starts (30 days here).
{% import 'macros.jinja' as m %}

CREATE TABLE IF NOT EXISTS `{{ database }}`._query_log {{ on_cluster }}
(
    started_at DateTime64(3, 'UTC') COMMENT 'when the request arrived',
    duration_ms UInt32 COMMENT 'milliseconds until its answer was sent (or it failed)',
    user LowCardinality(String) COMMENT 'datalake user it ran as (a Superset user: that person; Superset admins: superset_admin)',
    client LowCardinality(String) COMMENT 'how it logged in: superset (delegated token), or the HTTP User-Agent''s product',
    address String COMMENT 'client address',
    query_id String COMMENT 'the client''s query_id (or the one the server gave it)',
    kind LowCardinality(String) COMMENT 'statement kind: select, insert, ddl, show, describe, set, use, other ("" when refused before it was read)',
    query String COMMENT 'the statement text, secrets masked, at most 4 KiB',
    rows_read UInt64 COMMENT 'rows read from storage (as X-ClickHouse-Summary), 0 when unknown',
    bytes_read UInt64 COMMENT 'bytes read from storage, 0 when unknown',
    result_rows UInt64 COMMENT 'rows of the result, 0 when unknown',
    written_rows UInt64 COMMENT 'rows written by an INSERT',
    outcome LowCardinality(String) COMMENT 'ok, error, cancelled (client gone, shutdown) or killed (KILL QUERY, replace_running_query)',
    error_code Int32 COMMENT 'ClickHouse error code, 0 when ok',
    error String COMMENT 'first line of the error, at most 1 KiB'
)
ENGINE = {{ table_engine('MergeTree') }}
PARTITION BY toDate(started_at)
ORDER BY (started_at, user)
TTL toDateTime(started_at) + INTERVAL 30 DAY
SETTINGS ttl_only_drop_parts = 1
COMMENT 'Statements cairn serve finished: who, how long, what they read, outcome (internal)';
