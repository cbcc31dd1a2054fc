"""How lines travel to the engine: chunks (``_ingest_chunks``) or rows (``_ingest``).

Python does not parse lines. It sends them in one of two shapes, and the
materialized views classify and parse every line in ClickHouse
(``cairn/schema/migrations/0060_ingest_parse_once.sql``):

* **chunks** (the usual way): each chunk of whole lines is one RowBinary row
  ``(source, start, data)`` of ``_ingest_chunks`` holding the file's bytes as they
  are; ``_ingest_split`` (migration 0065) cuts it into lines with their offsets.
  Python adds a few bytes of header per chunk and copies nothing.
* **rows**: one TabSeparated row ``(source, source_offset, line)`` of ``_ingest`` per
  line, escaped. Used for events of JSON documents, for a range holding more lines
  than one insert block should (``MAX_CHUNK_LINES``), and for the replay of a range
  whose intent was written before chunks existed (it must travel the same chain of
  views as its first attempt for deduplication to recognise it).

TabSeparated escaping of a line: backslash, tab and carriage return are escaped.
A newline never occurs inside a line (it ends the row), so a whole chunk is
escaped in one pass and then split at its newlines.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from itertools import accumulate
from typing import Iterable, Sequence

from cairn.ingest.chunks import Chunk, ExplicitChunk

INGEST_COLUMNS = ("source", "source_offset", "line")
CHUNK_COLUMNS = ("source", "start", "data")

CHUNKS = "chunks"  # `pending_encoding` of an intent whose range goes as chunks when it can
ROWS = ""  # ... and of intents written before migration 0065: always rows

# A range with more lines than this goes as rows, which the engine splits into
# statements of at most a million rows each (one insert block, all or nothing).
MAX_CHUNK_LINES = 1_000_000


@dataclass(frozen=True)
class Encoded:
    """The data of one insert: ``pieces`` of bytes in ``fmt`` for ``table`` (in the datalake's database)."""

    table: str
    fmt: str
    columns: tuple[str, ...]
    pieces: list[bytes]


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


def _row_pieces(source: str, chunk: Chunk, piece_bytes: int = 1 << 20) -> list[bytes]:
    """A chunk as TabSeparated ``_ingest`` rows, in pieces of about ``piece_bytes`` (whole rows each).

    Encoding a 32 MiB chunk in one go holds several full-size copies at once (escaped
    text, its lines, the rows); piece by piece only the rows themselves add up.
    """
    if isinstance(chunk, ExplicitChunk):
        return [encode_rows(source, chunk.offsets, (tsv_escape(line) for line in chunk.cut_lines))]
    data, pieces, position = chunk.data, [], 0
    while position < len(data):
        end = data.find(b"\n", min(position + piece_bytes, len(data)) - 1) + 1 or len(data)
        pieces.append(encode_lines(source, chunk.start + position, data[position:end]))
        position = end
    return pieces


def _varint(n: int) -> bytes:
    """ClickHouse's unsigned LEB128 length prefix."""
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _chunk_row(source: bytes, start: int, data: bytes) -> list[bytes]:
    """One RowBinary row of ``_ingest_chunks``: a small header, then ``data`` itself (not copied)."""
    return [_varint(len(source)) + source + struct.pack("<Q", start) + _varint(len(data)), data]


def _chunk_pieces(source: str, chunk: Chunk) -> list[bytes]:
    """A chunk as ``_ingest_chunks`` rows: one for its bytes, or one per line when lines were cut."""
    name = source.encode()
    if isinstance(chunk, ExplicitChunk):  # cut lines shift the ones after them: each line its own offset
        return [piece for offset, line in zip(chunk.offsets, chunk.cut_lines)
                for piece in _chunk_row(name, offset, line + b"\n")]
    return _chunk_row(name, chunk.start, chunk.data)


def encode_range(source: str, chunks: Sequence[Chunk], encoding: str = CHUNKS) -> Encoded:
    """The chunks of one range (one insert, one deduplication token).

    With ``encoding`` CHUNKS they go as chunks unless the range holds more than
    MAX_CHUNK_LINES lines; with ROWS (an intent older than chunks) always as rows.
    The choice depends only on the range's bytes, so a replay sends it the same way.
    """
    if encoding == CHUNKS and sum(chunk.lines for chunk in chunks) <= MAX_CHUNK_LINES:
        return Encoded("_ingest_chunks", "RowBinary", CHUNK_COLUMNS,
                       [piece for chunk in chunks for piece in _chunk_pieces(source, chunk)])
    return Encoded("_ingest", "TabSeparated", INGEST_COLUMNS,
                   [piece for chunk in chunks for piece in _row_pieces(source, chunk)])


def encode_chunk(source: str, chunk: Chunk, encoding: str = CHUNKS) -> Encoded:
    """One chunk, as :func:`encode_range` sends it."""
    return encode_range(source, [chunk], encoding)


def encode_events(source: str, events: list[bytes]) -> Encoded:
    """Events of a JSON document as ``_ingest`` rows; an event's offset is its ordinal number."""
    rows = encode_rows(source, range(len(events)), (tsv_escape(event) for event in events))
    return Encoded("_ingest", "TabSeparated", INGEST_COLUMNS, [rows])
