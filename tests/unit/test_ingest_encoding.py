"""TabSeparated rows of ``_ingest`` (cairn/ingest/encoding.py), without an engine."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from cairn.ingest.chunks import Chunk, cut_long_lines
from cairn.ingest.encoding import encode_chunk, encode_events, encode_lines, encode_rows, tsv_escape


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


def _parse(rows: bytes) -> list[tuple[str, int, bytes]]:
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


def test_explicit_chunk_rows_keep_original_offsets_of_cut_lines():
    data = b"ab\n" + b"L" * 20 + b"\ncd\n"
    chunk = cut_long_lines(Chunk(10, 10 + len(data), data), max_line=5)
    assert _parse(encode_chunk("s", chunk)) == [("s", 10, b"ab"), ("s", 13, b"LLLLL"), ("s", 34, b"cd")]


def test_document_events_are_numbered():
    assert _parse(encode_events("doc.json", [b'{"a": 1}', b'{"b":\t2}'])) == [
        ("doc.json", 0, b'{"a": 1}'), ("doc.json", 1, b'{"b":\t2}')]


@settings(max_examples=200, deadline=None)
@given(lines=st.lists(st.binary(max_size=30).map(lambda b: b.replace(b"\n", b"")), min_size=1, max_size=20),
       start=st.integers(0, 2**40), source=st.text(max_size=10))
def test_rows_read_back_to_the_same_lines_and_offsets(lines, start, source):
    data = b"".join(line + b"\n" for line in lines)
    parsed = _parse(encode_chunk(source, Chunk(start, start + len(data), data)))
    offsets, position = [], start
    for line in lines:
        offsets.append(position)
        position += len(line) + 1
    assert parsed == [(source, offset, line) for offset, line in zip(offsets, lines)]
