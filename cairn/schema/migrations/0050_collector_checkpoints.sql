-- Exactly-once loading (issue 3): a checkpoint row also announces the chunk being
-- inserted (`offset`..`pending_end`), written before the insert. After a crash the
-- loader replays exactly that range with the same insert_deduplication_token.

ALTER TABLE `{{ database }}`._checkpoints {{ on_cluster }}
    ADD COLUMN IF NOT EXISTS pending_end UInt64 DEFAULT offset
    COMMENT 'end of the chunk announced before its insert (= offset when nothing is pending)'
    AFTER offset;
