"""Load tracking-log files into the datalake, exactly once.

Python only moves bytes: it cuts files into chunks of whole lines and streams them
into ``_ingest``, where ClickHouse classifies and parses every line (see
``migrations/0001_ingest.sql``).

Exactly-once protocol (see docs/collector.md). A file is a *stream* named by
its fingerprint (hash of its first line). Its checkpoint row in ``_checkpoints`` says
``offset`` (every byte before it is in the datalake) and ``pending_end`` (the range
``offset..pending_end`` may or may not be). Per chunk:

1. write the intent row ``(offset=S, pending_end=E)``;
2. insert lines ``S..E`` with ``insert_deduplication_token = "{fp}:{S}:{E}"``;
3. the next chunk's intent ``(offset=E, pending_end=E2)`` commits this one (an idle
   stream writes ``(offset=E, pending_end=E)``).

After a crash the reader first replays exactly ``S..E`` with the same token: if the
first attempt landed (in any of the tables the views fill), ClickHouse drops the
replay there; if not, it lands now. Chunk boundaries therefore never depend on how
far a growing file had been written when the reader restarted.

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
import queue
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from itertools import accumulate, chain
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Callable, Iterable, Iterator

from cairn.errors import CairnError

if TYPE_CHECKING:  # pragma: no cover
    from cairn.engine import Engine

FINGERPRINT_BYTES = 4096
MAX_DOCUMENT_BYTES = 256 * 1024 * 1024
# Lines longer than this are cut to this many bytes before they are sent (the
# classifier quarantines anything over 1 MiB anyway): memory stays bounded whatever
# a file holds, and the quarantine keeps the first MAX_LINE_BYTES of the raw line.
MAX_LINE_BYTES = 4 * 1024 * 1024
INGEST_COLUMNS = ("source", "source_offset", "line")

ProgressCallback = Callable[[int], None]


@dataclass
class Chunk:
    """Whole lines ``data`` read from bytes ``start``..``end`` of a file.

    ``data`` always ends with a newline. It differs from the file bytes only when a
    line was longer than MAX_LINE_BYTES (then the chunk is that one line, cut) or
    when the last line of a finished file had no newline (one is added).
    """

    start: int
    end: int
    data: bytes
    count: int = -1  # lines, when `data` was dropped after encoding

    @property
    def lines(self) -> int:
        return self.count if self.count >= 0 else self.data.count(b"\n")


@dataclass
class LoadResult:
    """What loading one file did."""

    source: str
    bytes_loaded: int = 0
    chunks: int = 0
    already_loaded: bool = False
    counts: dict[str, int] = field(default_factory=dict)  # status -> lines, cumulative for the source
    lines_sent: int = 0


def open_log(path: Path | str) -> BinaryIO:
    """Open a log file, decompressing gzip transparently (by magic number, not name)."""
    handle = open(path, "rb")
    magic = handle.read(2)
    handle.seek(0)
    if magic == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=handle, mode="rb")  # type: ignore[return-value]
    return handle


def is_gzip(path: Path | str) -> bool:
    """True when the file starts with the gzip magic number."""
    with open(path, "rb") as handle:
        return handle.read(2) == b"\x1f\x8b"


def fingerprint_of_head(head: bytes, complete: bool = True) -> str | None:
    """Fingerprint from the first bytes of a file (see ``fingerprint``).

    With ``complete=False`` (a file still being written) a first line that has not
    reached its newline, and is shorter than FINGERPRINT_BYTES, gives None: hashing
    it now would give a different identity once it is finished.
    """
    head = head[:FINGERPRINT_BYTES]
    if not head:
        return None
    newline = head.find(b"\n")
    if newline == -1 and not complete and len(head) < FINGERPRINT_BYTES:
        return None
    first = head if newline == -1 else head[:newline + 1]
    return hashlib.sha256(first).hexdigest()[:32]


def fingerprint(path: Path | str, complete: bool = True) -> str | None:
    """Identity of a log file's content: a hash of its first line (None when empty).

    The first line of a log never changes once written, and survives renames and
    compression, so a rotated ``tracking.log.1.gz`` is recognised as the file that
    was ``tracking.log``.
    """
    with open_log(path) as handle:
        head = handle.read(FINGERPRINT_BYTES)
    return fingerprint_of_head(head, complete)


class LineChunker:
    """Cuts a byte stream into chunks of whole lines, holding a partial last line back.

    Reads sequentially (gzip streams are never seeked backwards). Memory is bounded
    by ``batch_bytes + MAX_LINE_BYTES`` whatever the lines look like. ``stop`` makes
    the stream end there (used to replay an exact range).
    """

    def __init__(self, handle: BinaryIO, start: int, batch_bytes: int, stop: int | None = None,
                 max_line: int = MAX_LINE_BYTES):
        self.handle = handle
        self.batch_bytes = batch_bytes
        self.max_line = max_line
        self.stop = stop
        self.position = start  # file offset of the first byte not yet returned in a chunk
        self.pending = b""  # bytes read after `position` that do not yet end a line
        self.read_to = start  # file offset up to which bytes were read
        self._long: bytes | None = None  # prefix of an over-long line being skipped
        self._long_seen = 0
        handle.seek(start)

    def _read(self, size: int) -> bytes:
        if self.stop is not None:
            size = min(size, self.stop - self.read_to)
            if size <= 0:
                return b""
        block = self.handle.read(size)
        self.read_to += len(block)
        return block

    def next_chunk(self, final: bool = False) -> Chunk | None:
        """The next chunk, or None when no complete line is available yet.

        With ``final`` the stream is finished: a last line without newline is
        returned too (a newline is added).
        """
        while True:
            if self._long is not None:
                # Inside an over-long line: look for its end without keeping its bytes.
                block = self._read(self.batch_bytes)
                newline = block.find(b"\n")
                if newline != -1:
                    return self._finish_long(self.position + self._long_seen + newline + 1, block[newline + 1:])
                self._long_seen += len(block)
                if block:
                    continue
                if final:
                    return self._finish_long(self.position + self._long_seen, b"")
                return None
            # Enough whole lines already buffered: cut them without reading more.
            full = len(self.pending) >= self.batch_bytes and b"\n" in self.pending
            block = b"" if full else self._read(self.batch_bytes)
            at_end = not block and not full
            buffer = self.pending + block if self.pending else block
            if len(buffer) > self.max_line and buffer.find(b"\n", 0, self.max_line + 1) == -1:
                # The line starting here is over-long: keep its first max_line bytes only.
                self._long, self._long_seen, self.pending = buffer[:self.max_line], len(buffer), b""
                newline = buffer.find(b"\n", self.max_line)
                if newline != -1:
                    self._long_seen = 0
                    return self._finish_long(self.position + newline + 1, buffer[newline + 1:])
                continue
            cut = buffer.rfind(b"\n")
            if cut == -1:
                self.pending = buffer
                if not at_end:
                    continue
                if final and self.pending:
                    data, self.pending = self.pending, b""
                    chunk = Chunk(self.position, self.position + len(data), data + b"\n")
                    self.position = chunk.end
                    return chunk
                return None
            data, self.pending = buffer[:cut + 1], buffer[cut + 1:]
            chunk = Chunk(self.position, self.position + len(data), data)
            self.position = chunk.end
            return _cut_long_lines(chunk, self.max_line) if len(data) > self.max_line else chunk

    def _finish_long(self, end: int, rest: bytes) -> Chunk:
        assert self._long is not None
        chunk = Chunk(self.position, end, self._long + b"\n")
        self.position, self._long, self._long_seen, self.pending = end, None, 0, rest
        return chunk

    @property
    def buffered(self) -> int:
        """Bytes read but not yet returned (partial last line)."""
        return self.read_to - self.position


def _cut_long_lines(chunk: Chunk, max_line: int) -> Chunk:
    """A chunk whose lines are all kept whole unless longer than ``max_line``.

    Long lines inside a multi-line chunk are rare (the chunker isolates most); their
    offsets are kept by encoding the chunk as explicit (offset, line) pairs.
    """
    lines = chunk.data.split(b"\n")[:-1]
    if all(len(line) <= max_line for line in lines):
        return chunk
    return _ExplicitChunk(chunk.start, chunk.end, chunk.data, lines, max_line)


class _ExplicitChunk(Chunk):
    def __init__(self, start: int, end: int, data: bytes, lines: list[bytes], max_line: int):
        super().__init__(start, end, data)
        self.offsets = list(accumulate((len(line) + 1 for line in lines), initial=start))[:-1]
        self.cut_lines = [line[:max_line] for line in lines]


def _tsv_escape(data: bytes) -> bytes:
    return data.replace(b"\\", b"\\\\").replace(b"\t", b"\\t").replace(b"\r", b"\\r")


def _rows(source: str, offsets: Iterable[int], escaped_lines: Iterable[bytes]) -> bytes:
    """TabSeparated ``_ingest`` rows (source, source_offset, line) from already escaped lines."""
    prefix = _tsv_escape(source.encode()).replace(b"\n", b"\\n") + b"\t"
    return b"".join([b"%s%d\t%s\n" % (prefix, offset, line) for offset, line in zip(offsets, escaped_lines)])


def encode_lines(source: str, start: int, data: bytes) -> bytes:
    """``data`` (whole lines) as TabSeparated rows of (source, source_offset, line)."""
    lines = data.split(b"\n")[:-1]
    escaped = _tsv_escape(data).split(b"\n")[:-1]  # escaping keeps line breaks: escape once, in bulk
    return _rows(source, accumulate((len(line) + 1 for line in lines), initial=start), escaped)


def encode_chunk(source: str, chunk: Chunk) -> bytes:
    """A chunk as TabSeparated ``_ingest`` rows."""
    if isinstance(chunk, _ExplicitChunk):
        return _rows(source, chunk.offsets, (_tsv_escape(line) for line in chunk.cut_lines))
    return encode_lines(source, chunk.start, chunk.data)


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


@dataclass
class Checkpoint:
    """Durable position of one stream (file content) in the datalake."""

    fingerprint: str
    offset: int = 0  # every byte before this is in the datalake
    pending_end: int = 0  # bytes offset..pending_end may be (intent written, insert maybe not)
    cuts: list[int] = field(default_factory=list)  # chunk boundaries inside the pending range
    source: str = ""
    size: int = 0
    updated_at: datetime | None = None

    @property
    def has_intent(self) -> bool:
        return self.pending_end > self.offset


class Checkpoints:
    """Per-file load positions, stored in ``_checkpoints`` next to the data.

    Rows are appended, never updated: the latest ``updated_at`` per fingerprint
    wins (ReplacingMergeTree folds old rows away in the background).
    """

    def __init__(self, engine: "Engine"):
        self.engine = engine
        self.table = f"`{engine.database}`._checkpoints"
        self._last_time = 0.0
        self._lock = threading.Lock()

    def get(self, fp: str) -> int:
        """Committed offset of a stream (0 when unknown)."""
        return self.read(fp).offset

    def read(self, fp: str) -> Checkpoint:
        """The latest checkpoint row of a stream."""
        rows = self.engine.query_rows(
            f"SELECT argMax(offset, updated_at), argMax(pending_end, updated_at), argMax(source, updated_at), "
            f"argMax(size, updated_at), max(updated_at), argMax(pending_cuts, updated_at) FROM {self.table} "
            "WHERE fingerprint = {fp:String} HAVING count() > 0", {"fp": fp})
        if not rows:
            return Checkpoint(fp)
        offset, pending_end, source, size, updated_at, cuts = rows[0]
        if updated_at is not None:
            if updated_at.tzinfo is None:
                updated_at = updated_at.replace(tzinfo=timezone.utc)
            self._last_time = max(self._last_time, updated_at.timestamp())
        return Checkpoint(fp, int(offset), int(pending_end), [int(c) for c in cuts], source, int(size),
                          updated_at)

    def all(self) -> list[Checkpoint]:
        """Latest checkpoint of every stream."""
        rows = self.engine.query_rows(
            f"SELECT fingerprint, argMax(offset, updated_at), argMax(pending_end, updated_at), "
            f"argMax(source, updated_at), argMax(size, updated_at), max(updated_at) FROM {self.table} "
            "GROUP BY fingerprint ORDER BY 4")
        return [Checkpoint(fp, int(o), int(p), [], s, int(z), u) for fp, o, p, s, z, u in rows]

    def _now(self) -> datetime:
        # Strictly increasing timestamps, so that argMax never sees a tie between an
        # intent and the row that commits it, even within one microsecond.
        with self._lock:
            now = max(time.time(), self._last_time + 1e-6)
            self._last_time = now
        return datetime.fromtimestamp(now, timezone.utc)

    def write(self, fp: str, source: str, offset: int, pending_end: int, size: int,
              cuts: Iterable[int] = ()) -> None:
        """Append a checkpoint row (durable once this returns)."""
        self.engine.insert(self.table, [[fp, source, offset, max(pending_end, offset), list(cuts), size, self._now()]],
                           ["fingerprint", "source", "offset", "pending_end", "pending_cuts", "size", "updated_at"])

    def set(self, fp: str, source: str, offset: int, size: int) -> None:
        """Commit ``offset`` with no pending range."""
        self.write(fp, source, offset, offset, size)


class Stream:
    """Exactly-once writer of one file content (fingerprint) into ``_ingest``.

    ``open()`` reads the checkpoint and replays an interrupted chunk; ``send(chunk)``
    writes the intent then the data; ``commit()`` records that nothing is pending.
    """

    def __init__(self, loader: "Loader", fp: str, source: str):
        self.loader = loader
        self.fp = fp
        self.source = source
        self.offset = 0  # committed (or sent: see `sent_end`)
        self.sent_end = 0  # end of the last chunk whose insert returned
        self.size = 0
        self.dirty = False  # a chunk was sent since the last checkpoint row that commits it

    def open(self, reader: Callable[[int, int], Iterable[Chunk]] | None = None) -> int:
        """Load the checkpoint; replay a pending range with ``reader(start, end)``. Returns the offset."""
        cp = self.loader.checkpoints.read(self.fp)
        self.offset = self.sent_end = cp.offset
        self.size = cp.size
        if cp.has_intent and reader is not None:
            # Each chunk of the interrupted group again, with its own token.
            bounds = [cp.offset, *[c for c in cp.cuts if cp.offset < c < cp.pending_end], cp.pending_end]
            for start, end in zip(bounds, bounds[1:]):
                encoded = [encode_chunk(self.source, c) for c in reader(start, end)]
                self.loader.insert_encoded(encoded, f"{self.fp}:{start}:{end}")
            self.sent_end = cp.pending_end
            self.dirty = True
            self.commit(max(self.size, cp.pending_end))
        elif cp.has_intent:
            # Nothing to replay from (the content is gone): the range is lost or
            # landed; keep the committed offset so a reappearing copy is replayed.
            self.sent_end = cp.offset
        return self.sent_end

    def send(self, chunk: Chunk, size: int, encoded: bytes | None = None) -> None:
        """Insert one chunk starting at the current position, exactly once."""
        if chunk.start != self.sent_end:
            raise RuntimeError(f"chunk starts at {chunk.start}, stream is at {self.sent_end}")
        self.size = max(size, chunk.end)
        # The intent row commits the previous chunk (offset = its end) and announces this one.
        self.loader.checkpoints.write(self.fp, self.source, chunk.start, chunk.end, self.size)
        self.loader.insert_encoded([encoded if encoded is not None else encode_chunk(self.source, chunk)],
                                   f"{self.fp}:{chunk.start}:{chunk.end}")
        self.offset = chunk.start
        self.sent_end = chunk.end
        self.dirty = True

    def send_group(self, chunks: list[Chunk], encoded: list[bytes], size: int) -> None:
        """Insert consecutive chunks at the same time (one insert each), exactly once.

        One intent row announces the whole range and the boundaries inside it.
        """
        if len(chunks) == 1:
            self.send(chunks[0], size, encoded[0])
            return
        if chunks[0].start != self.sent_end:
            raise RuntimeError(f"chunk starts at {chunks[0].start}, stream is at {self.sent_end}")
        start, end = chunks[0].start, chunks[-1].end
        self.size = max(size, end)
        self.loader.checkpoints.write(self.fp, self.source, start, end, self.size,
                                      cuts=[c.end for c in chunks[:-1]])
        self.loader.insert_parallel([(data, f"{self.fp}:{c.start}:{c.end}") for c, data in zip(chunks, encoded)])
        self.offset, self.sent_end, self.dirty = start, end, True

    def commit(self, size: int | None = None) -> None:
        """Record that everything sent is in (no pending range)."""
        if size is not None:
            self.size = max(size, self.sent_end)
        if self.dirty:
            self.loader.checkpoints.set(self.fp, self.source, self.sent_end, self.size)
            self.offset = self.sent_end
            self.dirty = False


def chunks_of_range(path: Path | str | Callable[[], BinaryIO],
                    batch_bytes: int) -> Callable[[int, int], Iterator[Chunk]]:
    """A replay reader: the chunks of bytes ``start..end`` of a file (a finished range).

    ``path`` may be a function opening the file (to read through a descriptor held open).
    """
    opener = path if callable(path) else (lambda: open_log(path))

    def read(start: int, end: int) -> Iterator[Chunk]:
        with opener() as handle:
            chunker = LineChunker(handle, start, batch_bytes, stop=end)
            while True:
                chunk = chunker.next_chunk(final=True)
                if chunk is None:
                    return
                yield chunk

    return read


class Loader:
    """Loads tracking-log files into ``<database>._ingest``, resumably and without duplicates."""

    def __init__(self, engine: "Engine", batch_bytes: int = 4 * 1024 * 1024, parallel: int = 1,
                 insert_settings: dict | None = None):
        self.engine = engine
        self.insert_settings = dict(insert_settings or {})
        self.batch_bytes = batch_bytes
        self.parallel = max(1, parallel)
        self._inserters: list["Engine"] = []
        self.checkpoints = Checkpoints(engine)
        self.ingest_table = f"`{engine.database}`._ingest"

    def insert_encoded(self, buffers: list[bytes], token: str) -> None:
        """Insert TabSeparated rows; the same token twice stores them once."""
        self.engine.insert_raw(self.ingest_table, buffers, "TabSeparated", column_names=INGEST_COLUMNS,
                               settings={**self.insert_settings, "insert_deduplication_token": token})

    def insert_parallel(self, inserts: list[tuple[bytes, str]]) -> None:
        """Several (rows, token) inserts at the same time, one connection each.

        The embedded engine runs one insert per connection at a time and releases the
        GIL meanwhile, so two connections keep both cores busy with the views.
        """
        from concurrent.futures import ThreadPoolExecutor

        engines = self._parallel_engines(len(inserts))
        with ThreadPoolExecutor(len(inserts)) as pool:
            futures = [pool.submit(engine.insert_raw, self.ingest_table, [data], "TabSeparated",
                                   INGEST_COLUMNS, {**self.insert_settings, "insert_deduplication_token": token})
                       for engine, (data, token) in zip(engines, inserts)]
            for future in futures:
                future.result()

    def _parallel_engines(self, n: int) -> list["Engine"]:
        while len(self._inserters) < n - 1:
            if getattr(self.engine, "kind", "") == "embedded":
                from cairn.engine import EmbeddedEngine

                self._inserters.append(EmbeddedEngine(self.engine.data_dir, self.engine.database))  # type: ignore[attr-defined]
            else:
                break
        engines = [self.engine, *self._inserters][:n]
        # Without a second connection (server engine): inserts share the one engine.
        return engines + [self.engine] * (n - len(engines))

    def close(self) -> None:
        """Close the extra connections opened for parallel inserts."""
        for engine in self._inserters:
            engine.close()
        self._inserters = []

    def insert_chunk(self, source: str, chunk: Chunk, token: str) -> None:
        """Insert whole lines; the same token twice stores them once."""
        self.insert_encoded([encode_chunk(source, chunk)], token)

    def load_file(self, path: str | os.PathLike, progress: ProgressCallback | None = None,
                  lines: Callable[[int], None] | None = None) -> LoadResult:
        """Load one file from its checkpoint to its end.

        ``progress(n)`` is told about bytes read (uncompressed), ``lines(n)`` about
        lines sent.
        """
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
                self._load_lines(path, source, fp, result, progress, lines)
        except (OSError, EOFError, gzip.BadGzipFile) as exc:
            raise CairnError(f"{path}: cannot read: {exc}") from None
        result.counts = self.counts(source)
        return result

    def _load_lines(self, path: Path, source: str, fp: str, result: LoadResult,
                    progress: ProgressCallback | None, lines: Callable[[int], None] | None) -> None:
        stream = Stream(self, fp, source)
        start = stream.open(chunks_of_range(path, self.batch_bytes))
        with open_log(path) as handle:
            size = handle.seek(0, io.SEEK_END) if not isinstance(handle, gzip.GzipFile) else None
            if size is not None and start >= size:
                # Everything of this content was loaded already (maybe from another path).
                result.already_loaded = start > 0
                stream.commit(size)
                if progress:
                    progress(size)
                return
            if progress and start:
                progress(start)
            # A thread reads and encodes ahead while the engine inserts; with
            # parallel > 1, groups of chunks go in through several connections at once.
            group: list[tuple[Chunk, bytes]] = []
            items = _prefetch(handle, start, self.batch_bytes, source, depth=self.parallel)
            for item in chain(items, [None]):
                if item is not None:
                    group.append(item)
                    if len(group) < self.parallel:
                        continue
                if not group:
                    break
                chunks = [chunk for chunk, _ in group]
                stream.send_group(chunks, [data for _, data in group], chunks[-1].end)
                for chunk in chunks:
                    result.bytes_loaded += chunk.end - chunk.start
                    result.chunks += 1
                    result.lines_sent += chunk.lines
                    if progress:
                        progress(chunk.end - chunk.start)
                    if lines:
                        lines(chunk.lines)
                group = []
            if result.chunks == 0 and start > 0:
                result.already_loaded = True
            stream.commit(stream.sent_end)

    def _load_document(self, path: Path, source: str, events: list[bytes], result: LoadResult,
                       progress: ProgressCallback | None) -> None:
        content = path.read_bytes()
        fp = "doc-" + hashlib.sha256(content).hexdigest()[:28]
        if self.checkpoints.get(fp) >= len(events):
            result.already_loaded = True
        else:
            # Offsets of events in a document are their ordinal numbers.
            rows = _rows(source, range(len(events)), (_tsv_escape(event) for event in events))
            self.checkpoints.write(fp, source, 0, len(events), len(events))
            self.insert_encoded([rows], f"{fp}:all")
            self.checkpoints.set(fp, source, len(events), len(events))
            result.bytes_loaded = len(content)
            result.chunks = 1
            result.lines_sent = len(events)
        if progress:
            progress(os.path.getsize(path))

    def counts(self, source: str) -> dict[str, int]:
        """Lines seen for a source so far, by outcome (event, skipped, quarantined)."""
        rows = self.engine.query_rows(
            f"SELECT status, sum(lines) FROM `{self.engine.database}`._ingest_stats "
            "WHERE source = {source:String} GROUP BY status", {"source": source})
        return {status: int(lines) for status, lines in rows}


_DONE = object()


def _prefetch(handle: BinaryIO, start: int, batch_bytes: int, source: str,
              depth: int = 2) -> Iterator[tuple[Chunk, bytes]]:
    """Chunks of a finished file with their encoding, produced by a reader thread.

    At most ``depth`` chunks wait in memory. Errors in the thread are re-raised here.
    """
    out: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            chunker = LineChunker(handle, start, batch_bytes)
            while not stop.is_set():
                chunk = chunker.next_chunk(final=True)
                if chunk is None:
                    break
                # Keep only the encoded rows: the raw bytes are not needed any more.
                item = (Chunk(chunk.start, chunk.end, b"", chunk.lines), encode_chunk(source, chunk))
                while not stop.is_set():
                    try:
                        out.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
            out.put(_DONE)
        except BaseException as exc:  # handed to the consumer
            out.put(exc)

    thread = threading.Thread(target=produce, name="cairn-reader", daemon=True)
    thread.start()
    try:
        while True:
            item = out.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join(timeout=5)

