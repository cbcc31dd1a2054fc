-- File identity (issue 9): a checkpoint also records a hash of the file's bytes just
-- before its position. Files sharing their first line are told apart by it (see
-- cairn/ingest/identity.py). Rows written before have '': such a stream is still
-- recognised by its first line alone, until its next checkpoint row.

ALTER TABLE `{{ database }}`._checkpoints {{ on_cluster }}
    ADD COLUMN IF NOT EXISTS anchor String DEFAULT ''
    COMMENT 'hash of the 4 KiB of the file before offset (empty at 0): which file this stream is'
    AFTER pending_cuts;
