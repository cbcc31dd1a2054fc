"""Exactly-once delivery of a file's lines: checkpoint rows, intents and commits.

Protocol (see docs/collector.md). A file is a *stream*, named by the hash of its
first line (``~2``, ``~3``... appended for other files sharing that first line: see
``identity.py``). Its checkpoint row in ``_checkpoints`` says ``offset``
(every byte before it is in the datalake) and ``pending_end`` (the range
``offset..pending_end`` may or may not be). Per chunk:

1. write the intent row ``(offset=S, pending_end=E)``;
2. insert lines ``S..E`` with ``insert_deduplication_token = "{fp}:{S}:{E}"``;
3. the next chunk's intent ``(offset=E, pending_end=E2)`` commits this one (an idle
   stream writes ``(offset=E, pending_end=E)``).

After a crash the reader first replays exactly ``S..E`` with the same token: if the
first attempt landed (in any of the tables the views fill), ClickHouse drops the
replay there; if not, it lands now. Chunk boundaries therefore never depend on how
far a growing file had been written when the reader restarted.
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Callable, Iterable, Iterator

from cairn.engine import sql_identifier
from cairn.errors import EngineError, EngineUnavailable
from cairn.ingest.chunks import Chunk
from cairn.ingest.encoding import CHUNKS, Encoded, encode_chunk, encode_range
from cairn.ingest.files import anchor_of

if TYPE_CHECKING:  # pragma: no cover
    from cairn.engine import Engine
    from cairn.ingest.loader import Loader


class InsertFailed(EngineError):
    """The engine did not store a range of a stream: nothing from its start on is counted.

    The intent row of the range stays, so the next attempt replays exactly that range
    with the same deduplication token (what did land is dropped there, once).
    """

    def __init__(self, source: str, start: int, end: int, cause: EngineError, unit: str = "bytes",
                 hint: str = ""):
        self.source, self.start, self.end, self.cause, self.unit = source, start, end, cause, unit
        # ClickHouse's text on one line: the CLI prints errors as one line.
        message = (f"{source}: the engine did not store {unit} {start:,}-{end:,}: {' '.join(str(cause).split())}; "
                   f"nothing from {unit[:-1]} {start:,} on is counted")
        super().__init__(message + (f"; {hint}" if hint else ""), cause.code)

    def with_hint(self, hint: str) -> "InsertFailed":
        """The same failure with what the user should do next appended."""
        return InsertFailed(self.source, self.start, self.end, self.cause, self.unit, hint)


def chunk_token(fp: str, start: int, end: int) -> str:
    """The deduplication token of the insert of bytes ``start..end`` of stream ``fp``."""
    return f"{fp}:{start}:{end}"


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
    anchor: str = ""  # hash of the file's bytes just before `offset` ("" at 0 and in rows older than it)
    encoding: str = CHUNKS  # how the pending range was sent (encoding.py; "" in rows older than chunks)

    @property
    def has_intent(self) -> bool:
        """An intent was written and not yet committed: ``offset..pending_end`` may be in."""
        return self.pending_end > self.offset

    def pending_ranges(self) -> list[tuple[int, int]]:
        """The chunk ranges of the pending intent, each replayed with its own token."""
        bounds = [self.offset, *[c for c in self.cuts if self.offset < c < self.pending_end], self.pending_end]
        return list(zip(bounds, bounds[1:]))


class Checkpoints:
    """Per-file load positions, stored in ``_checkpoints`` next to the data.

    Rows are appended, never updated: the latest ``updated_at`` per fingerprint
    wins (ReplacingMergeTree folds old rows away in the background).
    """

    def __init__(self, engine: "Engine"):
        self.engine = engine
        self.table = f"{sql_identifier(engine.database)}._checkpoints"
        self._last_time = 0.0
        self._lock = threading.Lock()

    def get(self, fp: str) -> int:
        """Committed offset of a stream (0 when unknown)."""
        return self.read(fp).offset

    def read(self, fp: str) -> Checkpoint:
        """The latest checkpoint row of a stream."""
        rows = self.engine.query_rows(
            f"SELECT {self._LATEST} FROM {self.table} WHERE fingerprint = {{fp:String}} "
            "GROUP BY fingerprint", {"fp": fp})
        return self._checkpoint(rows[0]) if rows else Checkpoint(fp)

    _LATEST = ("fingerprint, argMax(offset, updated_at), argMax(pending_end, updated_at), argMax(source, updated_at), "
               "argMax(size, updated_at), max(updated_at), argMax(pending_cuts, updated_at), "
               "argMax(anchor, updated_at), argMax(pending_encoding, updated_at)")

    def _checkpoint(self, row: tuple) -> Checkpoint:
        fp, offset, pending_end, source, size, updated_at, cuts, anchor, encoding = row
        if updated_at is not None:
            if updated_at.tzinfo is None:
                updated_at = updated_at.replace(tzinfo=timezone.utc)
            self._last_time = max(self._last_time, updated_at.timestamp())
        return Checkpoint(fp, int(offset), int(pending_end), [int(c) for c in cuts], source, int(size),
                          updated_at, anchor, encoding)

    def sharing_first_line(self, head: str) -> list[Checkpoint]:
        """The streams named after first-line hash ``head`` (``head``, ``head~2``, ...), in name order."""
        rows = self.engine.query_rows(
            f"SELECT {self._LATEST} FROM {self.table} WHERE fingerprint = {{head:String}} "
            "OR startsWith(fingerprint, {prefix:String}) GROUP BY fingerprint ORDER BY fingerprint",
            {"head": head, "prefix": head + "~"})
        return [self._checkpoint(row) for row in rows]

    def _now(self) -> datetime:
        # Strictly increasing timestamps, so that argMax never sees a tie between an
        # intent and the row that commits it, even within one microsecond.
        with self._lock:
            now = max(time.time(), self._last_time + 1e-6)
            self._last_time = now
        return datetime.fromtimestamp(now, timezone.utc)

    def write(self, fp: str, source: str, offset: int, pending_end: int, size: int,
              cuts: Iterable[int] = (), anchor: str = "") -> None:
        """Append a checkpoint row (durable once this returns); ``anchor``: see :class:`Checkpoint`.

        Its pending range is always sent the way of this version (``CHUNKS``).
        """
        self.engine.insert(self.table, [[fp, source, offset, max(pending_end, offset), list(cuts), size, self._now(),
                                         anchor, CHUNKS]],
                           ["fingerprint", "source", "offset", "pending_end", "pending_cuts", "size", "updated_at",
                            "anchor", "pending_encoding"])

    def set(self, fp: str, source: str, offset: int, size: int, anchor: str = "") -> None:
        """Commit ``offset`` with no pending range."""
        self.write(fp, source, offset, offset, size, anchor=anchor)


@contextmanager
def insert_failures(source: str, start: int, end: int, unit: str = "bytes") -> Iterator[None]:
    """An engine error during the insert of ``start..end`` of ``source`` becomes :class:`InsertFailed`.

    Callers move their positions only after the insert returned, so a failed range is
    never counted: the checkpoint stays at ``start`` and its intent row stays.
    """
    try:
        yield
    except (InsertFailed, EngineUnavailable):
        raise  # an unreachable engine is said as such (the collector waits for it)
    except EngineError as exc:
        raise InsertFailed(source, start, end, exc, unit=unit) from exc


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
        self.anchor = ""  # anchor of `sent_end`: the file's bytes before it (see identity.py)

    def open(self, reader: Callable[[int, int], Iterable[Chunk]] | None = None) -> int:
        """Load the checkpoint; replay a pending range with ``reader(start, end)``. Returns the offset."""
        cp = self.loader.checkpoints.read(self.fp)
        self.offset = self.sent_end = cp.offset
        self.size = cp.size
        self.anchor = cp.anchor
        if cp.has_intent and reader is not None:
            # Each chunk of the interrupted group again, with its own token.
            for start, end in cp.pending_ranges():
                chunks = list(reader(start, end))
                # Sent as its first attempt was (an intent older than chunks: as rows), so
                # that deduplication recognises what of it landed.
                encoded = encode_range(self.source, chunks, cp.encoding)
                with self._failure(start, end):
                    self.loader.insert_encoded(encoded, chunk_token(self.fp, start, end))
                if chunks:
                    self.anchor = anchor_of(chunks[-1].tail)
            self.sent_end = cp.pending_end
            self.dirty = True
            self.commit(max(self.size, cp.pending_end))
        elif cp.has_intent:
            # Nothing to replay from (the content is gone): the range is lost or
            # landed; keep the committed offset so a reappearing copy is replayed.
            self.sent_end = cp.offset
        return self.sent_end

    def send(self, chunk: Chunk, size: int, encoded: Encoded | None = None) -> None:
        """Insert one chunk starting at the current position, exactly once."""
        if chunk.start != self.sent_end:
            raise RuntimeError(f"chunk starts at {chunk.start}, stream is at {self.sent_end}")
        self.size = max(size, chunk.end)
        # The intent row commits the previous chunk (offset = its end) and announces this one.
        self.loader.checkpoints.write(self.fp, self.source, chunk.start, chunk.end, self.size, anchor=self.anchor)
        with self._failure(chunk.start, chunk.end):
            self.loader.insert_encoded(encoded if encoded is not None else encode_chunk(self.source, chunk),
                                       chunk_token(self.fp, chunk.start, chunk.end))
        self.offset = chunk.start
        self.sent_end = chunk.end
        self.anchor = anchor_of(chunk.tail)
        self.dirty = True

    def send_group(self, chunks: list[Chunk], encoded: list[Encoded], size: int) -> None:
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
                                      cuts=[c.end for c in chunks[:-1]], anchor=self.anchor)
        with self._failure(start, end):
            self.loader.insert_parallel([(data, chunk_token(self.fp, c.start, c.end))
                                         for c, data in zip(chunks, encoded)])
        self.offset, self.sent_end, self.dirty = start, end, True
        self.anchor = anchor_of(chunks[-1].tail)

    def _failure(self, start: int, end: int):
        """The insert of ``start..end`` (bytes of this stream's source): see :func:`insert_failures`."""
        return insert_failures(self.source, start, end)

    def commit(self, size: int | None = None) -> None:
        """Record that everything sent is in (no pending range)."""
        if size is not None:
            self.size = max(size, self.sent_end)
        if self.dirty:
            self.loader.checkpoints.set(self.fp, self.source, self.sent_end, self.size, anchor=self.anchor)
            self.offset = self.sent_end
            self.dirty = False
