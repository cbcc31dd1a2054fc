"""Lines as TabSeparated rows of ``_ingest`` (source, source_offset, line).

Python does not parse lines: it only escapes them so that ClickHouse reads each
one back byte for byte into the ``line`` column, where the materialized views
classify and parse it (``cairn/schema/migrations/0001_ingest.sql``).

TabSeparated escaping of a line: backslash, tab and carriage return are escaped.
A newline never occurs inside a line (it ends the row), so a whole chunk is
escaped in one pass and then split at its newlines.
"""

from __future__ import annotations

from itertools import accumulate
from typing import Iterable

from cairn.ingest.chunks import Chunk, ExplicitChunk

INGEST_COLUMNS = ("source", "source_offset", "line")


def tsv_escape(data: bytes) -> bytes:
    """``data`` with backslash, tab and carriage return escaped for TabSeparated (newlines kept)."""
    return data.replace(b"\\", b"\\\\").replace(b"\t", b"\\t").replace(b"\r", b"\\r")


def encode_rows(source: str, offsets: Iterable[int], escaped_lines: Iterable[bytes]) -> bytes:
    """TabSeparated ``_ingest`` rows (source, source_offset, line) from already escaped lines."""
    prefix = tsv_escape(source.encode()).replace(b"\n", b"\\n") + b"\t"
    return b"".join([b"%s%d\t%s\n" % (prefix, offset, line) for offset, line in zip(offsets, escaped_lines)])


def encode_lines(source: str, start: int, data: bytes) -> bytes:
    """``data`` (whole lines) as TabSeparated rows of (source, source_offset, line)."""
    lines = data.split(b"\n")[:-1]
    escaped = tsv_escape(data).split(b"\n")[:-1]  # escaping keeps line breaks: escape once, in bulk
    return encode_rows(source, accumulate((len(line) + 1 for line in lines), initial=start), escaped)


def encode_chunk_pieces(source: str, chunk: Chunk, piece_bytes: int = 1 << 20) -> list[bytes]:
    """``encode_chunk`` in pieces of about ``piece_bytes`` (whole rows each), for big backfill chunks.

    Encoding a 32 MiB chunk in one go holds several full-size copies at once (escaped
    text, its lines, the rows); piece by piece only the rows themselves add up.
    """
    if isinstance(chunk, ExplicitChunk) or len(chunk.data) <= piece_bytes:
        return [encode_chunk(source, chunk)]
    data, pieces, position = chunk.data, [], 0
    while position < len(data):
        end = data.find(b"\n", min(position + piece_bytes, len(data)) - 1) + 1 or len(data)
        pieces.append(encode_lines(source, chunk.start + position, data[position:end]))
        position = end
    return pieces


def encode_chunk(source: str, chunk: Chunk) -> bytes:
    """A chunk as TabSeparated ``_ingest`` rows."""
    if isinstance(chunk, ExplicitChunk):
        return encode_rows(source, chunk.offsets, (tsv_escape(line) for line in chunk.cut_lines))
    return encode_lines(source, chunk.start, chunk.data)


def encode_events(source: str, events: list[bytes]) -> bytes:
    """Events of a JSON document as ``_ingest`` rows; an event's offset is its ordinal number."""
    return encode_rows(source, range(len(events)), (tsv_escape(event) for event in events))
