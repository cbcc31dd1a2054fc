"""Chunks of ``_ingest_chunks`` and TabSeparated rows of ``_ingest`` (cairn/ingest/encoding.py), without an engine.

The chunks are decoded here as migration 0065's ``_ingest_split`` does (cut at newlines,
offsets from the line lengths): both shapes must give the same (source, offset, line)
rows. The view itself is checked against this on the engine in
tests/integration/test_events.py.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import struct

from cairn.ingest.chunks import Chunk, cut_long_lines
from cairn.ingest.encoding import (CHUNKS, MAX_CHUNK_LINES, ROWS, Encoded, encode_chunk, encode_events, encode_lines,
                                   encode_range, encode_rows, tsv_escape)


def _unescape(field: bytes) -> bytes:
    """TabSeparated unescaping, as ClickHouse reads a String field."""
    out, i = bytearray(), 0
    table = {ord("t"): b"\t", ord("n"): b"\n", ord("r"): b"\r", ord("\\"): b"\\"}
    while i < len(field):
        if field[i] == ord("\\"):
            out += table[field[i + 1]]
            i += 2
        else:
            out.append(field[i])
            i += 1
    return bytes(out)


def _varint(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[at]
        value |= (byte & 0x7F) << shift
        at += 1
        if byte < 0x80:
            return value, at
        shift += 7


def _split_chunks(data: bytes) -> list[tuple[str, int, bytes]]:
    """RowBinary (source, start, data) rows, cut into lines as ``_ingest_split`` does."""
    rows, at = [], 0
    while at < len(data):
        size, at = _varint(data, at)
        source, at = data[at:at + size].decode(), at + size
        (start,), at = struct.unpack_from("<Q", data, at), at + 8
        size, at = _varint(data, at)
        lines, at = data[at:at + size].split(b"\n")[:-1], at + size
        for line in lines:
            rows.append((source, start, line))
            start += len(line) + 1
    return rows


def _parse(encoded: Encoded | bytes) -> list[tuple[str, int, bytes]]:
    """The (source, offset, line) rows an encoding gives ``_ingest``."""
    if isinstance(encoded, Encoded) and encoded.table == "_ingest_chunks":
        assert encoded.fmt == "RowBinary"
        return _split_chunks(b"".join(encoded.pieces))
    rows = b"".join(encoded.pieces) if isinstance(encoded, Encoded) else encoded
    parsed = []
    for row in rows.split(b"\n")[:-1]:
        source, offset, line = row.split(b"\t")
        parsed.append((_unescape(source).decode(), int(offset), _unescape(line)))
    return parsed


def test_escapes_backslash_tab_and_carriage_return():
    assert tsv_escape(b"a\\b\tc\rd") == b"a\\\\b\\tc\\rd"
    assert tsv_escape(b"keep\nnewline") == b"keep\nnewline"


def test_lines_get_their_byte_offsets():
    rows = encode_lines("/logs/t.log", 1000, b"one\n\ntab\there\n")
    assert rows == b"/logs/t.log\t1000\tone\n/logs/t.log\t1004\t\n/logs/t.log\t1005\ttab\\there\n"


def test_source_with_special_characters_is_escaped():
    rows = encode_rows("a\tb\nc\\", [7], [b"x"])
    assert rows == b"a\\tb\\nc\\\\\t7\tx\n"
    assert _parse(rows) == [("a\tb\nc\\", 7, b"x")]


@pytest.mark.parametrize("encoding", [CHUNKS, ROWS])
def test_explicit_chunk_rows_keep_original_offsets_of_cut_lines(encoding):
    data = b"ab\n" + b"L" * 20 + b"\ncd\n"
    chunk = cut_long_lines(Chunk(10, 10 + len(data), data), max_line=5)
    assert _parse(encode_chunk("s", chunk, encoding)) == [("s", 10, b"ab"), ("s", 13, b"LLLLL"), ("s", 34, b"cd")]


def test_a_chunk_is_sent_as_its_bytes_without_a_copy():
    data = b'one\n{"a": "tab\there\\"}\r\n'
    encoded = encode_chunk("/logs/t.log", Chunk(1000, 1000 + len(data), data))
    assert (encoded.table, encoded.fmt, encoded.columns) == ("_ingest_chunks", "RowBinary", ("source", "start", "data"))
    assert encoded.pieces[1] is data  # the file's bytes themselves, unescaped
    assert _parse(encoded) == [("/logs/t.log", 1000, b"one"), ("/logs/t.log", 1004, b'{"a": "tab\there\\"}\r')]


def test_a_range_of_too_many_lines_goes_as_rows():
    data = b"\n" * (MAX_CHUNK_LINES + 1)
    assert encode_chunk("s", Chunk(0, len(data), data)).table == "_ingest"
    assert encode_chunk("s", Chunk(0, len(data) - 1, data[:-1])).table == "_ingest_chunks"
    halves = [Chunk(0, 4, b"a\nb\n"), Chunk(4, 6, b"c\n")]
    assert encode_range("s", halves) == Encoded(
        "_ingest_chunks", "RowBinary", ("source", "start", "data"),
        [*encode_chunk("s", halves[0]).pieces, *encode_chunk("s", halves[1]).pieces])


def test_document_events_are_numbered():
    assert _parse(encode_events("doc.json", [b'{"a": 1}', b'{"b":\t2}'])) == [
        ("doc.json", 0, b'{"a": 1}'), ("doc.json", 1, b'{"b":\t2}')]


@settings(max_examples=200, deadline=None)
@given(lines=st.lists(st.binary(max_size=30).map(lambda b: b.replace(b"\n", b"")), min_size=1, max_size=20),
       start=st.integers(0, 2**40), source=st.text(max_size=10))
def test_rows_and_chunks_read_back_to_the_same_lines_and_offsets(lines, start, source):
    data = b"".join(line + b"\n" for line in lines)
    offsets, position = [], start
    for line in lines:
        offsets.append(position)
        position += len(line) + 1
    expected = [(source, offset, line) for offset, line in zip(offsets, lines)]
    for encoding in (ROWS, CHUNKS):
        assert _parse(encode_chunk(source, Chunk(start, start + len(data), data), encoding)) == expected
        cut = cut_long_lines(Chunk(start, start + len(data), data), max_line=10)
        assert _parse(encode_chunk(source, cut, encoding)) == [(s, o, line[:10]) for s, o, line in expected]
