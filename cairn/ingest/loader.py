"""Load tracking-log files into the datalake, exactly once.

Python only moves bytes: it cuts files into chunks of whole lines
(``chunks.py``) and streams each chunk as it is into ``_ingest_chunks``
(``encoding.py``) through the exactly-once protocol of ``checkpoints.py``;
ClickHouse cuts the chunks into lines, classifies and parses every line
(``cairn/schema/migrations/0065_ingest_chunks.sql``, ``0060_ingest_parse_once.sql``).

Accepted inputs: bare JSON lines, lines with the logging prefix Tutor writes
(``... [tracking] [user 6] [ip 172.18.0.1] logger.py:41 - {json}``), console
captures mixing other loggers, gzip-compressed files, and JSON documents holding
one event, a list of events or an object of events (see ``files.py``).
"""

from __future__ import annotations

import gzip
import io
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Callable

from cairn.engine import sql_identifier
from cairn.errors import CairnError
from cairn.ingest.batching import INSERT_SETTINGS, REALTIME_BATCH_BYTES, backfill_batch_bytes
from cairn.ingest.checkpoints import Checkpoints, InsertFailed, Stream, insert_failures
from cairn.ingest.chunks import Chunk, chunks_of_range, prefetch
from cairn.ingest.encoding import Encoded, encode_chunk, encode_events
from cairn.ingest.files import (FINGERPRINT_BYTES, document_events, document_fingerprint,
                                fingerprint, loadable_file, open_log, read_window)
from cairn.ingest.identity import resolve_stream
from cairn.ingest.reserve import DiskReserve, disk_reserve

if TYPE_CHECKING:  # pragma: no cover
    from cairn.config import Config
    from cairn.engine import Engine

ProgressCallback = Callable[[int], None]

log = logging.getLogger("cairn.ingest.loader")

# What a loader tells about a failed insert: the same command resumes at the failed range.
RETRY_HINT = "fix the cause and run the same command again: it resumes there, without duplicates"
FOLDER_HINT = "give the log files inside it, or load the whole folder with `cairn backfill FOLDER`"


@dataclass
class LoadResult:
    """What loading one file did."""

    source: str
    bytes_loaded: int = 0
    chunks: int = 0
    already_loaded: bool = False
    counts: dict[str, int] = field(default_factory=dict)  # status -> lines, cumulative for the source
    lines_sent: int = 0
    warnings: list[str] = field(default_factory=list)  # one line each, also given to the loader's `warn`


