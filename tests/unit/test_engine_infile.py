"""INSERT ... FROM INFILE plumbing without an engine: batching, the FIFO writer, producer failures."""

from __future__ import annotations

import os
import re
import tempfile
import threading

import pytest
import zstandard

from cairn.engine import infile
from cairn.engine.infile import infile_insert, statement_batches
from cairn.engine.session import split_insert_settings


def _fifo_of(sql: str) -> str:
    return re.search(r"FROM INFILE '([^']+)'", sql).group(1)


def _reader(decompress: bool = False):
    """A stand-in engine: reads the FIFO to its end, like ``query()`` would."""
    seen = {}

    def run(sql):
        seen["sql"] = sql
        with open(_fifo_of(sql), "rb") as pipe:
            data = pipe.read()
        if decompress:
            data = zstandard.ZstdDecompressor().decompressobj().decompress(data)  # raises on a corrupt block
        seen["data"] = data
        return "result"

    return run, seen


def test_statement_text_and_data_plain():
    run, seen = _reader()
    assert infile_insert(run, "INSERT INTO t (a)", "TSV", [b"1\n", b"", b"2\n"], "x = 1") == "result"
    assert seen["data"] == b"1\n2\n"
    assert re.fullmatch(r"INSERT INTO t \(a\) FROM INFILE '[^']+/data' SETTINGS input_format_parallel_parsing = 1, "
                        r"x = 1 FORMAT TSV", seen["sql"])


def test_zstd_framing_streams_any_iterable():
    run, seen = _reader(decompress=True)
    infile_insert(run, "INSERT INTO t", "RowBinary", (bytes([i]) * 1000 for i in range(50)), framing="zstd")
    assert "COMPRESSION 'zstd'" in seen["sql"]
    assert seen["data"] == b"".join(bytes([i]) * 1000 for i in range(50))


def test_plain_framing_refuses_a_stream():
    with pytest.raises(TypeError):
        infile_insert(lambda sql: None, "INSERT INTO t", "TSV", iter([b"1\n"]))


def test_a_failing_producer_corrupts_the_frame_and_its_error_is_raised():
    run, seen = _reader(decompress=True)

    def producer():
        yield b"1\n" * 1000
        raise ConnectionResetError("client gone")

    with pytest.raises(ConnectionResetError):
        infile_insert(run, "INSERT INTO t", "TSV", producer(), framing="zstd")
    assert "data" not in seen  # the reader could not decode it: the engine refuses the statement


def test_an_engine_that_never_opens_the_fifo_does_not_leave_the_writer_stuck():
    threads = threading.active_count()
    ours = f"{infile.FIFO_PREFIX}{os.getpid()}-"  # other processes (a running cairn) make their own

    def left_over() -> set[str]:
        return {p for p in os.listdir(tempfile.gettempdir()) if p.startswith(ours)}

    before = left_over()

    def refuse(sql):
        raise RuntimeError("Code: 60. DB::Exception: Unknown table. (UNKNOWN_TABLE)")

    for framing in ("plain", "zstd") * 50:
        with pytest.raises(RuntimeError):
            infile_insert(refuse, "INSERT INTO t", "TSV", [b"1\n" * 100_000], framing=framing)
    assert threading.active_count() == threads
    assert left_over() == before


def test_an_engine_that_stops_reading_early_ends_the_writer():
    def read_a_little(sql):
        with open(_fifo_of(sql), "rb") as pipe:
            pipe.read(10)
        raise RuntimeError("Code: 27. DB::Exception: Cannot parse input. (CANNOT_PARSE_INPUT_ASSERTION_FAILED)")

    with pytest.raises(RuntimeError):
        infile_insert(read_a_little, "INSERT INTO t", "TSV", [b"x" * (8 << 20)] * 4)


def test_batches_of_tab_separated_rows_respect_bytes_and_rows():
    rows = [b"%d\tabc\n" % i for i in range(1000)]
    batches = statement_batches([b"".join(rows[:600]), b"".join(rows[600:])], "TabSeparated",
                                max_bytes=2000, max_rows=150)
    assert b"".join(b"".join(batch) for batch in batches) == b"".join(rows)
    for batch in batches:
        data = b"".join(batch)
        assert data.endswith(b"\n") and len(data) <= 2000 and data.count(b"\n") <= 150
    assert statement_batches([b"".join(rows)], "TabSeparated", 2000, 150) == \
        statement_batches([b"".join(rows)], "TabSeparated", 2000, 150)  # deterministic: retries dedupe


def test_batches_keep_a_long_row_whole_and_other_formats_as_one():
    long_row = b"1\t" + b"x" * 100 + b"\n"
    assert statement_batches([b"a\n", long_row, b"b\n"], "TSV", max_bytes=50, max_rows=10) == \
        [[b"a\n"], [long_row], [b"b\n"]]
    assert statement_batches([b'{"a":1}\n' * 100, b'{"a":2}\n'], "JSONEachRow", max_bytes=10, max_rows=1) == \
        [[b'{"a":1}\n' * 100, b'{"a":2}\n']]
    assert statement_batches([b"", memoryview(b"")], "TSV") == []
    assert statement_batches([bytearray(b"1\n"), memoryview(b"2\n")], "TSV") == [[b"1\n", b"2\n"]]


def test_insert_settings_move_after_from_infile():
    assert split_insert_settings("INSERT INTO db.t (a, b)") == ("INSERT INTO db.t (a, b)", "")
    assert split_insert_settings("INSERT INTO db.t (a) SETTINGS async_insert = 0, x = 'y z'") == \
        ("INSERT INTO db.t (a)", "async_insert = 0, x = 'y z'")
    assert split_insert_settings("INSERT INTO t (settings, b)") == ("INSERT INTO t (settings, b)", "")
