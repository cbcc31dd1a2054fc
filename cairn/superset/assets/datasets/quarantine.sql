-- Quarantined lines (operators): lines that were not events, per reason and source, with the last one's time.
-- Internal table: admins only.
-- time: received_at
-- columns: reason String, source String, received_at DateTime, lines UInt64
SELECT q.reason AS reason, q.source AS source, max(q.received_at) AS received_at, count() AS lines
FROM _quarantine AS q
WHERE 1 {{ period('q.received_at') }}
GROUP BY reason, source
