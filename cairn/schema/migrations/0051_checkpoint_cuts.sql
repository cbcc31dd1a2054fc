-- Backfill inserts two chunks at a time (one per core): the intent row lists the
-- boundaries inside its pending range, so that a replay after a crash repeats each
-- chunk with its own deduplication token.

ALTER TABLE `{{ database }}`._checkpoints {{ on_cluster }}
    ADD COLUMN IF NOT EXISTS pending_cuts Array(UInt64) DEFAULT []
    COMMENT 'chunk boundaries strictly inside offset..pending_end (chunks inserted in parallel)'
    AFTER pending_end;
