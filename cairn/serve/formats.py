"""Which output formats `cairn serve` may stream, and how chDB's chunks become one document.

chDB formats each streamed chunk as a complete document (header, rows, footer), and
no setting changes that (issue 12, finding 2). So, one table decides per format:

* ``PASS``: row formats whose documents simply concatenate (TSV, CSV, JSONEachRow,
  RowBinary, Native...): streamed as they come;
* ``LINES``/``CSV_HEAD``/``BINARY_HEAD``: the same with a header (``*WithNames``,
  ``*WithNamesAndTypes``): streamed, the repeated header cut from chunks 2..n;
* ``VALUES``: streamed, with the ``,`` between rows put back between chunks;
* anything else (JSON, XML, Parquet, Arrow, ORC, Avro, Pretty*, Markdown, Vertical,
  formats not listed): run whole with chDB's ``query()``, under ``serve.max_result_bytes``.

A query with totals or extremes runs whole whatever its format: chDB's stream drops them.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Iterable, Iterator

# How a format's chunks are joined into one document.
PASS, LINES, CSV_HEAD, BINARY_HEAD, VALUES, WHOLE = "pass", "lines", "csv", "binary", "values", "whole"

# lower-case format name -> (how, header rows). Not listed: WHOLE.
STREAMING: dict[str, tuple[str, int]] = {
    **{name: (PASS, 0) for name in (
        "tabseparated", "tsv", "tabseparatedraw", "tsvraw", "raw", "csv", "jsoneachrow", "jsonlines", "ndjson",
        "jsoncompacteachrow", "jsonstringseachrow", "jsoncompactstringseachrow", "rowbinary", "native", "tskv",
        "customseparated", "lineasstring", "rawblob", "null")},
    # Lines formats escape newlines inside values: the header is whole lines.
    **{name: (LINES, 1) for name in (
        "tabseparatedwithnames", "tsvwithnames", "tabseparatedrawwithnames", "tsvrawwithnames", "rawwithnames",
        "jsoncompacteachrowwithnames", "jsoncompactstringseachrowwithnames")},
    **{name: (LINES, 2) for name in (
        "tabseparatedwithnamesandtypes", "tsvwithnamesandtypes", "tabseparatedrawwithnamesandtypes",
        "tsvrawwithnamesandtypes", "rawwithnamesandtypes", "jsoncompacteachrowwithnamesandtypes",
        "jsoncompactstringseachrowwithnamesandtypes")},
    "csvwithnames": (CSV_HEAD, 1),
    "csvwithnamesandtypes": (CSV_HEAD, 2),
    "rowbinarywithnames": (BINARY_HEAD, 1),
    "rowbinarywithnamesandtypes": (BINARY_HEAD, 2),
    "values": (VALUES, 0),
}


# chDB's streams drop the totals and extremes rows, and CustomSeparated's result
# delimiters would repeat per chunk: such queries run whole. A false positive (the
# word in a string) only costs a run whole.
_NOT_STREAMED = re.compile(r"\bWITH\s+TOTALS\b|\bextremes\b|\bformat_custom_result_", re.I)
_TRUE = {"1", "true", "yes", "on"}


def joining(fmt: str) -> str:
    """How the chunks of a result in ``fmt`` are joined (``WHOLE``: not streamed)."""
    return STREAMING.get(fmt.lower(), (WHOLE, 0))[0]


def streams(fmt: str, sql: str, settings: dict[str, str] | None = None) -> bool:
    """Whether a SELECT in output format ``fmt`` may stream as one valid document."""
    if joining(fmt) == WHOLE:
        return False
    settings = settings or {}
    if settings.get("extremes", "0").strip().lower() in _TRUE:
        return False
    if any(name.startswith("format_custom_result_") for name in settings):
        return False
    return not _NOT_STREAMED.search(sql)


def normalise(chunks: Iterable[bytes], fmt: str) -> Iterator[bytes]:
    """The bytes of one document out of chDB's per-chunk documents (``fmt`` must stream)."""
    how, rows = STREAMING[fmt.lower()]
    cut: Callable[[bytes], int] | None = {
        LINES: lambda data: _lines_len(data, rows),
        CSV_HEAD: lambda data: _csv_len(data, rows),
        BINARY_HEAD: lambda data: _rowbinary_len(data, rows),
    }.get(how)
    first = True
    for data in chunks:
        if not data:
            continue
        if not first:
            if cut is not None:
                data = data[cut(data):]
            elif how == VALUES:
                data = b"," + data
        first = False
        if data:
            yield data


class DocumentStream:
    """A raw chDB stream seen as one document of its format (counters passed through)."""

    def __init__(self, stream: Any, fmt: str):
        self.stream = stream
        self.fmt = fmt

    @property
    def rows_read(self) -> int:
        """Rows read from storage so far."""
        return self.stream.rows_read

    @property
    def bytes_read(self) -> int:
        """Bytes read from storage so far."""
        return self.stream.bytes_read

    @property
    def result_rows(self) -> int:
        """Rows of the result so far."""
        return getattr(self.stream, "result_rows", 0)

    def __iter__(self) -> Iterator[bytes]:
        return normalise(self.stream, self.fmt)


def _lines_len(data: bytes, lines: int) -> int:
    """Length of the first ``lines`` lines (TSV and JSON escape newlines in values)."""
    pos = 0
    for _ in range(lines):
        pos = data.index(b"\n", pos) + 1
    return pos


def _csv_len(data: bytes, lines: int) -> int:
    """Length of the first ``lines`` CSV records (a quoted field may hold a newline)."""
    pos, quoted = 0, False
    while lines:
        byte = data[pos]
        if byte == 0x22:
            quoted = not quoted  # a doubled quote inside quotes toggles twice
        elif byte == 0x0A and not quoted:
            lines -= 1
        pos += 1
    return pos


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def _rowbinary_len(data: bytes, rows: int) -> int:
    """Length of a RowBinaryWithNames(AndTypes) header: column count, then names (and types)."""
    columns, pos = _varint(data, 0)
    for _ in range(columns * rows):
        size, pos = _varint(data, pos)
        pos += size
    return pos
