"""Load tracking-log files into the datalake.

Python only moves bytes: it cuts files into chunks of whole lines and streams them
into ``_ingest``, where ClickHouse classifies and parses every line (see
``migrations/0001_ingest.sql``). Each chunk is inserted with a deduplication token
derived from the file's identity and the chunk's byte range, and a checkpoint is
written after it, so an interrupted load resumes where it stopped and a retried
chunk is never counted twice.

Accepted inputs: bare JSON lines, lines with the logging prefix Tutor writes
(``... [tracking] [user 6] [ip 172.18.0.1] logger.py:41 - {json}``), console
captures mixing other loggers, gzip-compressed files, and JSON documents holding
one event, a list of events or an object of events (event-routing-backends
fixtures; both the on-disk and the in-process shape).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from itertools import accumulate
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Callable, Iterator

from cairn.errors import CairnError

if TYPE_CHECKING:  # pragma: no cover
    from cairn.engine import Engine

FINGERPRINT_BYTES = 4096
MAX_DOCUMENT_BYTES = 256 * 1024 * 1024
INGEST_COLUMNS = ("source", "source_offset", "line")

ProgressCallback = Callable[[int], None]


@dataclass
class Chunk:
    """Whole lines ``data`` read from bytes ``start``..``end`` of a file."""

    start: int
    end: int
    data: bytes


@dataclass
class LoadResult:
    """What loading one file did."""

    source: str
    bytes_loaded: int = 0
    chunks: int = 0
    already_loaded: bool = False
    counts: dict[str, int] = field(default_factory=dict)  # status -> lines, cumulative for the source


def open_log(path: Path) -> BinaryIO:
    """Open a log file, decompressing gzip transparently (by magic number, not name)."""
    handle = open(path, "rb")
    magic = handle.read(2)
    handle.seek(0)
    if magic == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=handle, mode="rb")  # type: ignore[return-value]
    return handle


def fingerprint(path: Path) -> str | None:
    """Identity of a log file's content: a hash of its first line (None when empty).

    The first line of a log never changes once written, and survives renames and
    compression, so a rotated ``tracking.log.1.gz`` is recognised as the file that
    was ``tracking.log``.
    """
    with open_log(path) as handle:
        head = handle.read(FINGERPRINT_BYTES)
    if not head:
        return None
    newline = head.find(b"\n")
    first = head if newline == -1 else head[:newline + 1]
    return hashlib.sha256(first).hexdigest()[:32]


def iter_chunks(handle: BinaryIO, start: int, batch_bytes: int, final: bool = True) -> Iterator[Chunk]:
    """Chunks of whole lines from ``start``.

    Boundaries depend only on the content and ``start``, so a retried chunk covers
    the same bytes. With ``final`` the last line counts even without a newline
    (a finished file); without it, a partial last line is left for later.
    """
    handle.seek(start)
    position = start
    pending = b""
    while True:
        block = handle.read(batch_bytes)
        if not block:
            break
        buffer = pending + block
        cut = buffer.rfind(b"\n")
        if cut == -1:
            pending = buffer
            continue
        data, pending = buffer[:cut + 1], buffer[cut + 1:]
        yield Chunk(position, position + len(data), data)
        position += len(data)
    if pending and final:
        yield Chunk(position, position + len(pending), pending + b"\n")


def _tsv_escape(data: bytes) -> bytes:
    return data.replace(b"\\", b"\\\\").replace(b"\t", b"\\t").replace(b"\r", b"\\r")


def encode_lines(source: str, start: int, data: bytes) -> bytes:
    """``data`` (whole lines) as TabSeparated rows of (source, source_offset, line)."""
    lines = data.split(b"\n")[:-1]
    escaped = _tsv_escape(data).split(b"\n")[:-1]
    prefix = _tsv_escape(source.encode()).replace(b"\n", b"\\n") + b"\t"
    offsets = accumulate((len(line) + 1 for line in lines), initial=start)
    return b"".join([b"%s%d\t%s\n" % (prefix, offset, line) for offset, line in zip(offsets, escaped)])


def _document_events(path: Path) -> list[bytes] | None:
    """Events of a file that is one JSON document (not JSON lines), else None."""
    with open_log(path) as handle:
        head = handle.read(FINGERPRINT_BYTES)
        stripped = head.lstrip()
        if not stripped.startswith((b"{", b"[")):
            return None
        first_line = stripped.split(b"\n", 1)[0].strip()
        try:
            json.loads(first_line)
            return None  # the first line is a whole JSON value: JSON lines
        except ValueError:
            pass
        if os.path.getsize(path) > MAX_DOCUMENT_BYTES:
            return None
        rest = head + handle.read()
    try:
        document = json.loads(rest)
    except ValueError:
        return None  # not a document after all: load it line by line (bad lines are quarantined)
    if isinstance(document, dict) and ("name" in document or "event_type" in document):
        events = [document]
    elif isinstance(document, dict) and document and all(isinstance(v, dict) for v in document.values()):
        events = list(document.values())
    elif isinstance(document, list):
        events = document
    else:
        return None
    return [json.dumps(event, separators=(", ", ": ")).encode() for event in events]


class Checkpoints:
    """Per-file load positions, stored in ``_checkpoints`` next to the data."""

    def __init__(self, engine: "Engine"):
        self.engine = engine
        self.table = f"`{engine.database}`._checkpoints"

    def get(self, fp: str) -> int:
        value = self.engine.query_value(
            f"SELECT argMax(offset, updated_at) FROM {self.table} WHERE fingerprint = {{fp:String}}",
            {"fp": fp})
        return int(value or 0)

    def set(self, fp: str, source: str, offset: int, size: int) -> None:
        self.engine.insert(self.table, [[fp, source, offset, size, datetime.now(timezone.utc)]],
                           ["fingerprint", "source", "offset", "size", "updated_at"])


class Loader:
    """Loads tracking-log files into ``<database>._ingest``, resumably and without duplicates."""

    def __init__(self, engine: "Engine", batch_bytes: int = 4 * 1024 * 1024):
        self.engine = engine
        self.batch_bytes = batch_bytes
        self.checkpoints = Checkpoints(engine)
        self.ingest_table = f"`{engine.database}`._ingest"

    def insert_chunk(self, source: str, chunk: Chunk, token: str) -> None:
        """Insert whole lines; the same token twice stores them once."""
        self.engine.insert_raw(
            self.ingest_table, encode_lines(source, chunk.start, chunk.data), "TabSeparated",
            column_names=INGEST_COLUMNS, settings={"insert_deduplication_token": token})

    def load_file(self, path: str | os.PathLike, progress: ProgressCallback | None = None) -> LoadResult:
        """Load one file from its checkpoint to its end."""
        path = Path(path)
        if not path.exists():
            raise CairnError(f"{path}: no such file")
        if path.is_dir():
            raise CairnError(f"{path} is a folder; give the log files inside it")
        source = str(path.resolve())
        result = LoadResult(source)
        try:
            fp = fingerprint(path)
            if fp is None:
                return result
            documents = _document_events(path)
            if documents is not None:
                self._load_document(path, source, documents, result, progress)
            else:
                self._load_lines(path, source, fp, result, progress)
        except (OSError, EOFError, gzip.BadGzipFile) as exc:
            raise CairnError(f"{path}: cannot read: {exc}") from None
        result.counts = self.counts(source)
        return result

    def _load_lines(self, path: Path, source: str, fp: str, result: LoadResult,
                    progress: ProgressCallback | None) -> None:
        with open_log(path) as handle:
            size = handle.seek(0, io.SEEK_END)
            start = self.checkpoints.get(fp)
            if start >= size:
                # Everything up to `size` of this content was loaded already (maybe
                # from another path): nothing to add.
                result.already_loaded = start > 0
                if progress:
                    progress(size)
                return
            if progress and start:
                progress(start)
            for chunk in iter_chunks(handle, start, self.batch_bytes, final=True):
                self.insert_chunk(source, chunk, f"{fp}:{chunk.start}:{chunk.end}")
                self.checkpoints.set(fp, source, min(chunk.end, size), size)
                result.bytes_loaded += chunk.end - chunk.start
                result.chunks += 1
                if progress:
                    progress(chunk.end - chunk.start)

    def _load_document(self, path: Path, source: str, events: list[bytes], result: LoadResult,
                       progress: ProgressCallback | None) -> None:
        content = path.read_bytes()
        fp = "doc-" + hashlib.sha256(content).hexdigest()[:28]
        if self.checkpoints.get(fp) >= len(events):
            result.already_loaded = True
        else:
            # Offsets of events in a document are their ordinal numbers.
            rows = b"".join(b"%s\t%d\t%s\n" % (_tsv_escape(source.encode()), i, _tsv_escape(event))
                            for i, event in enumerate(events))
            self.engine.insert_raw(self.ingest_table, rows, "TabSeparated", column_names=INGEST_COLUMNS,
                                   settings={"insert_deduplication_token": f"{fp}:all"})
            self.checkpoints.set(fp, source, len(events), len(events))
            result.bytes_loaded = len(content)
            result.chunks = 1
        if progress:
            progress(os.path.getsize(path))

    def counts(self, source: str) -> dict[str, int]:
        """Lines seen for a source so far, by outcome (event, skipped, quarantined)."""
        rows = self.engine.query_rows(
            f"SELECT status, sum(lines) FROM `{self.engine.database}`._ingest_stats "
            "WHERE source = {source:String} GROUP BY status", {"source": source})
        return {status: int(lines) for status, lines in rows}


def file_size(path: str | os.PathLike) -> int:
    """Size on disk (compressed size for gzip files), for progress bars."""
    return os.path.getsize(path)
