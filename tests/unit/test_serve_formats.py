"""Output formats of `cairn serve` (issue 12, findings 1-3), on fake chDB streams (no engine).

The real engine's side of the same contracts is in tests/integration/test_serve_streams.py.
"""

from __future__ import annotations

import csv
import io
import threading

import pytest

from cairn.engine.session import RawStream
from cairn.errors import EngineError
from cairn.serve import formats


# --- the classifier ---------------------------------------------------------

@pytest.mark.parametrize("fmt", ["TSV", "TabSeparated", "TSVRaw", "CSV", "JSONEachRow", "JSONCompactEachRow",
                                 "JSONStringsEachRow", "RowBinary", "Native", "TSKV", "CustomSeparated",
                                 "CSVWithNames", "TSVWithNamesAndTypes", "JSONCompactEachRowWithNames",
                                 "RowBinaryWithNamesAndTypes", "Values", "tsv"])
def test_row_formats_stream(fmt):
    assert formats.streams(fmt, "SELECT 1")


@pytest.mark.parametrize("fmt", ["JSON", "JSONCompact", "JSONStrings", "XML", "Parquet", "Arrow", "ArrowStream",
                                 "ORC", "Avro", "Pretty", "PrettyCompact", "Markdown", "Vertical",
                                 "SomeFormatNotListed"])
def test_document_formats_run_whole(fmt):
    assert formats.joining(fmt) == formats.WHOLE
    assert not formats.streams(fmt, "SELECT 1")


@pytest.mark.parametrize("sql, settings", [
    ("SELECT k, count() FROM t GROUP BY k WITH TOTALS", {}),
    ("SELECT k FROM t SETTINGS extremes = 1", {}),
    ("SELECT 1", {"extremes": "1"}),
    ("SELECT 1", {"format_custom_result_before_delimiter": "<"}),
])
def test_totals_and_extremes_run_whole_in_any_format(sql, settings):
    assert not formats.streams("TSV", sql, settings)


def test_extremes_off_still_streams():
    assert formats.streams("TSV", "SELECT 1", {"extremes": "0"})


# --- joining chunks ---------------------------------------------------------

def _join(chunks, fmt):
    return b"".join(formats.normalise(chunks, fmt))


def test_pass_formats_concatenate():
    assert _join([b"1\n2\n", b"", b"3\n"], "TSV") == b"1\n2\n3\n"


def test_tsv_with_names_and_types_keeps_one_header():
    head = b"a\tb\nUInt8\tString\n"
    assert _join([head + b"1\tx\n", head + b"2\ty\n", head], "TSVWithNamesAndTypes") == head + b"1\tx\n2\ty\n"


def test_csv_header_with_a_newline_in_a_quoted_name():
    head = b'"a\nb","c"\n'
    joined = _join([head + b"1,2\n", head + b"3,4\n"], "CSVWithNames")
    assert list(csv.reader(io.StringIO(joined.decode(), newline=""))) == [["a\nb", "c"], ["1", "2"], ["3", "4"]]


def test_rowbinary_with_names_and_types_header_cut():
    head = b"\x02" + b"\x01a" + b"\x01b" + b"\x05UInt8" + b"\x06String"
    rows1, rows2 = b"\x01\x01x", b"\x02\x01y"
    assert _join([head + rows1, head + rows2], "RowBinaryWithNamesAndTypes") == head + rows1 + rows2


def test_values_get_their_separator_back():
    assert _join([b"(1),(2)", b"(3)"], "Values") == b"(1),(2),(3)"


# --- RawStream: empty results, ownership ------------------------------------

class _Chunk:
    def __init__(self, data: bytes, rows: int):
        self.data, self.rows = data, rows

    def bytes(self):
        return self.data

    def rows_read(self):
        return self.rows

    def storage_rows_read(self):
        return self.rows

    def storage_bytes_read(self):
        return len(self.data)


class _CConn:
    """chDB's C++ connection: hands out chunks, then one with no bytes."""

    def __init__(self, chunks, fail_at=None):
        self.chunks = list(chunks)
        self.fail_at = fail_at
        self.fetches = 0

    def streaming_fetch_result(self, handle):
        self.fetches += 1
        if self.fail_at is not None and self.fetches == self.fail_at:
            raise RuntimeError("Code: 394. DB::Exception: Query was cancelled. (QUERY_WAS_CANCELLED)")
        return self.chunks.pop(0) if self.chunks else _Chunk(b"", 0)


class _Stream:
    """chDB's StreamingResult: its public fetch() stops at a chunk of 0 rows."""

    def __init__(self, conn):
        self._conn, self._result, self._exhausted = conn, object(), False
        self.cancels = []

    def fetch(self):
        chunk = self._conn.streaming_fetch_result(self._result)
        return None if chunk.rows_read() == 0 else chunk

    def cancel(self):
        self.cancels.append(threading.current_thread().name)


def test_empty_result_keeps_its_header_document():
    meta = b'{"meta": [{"name": "n"}], "data": []}'
    stream = RawStream(_Stream(_CConn([_Chunk(meta, 0)])))
    assert b"".join(stream) == meta


def test_without_the_private_fetch_an_empty_result_is_run_again_whole():
    class Public:
        def __init__(self):
            self.left = [_Chunk(b"header\n", 0)]

        def fetch(self):
            chunk = self.left.pop(0) if self.left else None
            return None if chunk is None or chunk.rows_read() == 0 else chunk

        def cancel(self):
            pass

    stream = RawStream(Public(), rerun=lambda: b"header\n")
    assert b"".join(stream) == b"header\n"


def test_counters_are_storage_reads():
    stream = RawStream(_Stream(_CConn([_Chunk(b"1\n", 1), _Chunk(b"2\n", 1)])))
    assert b"".join(stream) == b"1\n2\n" and stream.rows_read == 2 and stream.bytes_read == 4


def test_interrupt_never_touches_the_chdb_stream_and_the_owner_stops():
    chdb_stream = _Stream(_CConn([_Chunk(b"1\n", 1), _Chunk(b"2\n", 1)]))
    kills = []
    stream = RawStream(chdb_stream, kill=lambda: kills.append(1))
    chunks = iter(stream)
    assert next(chunks) == b"1\n"
    other = threading.Thread(target=stream.interrupt, name="monitor")
    other.start()
    other.join()
    stream.interrupt()  # once only
    assert kills == [1] and chdb_stream.cancels == []
    with pytest.raises(EngineError) as err:
        next(chunks)
    assert err.value.code == 394
    assert chdb_stream.cancels == [threading.current_thread().name]  # by the owner
    stream.close()
    assert len(chdb_stream.cancels) == 1


def test_a_failed_fetch_after_a_kill_is_a_cancellation_and_not_cancelled_again():
    chdb_stream = _Stream(_CConn([_Chunk(b"1\n", 1)], fail_at=2))
    stream = RawStream(chdb_stream)
    chunks = iter(stream)
    next(chunks)
    stream.cancelled = True  # what interrupt() sets before its KILL lands
    with pytest.raises(EngineError) as err:
        next(chunks)
    assert err.value.code == 394
    stream.cancel()
    assert chdb_stream.cancels == [] and chdb_stream._exhausted


def test_the_end_of_stream_needs_no_cancel():
    chdb_stream = _Stream(_CConn([_Chunk(b"1\n", 1)]))
    stream = RawStream(chdb_stream)
    assert b"".join(stream) == b"1\n"
    stream.close()
    assert chdb_stream.cancels == [] and chdb_stream._exhausted
