-- Ingestion per source (operators): lines read per outcome, when the last line arrived, the time of the last
-- event it carried, and the lag between the two. Internal tables: admins only.
-- columns: source String, events UInt64, skipped UInt64, quarantined UInt64, last_received DateTime, last_event_time DateTime, lag_seconds Float64, idle_seconds Int64
SELECT
    source,
    sumIf(lines, status = 'event') AS events,
    sumIf(lines, status = 'skipped') AS skipped,
    sumIf(lines, status = 'quarantined') AS quarantined,
    max(last_received) AS last_received,
    max(last_event_time) AS last_event_time,
    greatest(dateDiff('millisecond', last_event_time, last_received) / 1000, 0) AS lag_seconds,
    dateDiff('second', last_received, now()) AS idle_seconds
FROM _ingest_stats
GROUP BY source
