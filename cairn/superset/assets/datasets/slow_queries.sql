-- Slowest recent queries (operators): statements `cairn serve` finished in the last 24 hours (or the dashboard's
-- date range), slowest first, with who ran them, what they read and how they ended. Internal table: admins only.
-- time: started_at
-- columns: started_at DateTime, user String, duration_ms UInt32, rows_read UInt64, result_rows UInt64, kind String, query_head String, outcome String, error_code Int32, client String
SELECT
    toDateTime(l.started_at) AS started_at,
    l.user AS user,
    l.duration_ms AS duration_ms,
    l.rows_read AS rows_read,
    l.result_rows AS result_rows,
    l.kind AS kind,
    leftUTF8(replaceRegexpAll(l.query, '\\s+', ' '), 160) AS query_head,
    if(l.outcome = 'error', concat('error ', toString(l.error_code)), l.outcome) AS outcome,
    l.error_code AS error_code,
    l.client AS client
FROM _query_log AS l
WHERE 1
{%- if from_dttm or to_dttm %} {{ period('l.started_at') }}{% else %} AND l.started_at >= now() - INTERVAL 24 HOUR{% endif %}
ORDER BY l.duration_ms DESC
LIMIT 1000
