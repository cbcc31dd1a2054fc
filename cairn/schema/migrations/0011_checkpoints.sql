-- openedx._checkpoints: how far each tracking-log file has been loaded.
-- Kept in the datalake itself so that positions and data live and die together.
{% import 'macros.jinja' as m %}

CREATE TABLE IF NOT EXISTS `{{ database }}`._checkpoints {{ on_cluster }}
(
    fingerprint String COMMENT 'identity of the file content (hash of its first line)',
    source String COMMENT 'last path the file was read from',
    offset UInt64 COMMENT 'bytes of the (uncompressed) file loaded so far, ending at a line break',
    size UInt64 COMMENT 'file size seen at that time',
    updated_at DateTime64(6, 'UTC') COMMENT 'when the checkpoint was written'
)
ENGINE = {{ table_engine('ReplacingMergeTree', 'updated_at') }}
ORDER BY fingerprint
COMMENT 'Load positions per file (latest row per fingerprint wins)';