class Loader:
    """Loads tracking-log files into ``<database>._ingest``, resumably and without duplicates."""

    def __init__(self, engine: "Engine", batch_bytes: int = REALTIME_BATCH_BYTES, parallel: int = 1,
                 insert_settings: dict | None = None, reserve: DiskReserve | None = None,
                 warn: Callable[[str], None] | None = None):
        """``reserve``: free space to keep before each batch (``disk_reserve``; None: no check).
        ``warn`` is told each warning line (default: logged, on stderr when logging is
        not configured)."""
        self.engine = engine
        self.reserve = reserve
        self.warn = warn or log.warning
        self.insert_settings = dict(insert_settings or {})
        self.batch_bytes = batch_bytes
        self.parallel = max(1, parallel)
        self._inserters: list["Engine"] = []
        self.checkpoints = Checkpoints(engine)
        self.database = sql_identifier(engine.database)

    def _settings(self, token: str) -> dict:
        return {**self.insert_settings, "insert_deduplication_token": token}

    def _insert(self, engine: "Engine", encoded: Encoded, token: str) -> None:
        engine.insert_raw(f"{self.database}.{sql_identifier(encoded.table)}", encoded.pieces, encoded.fmt,
                          column_names=encoded.columns, settings=self._settings(token))

    def insert_encoded(self, encoded: Encoded, token: str) -> None:
        """Insert encoded lines (``encoding.py``); the same token twice stores them once."""
        self._insert(self.engine, encoded, token)

    def insert_parallel(self, inserts: list[tuple[Encoded, str]]) -> None:
        """Several (encoded, token) inserts at the same time, one connection each.

        The embedded engine runs one insert per connection at a time and releases the
        GIL meanwhile, so two connections keep both cores busy with the views.
        """
        engines = self._parallel_engines(len(inserts))
        with ThreadPoolExecutor(len(inserts)) as pool:
            futures = [pool.submit(self._insert, engine, encoded, token)
                       for engine, (encoded, token) in zip(engines, inserts)]
            for future in futures:
                future.result()

    def _parallel_engines(self, n: int) -> list["Engine"]:
        # Only an engine that gains from a second connection opens one (the
        # embedded engine: one insert per connection at a time); the others
        # share their one connection between the inserts.
        if self.engine.capabilities.parallel_inserts:
            while len(self._inserters) < n - 1:
                self._inserters.append(self.engine.parallel_writer())
        engines = [self.engine, *self._inserters][:n]
        return engines + [self.engine] * (n - len(engines))

    def close(self) -> None:
        """Close the extra connections opened for parallel inserts."""
        for engine in self._inserters:
            engine.close()
        self._inserters = []

    def insert_chunk(self, source: str, chunk: Chunk, token: str) -> None:
        """Insert whole lines; the same token twice stores them once."""
        self.insert_encoded(encode_chunk(source, chunk), token)

    def load_file(self, path: str | os.PathLike, progress: ProgressCallback | None = None,
                  lines: Callable[[int], None] | None = None) -> LoadResult:
        """Load one file from its checkpoint to its end.

        ``progress(n)`` is told about bytes read (uncompressed), ``lines(n)`` about
        lines sent.
        """
        path = loadable_file(path, FOLDER_HINT)
        source = str(path.resolve())
        result = LoadResult(source)
        try:
            head = fingerprint(path)
            if head is None:
                return result
            self._check_reserve()  # also before the replay of an interrupted range
            documents = document_events(path)
            if documents is not None:
                self._load_document(path, source, documents, result, progress)
            else:
                self._load_lines(path, source, self.stream_name(path, head), result, progress, lines)
        except (OSError, EOFError, gzip.BadGzipFile) as exc:
            raise CairnError(f"{path}: cannot read: {exc}") from None
        except InsertFailed as exc:
            raise exc.with_hint(RETRY_HINT) from exc.cause
        for warning in result.warnings:
            self.warn(warning)
        result.counts = self.counts(source)
        return result

    def stream_name(self, path: Path, head: str) -> str:
        """Which stream the file is, among those sharing its first line (see ``identity.py``)."""
        with open_log(path) as handle:
            first = handle.read(FINGERPRINT_BYTES)
            newline = first.find(b"\n")
            return resolve_stream(self.checkpoints, head, lambda offset: read_window(handle, offset),
                                  newline + 1 if newline != -1 else len(first))

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
            # A thread reads ahead while the engine inserts; with parallel > 1,
            # groups of chunks go in through several connections at once.
            group: list[tuple[Chunk, Encoded]] = []
            items = prefetch(handle, start, self.batch_bytes, lambda chunk: encode_chunk(source, chunk),
                             depth=self.parallel)
            for item in chain(items, [None]):
                if item is not None:
                    group.append(item)
                    if len(group) < self.parallel:
                        continue
                if not group:
                    break
                self._check_reserve(stream, sum(chunk.end - chunk.start for chunk, _ in group))
                self._send_group(stream, group, result, progress, lines)
                group = []
            if result.chunks == 0 and start > 0:
                result.already_loaded = True
            stream.commit(stream.sent_end)
            if size is not None:
                self._check_shrunk(path, handle, size, stream.sent_end, result)

    def _check_reserve(self, stream: Stream | None = None, upcoming: int = 0) -> None:
        """Refuse to start a batch below the free-space reserve (a full disk fails it half-way).

        ``upcoming``: the raw bytes of the batch. What was sent before is committed
        first (one small row), so the checkpoint says exactly where the next run starts.
        """
        reason = self.reserve.shortfall(upcoming) if self.reserve is not None else None
        if reason is None:
            return
        if stream is not None:
            stream.commit(stream.sent_end)
        self.reserve.check(reason)

    @staticmethod
    def _check_shrunk(path: Path, handle: BinaryIO, size: int, loaded_to: int, result: LoadResult) -> None:
        """Warn when the file got shorter while it was read (truncated, or rewritten in place)."""
        try:
            now = os.fstat(handle.fileno()).st_size
        except OSError:
            return
        if now < size or loaded_to < size:
            result.warnings.append(
                f"{path} shrank from {size:,} to {now:,} bytes while it was loaded (truncated?): loaded up to "
                f"byte {loaded_to:,}; if it was rotated with copytruncate, load the rotated copy too")

    @staticmethod
    def _send_group(stream: Stream, group: list[tuple[Chunk, Encoded]], result: LoadResult,
                    progress: ProgressCallback | None, lines: Callable[[int], None] | None) -> None:
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

    def _load_document(self, path: Path, source: str, events: list[bytes], result: LoadResult,
                       progress: ProgressCallback | None) -> None:
        content = path.read_bytes()
        fp = document_fingerprint(content)
        if self.checkpoints.get(fp) >= len(events):
            result.already_loaded = True
        else:
            # Offsets of events in a document are their ordinal numbers.
            rows = encode_events(source, events)
            self._check_reserve(upcoming=len(content))
            self.checkpoints.write(fp, source, 0, len(events), len(events))
            with insert_failures(source, 0, len(events), unit="events"):
                self.insert_encoded(rows, f"{fp}:all")
            self.checkpoints.set(fp, source, len(events), len(events))
            result.bytes_loaded = len(content)
            result.chunks = 1
            result.lines_sent = len(events)
        if progress:
            progress(os.path.getsize(path))

    def counts(self, source: str) -> dict[str, int]:
        """Lines seen for a source so far, by outcome (event, skipped, quarantined)."""
        rows = self.engine.query_rows(
            f"SELECT status, sum(lines) FROM {sql_identifier(self.engine.database)}._ingest_stats "
            "WHERE source = {source:String} GROUP BY status", {"source": source})
        return {status: int(lines) for status, lines in rows}


def file_loader(engine: "Engine", config: "Config", warn: Callable[[str], None] | None = None) -> Loader:
    """A loader for `cairn load`: inserts of collector.batch_bytes, the configured free-space reserve."""
    return Loader(engine, batch_bytes=config["collector.batch_bytes"], insert_settings=INSERT_SETTINGS,
                  reserve=disk_reserve(engine, config), warn=warn)


def backfill_loader(engine: "Engine", config: "Config", parallel: int = 1,
                    warn: Callable[[str], None] | None = None) -> Loader:
    """A loader for past logs: backfill insert size for this engine (see ``batching.py``),
    the configured free-space reserve (see ``reserve.py``)."""
    return Loader(engine, batch_bytes=backfill_batch_bytes(config, engine.capabilities.in_process),
                  parallel=parallel, insert_settings=INSERT_SETTINGS, reserve=disk_reserve(engine, config), warn=warn)
