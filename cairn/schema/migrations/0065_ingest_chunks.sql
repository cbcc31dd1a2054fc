-- Chunks of lines in, as they are in the file (issue 9).
--
-- Before, Python cut every chunk into lines and wrote each as a TabSeparated row
-- (source, offset, escaped line), and the engine parsed the rows back: about a third
-- of a backfill's CPU went into that round trip. Now a loader sends a chunk of whole
-- lines as one RowBinary value (the file's bytes, unescaped) with the offset of its
-- first line; `_ingest_split` cuts it into lines and computes each line's offset, and
-- the rows go on into `_ingest` as before. The rows `_ingest` receives, and so
-- everything below it, are exactly those the TabSeparated path gave.
--
-- `_ingest` stays: events of JSON documents and ranges of very many lines are still
-- sent as rows there, and so is the replay of a range whose intent was
-- written before this migration (`pending_encoding` = ''), so that it is deduplicated
-- against what the first attempt stored (a deduplication token only matches along the
-- same chain of views).
{% import 'macros.jinja' as m %}

CREATE TABLE IF NOT EXISTS `{{ database }}`._ingest_chunks {{ on_cluster }}
(
    source LowCardinality(String) COMMENT 'where the lines came from (file path)',
    start UInt64 COMMENT 'byte offset of the first line in its source',
    data String COMMENT 'whole lines as read, each ended by a newline'
)
ENGINE = Null
COMMENT 'Insert chunks of whole tracking-log lines here; _ingest_split cuts them into _ingest rows';

-- The last element of the split is the empty text after the final newline.
CREATE MATERIALIZED VIEW IF NOT EXISTS `{{ database }}`._ingest_split {{ on_cluster }}
TO `{{ database }}`._ingest
AS
SELECT source, start + line_start AS source_offset, line
FROM
(
    SELECT
        source,
        start,
        arrayPopBack(splitByChar('\n', data)) AS lines,
        -- Offset of each line in the chunk: the lengths (newline included) of the lines before it.
        arrayMap((line, line_end) -> toUInt64(line_end - length(line) - 1), lines,
                 arrayCumSum(arrayMap(line -> length(line) + 1, lines))) AS line_starts
    FROM `{{ database }}`._ingest_chunks
)
ARRAY JOIN lines AS line, line_starts AS line_start;

ALTER TABLE `{{ database }}`._checkpoints {{ on_cluster }}
    ADD COLUMN IF NOT EXISTS pending_encoding LowCardinality(String) DEFAULT ''
    COMMENT 'how the pending range is sent: chunks (into _ingest_chunks when it can), or empty: rows into _ingest (intents older than migration 0065)'
    AFTER anchor;
