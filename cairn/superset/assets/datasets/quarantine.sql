-- Quarantined lines (operators): lines that were not events, per reason and source, with the last one's time.
-- Internal table: admins only.
-- time: received_at
-- columns: reason String, source String, received_at DateTime, lines UInt64
SELECT reason, source, max(received_at) AS received_at, count() AS lines
FROM _quarantine
WHERE 1 {{ period('received_at') }}
GROUP BY reason, source
