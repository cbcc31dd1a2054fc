"""Cutting a byte stream into chunks of whole lines, with bounded memory.

A chunk is the unit of the exactly-once protocol (see ``checkpoints.py``): its
byte range ``start..end`` in the file names its insert. Chunk boundaries depend
only on the file's bytes and the batch size, never on how far a growing file had
been written, so a replayed range is cut exactly as it was the first time.

Lines longer than MAX_LINE_BYTES are cut to that many bytes: the classifier in
ClickHouse quarantines anything over 1 MiB anyway, and memory stays bounded
whatever a file holds.
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass
from itertools import accumulate
from pathlib import Path
from typing import BinaryIO, Callable, Iterator, TypeVar

from cairn.ingest.files import ANCHOR_BYTES, open_log

# Lines longer than this are cut to this many bytes before they are sent (the
# classifier quarantines anything over 1 MiB anyway): memory stays bounded whatever
# a file holds, and the quarantine keeps the first MAX_LINE_BYTES of the raw line.
MAX_LINE_BYTES = 4 * 1024 * 1024


@dataclass
class Chunk:
    """Whole lines ``data`` read from bytes ``start``..``end`` of a file.

    ``data`` always ends with a newline. It differs from the file bytes only when a
    line was longer than MAX_LINE_BYTES (then the chunk is that one line, cut) or
    when the last line of a finished file had no newline (one is added).
    """

    start: int
    end: int
    data: bytes | bytearray  # a bytearray when read by LineChunker (no copy); never changed once cut
    count: int = -1  # lines, when `data` was dropped after encoding
    tail: bytes = b""  # the file's last ANCHOR_BYTES bytes before `end` (its identity there)

    @property
    def lines(self) -> int:
        """Number of lines in the chunk."""
        return self.count if self.count >= 0 else self.data.count(b"\n")


class ExplicitChunk(Chunk):
    """A multi-line chunk holding over-long lines: each line with its own file offset.

    Cutting a line shifts every later line in ``data``, so the offsets of the
    original lines are kept explicitly for the encoder.
    """

    def __init__(self, start: int, end: int, data: bytes, lines: list[bytes], max_line: int):
        super().__init__(start, end, data)
        self.offsets = list(accumulate((len(line) + 1 for line in lines), initial=start))[:-1]
        self.cut_lines = [line[:max_line] for line in lines]


def _has_long_line(data: bytes | bytearray, max_line: int) -> bool:
    """Whether a line of ``data`` (whole lines) is longer than ``max_line``, without splitting it.

    Each step jumps to the last newline within ``max_line + 1`` bytes: a window
    without one starts an over-long line. A 32 MiB chunk takes a few steps.
    """
    position = 0
    while position < len(data):
        newline = data.rfind(b"\n", position, position + max_line + 1)
        if newline == -1:
            return True
        position = newline + 1
    return False


def _split(buffer: bytes | bytearray, at: int) -> tuple[bytes | bytearray, bytes]:
    """``buffer[:at]`` and ``buffer[at:]``; a bytearray is cut in place (its head is not copied)."""
    if isinstance(buffer, bytearray):
        rest = bytes(buffer[at:])
        del buffer[at:]
        return buffer, rest
    return buffer[:at], buffer[at:]


def cut_long_lines(chunk: Chunk, max_line: int) -> Chunk:
    """A chunk whose lines are all kept whole unless longer than ``max_line``.

    Long lines inside a multi-line chunk are rare (the chunker isolates most); their
    offsets are kept by encoding the chunk as explicit (offset, line) pairs.
    """
    if not _has_long_line(chunk.data, max_line):
        return chunk
    lines = chunk.data.split(b"\n")[:-1]
    explicit = ExplicitChunk(chunk.start, chunk.end, chunk.data, lines, max_line)
    explicit.tail = chunk.tail
    return explicit


class LineChunker:
    """Cuts a byte stream into chunks of whole lines, holding a partial last line back.

    Reads sequentially (gzip streams are never seeked backwards). Memory is bounded
    by ``batch_bytes + MAX_LINE_BYTES`` whatever the lines look like. ``stop`` makes
    the stream end there (used to replay an exact range). Each chunk carries the
    file's last ANCHOR_BYTES bytes before its end (``tail``), which identify the file
    at that position (see ``identity.py``); they are read first when ``start > 0``.
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
        self._long_tail = b""  # last ANCHOR_BYTES bytes read of the over-long line
        before = max(0, start - ANCHOR_BYTES)
        handle.seek(before)
        self.tail = handle.read(start - before) if start else b""  # file bytes before `position`
        handle.seek(start)

    def _read(self, size: int) -> bytes:
        if self.stop is not None:
            size = min(size, self.stop - self.read_to)
            if size <= 0:
                return b""
        block = self.handle.read(size)
        self.read_to += len(block)
        return block

    def _read_after(self, pending: bytes | bytearray) -> bytearray:
        """``pending`` followed by up to ``batch_bytes`` bytes read, in one buffer.

        The bytes are read into the buffer that becomes the chunk's data: a chunk of
        32 MiB costs 32 MiB, not the three copies of concatenating and slicing.
        """
        size = self.batch_bytes if self.stop is None else max(0, min(self.batch_bytes, self.stop - self.read_to))
        if not hasattr(self.handle, "readinto"):  # a reader of blocks (stdin's queue)
            buffer = bytearray(pending)
            buffer += self._read(size) if size else b""
            return buffer
        buffer = bytearray(len(pending) + size)
        buffer[:len(pending)] = pending
        read = (self.handle.readinto(memoryview(buffer)[len(pending):]) or 0) if size else 0
        self.read_to += read
        del buffer[len(pending) + read:]
        return buffer

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
                    return self._finish_long(self.position + self._long_seen + newline + 1, block[newline + 1:],
                                             self._long_tail + block[:newline + 1])
                self._long_seen += len(block)
                self._long_tail = (self._long_tail + block)[-ANCHOR_BYTES:]
                if block:
                    continue
                if final:
                    return self._finish_long(self.position + self._long_seen, b"", self._long_tail)
                return None
            # Enough whole lines already buffered: cut them without reading more.
            full = len(self.pending) >= self.batch_bytes and b"\n" in self.pending
            buffer = self.pending if full else self._read_after(self.pending)
            at_end = not full and len(buffer) == len(self.pending)
            if len(buffer) > self.max_line and buffer.find(b"\n", 0, self.max_line + 1) == -1:
                # The line starting here is over-long: keep its first max_line bytes only.
                self._long, self._long_seen, self.pending = buffer[:self.max_line], len(buffer), b""
                newline = buffer.find(b"\n", self.max_line)
                if newline != -1:
                    self._long_seen = 0
                    return self._finish_long(self.position + newline + 1, buffer[newline + 1:],
                                             buffer[:newline + 1])
                self._long_tail = buffer[-ANCHOR_BYTES:]
                continue
            cut = buffer.rfind(b"\n")
            if cut == -1:
                self.pending = buffer
                if not at_end:
                    continue
                if final and self.pending:
                    data, self.pending = self.pending, b""
                    chunk = Chunk(self.position, self.position + len(data), data + b"\n", tail=self._tail(data))
                    self.position = chunk.end
                    return chunk
                return None
            data, self.pending = _split(buffer, cut + 1)
            chunk = Chunk(self.position, self.position + len(data), data, tail=self._tail(data))
            self.position = chunk.end
            return cut_long_lines(chunk, self.max_line) if len(data) > self.max_line else chunk

    def _tail(self, data: bytes) -> bytes:
        """The file's last ANCHOR_BYTES bytes once ``data`` (file bytes after ``position``) is taken."""
        self.tail = bytes(data[-ANCHOR_BYTES:] if len(data) >= ANCHOR_BYTES else (self.tail + data)[-ANCHOR_BYTES:])
        return self.tail

    def _finish_long(self, end: int, rest: bytes, last_bytes: bytes) -> Chunk:
        assert self._long is not None
        # `last_bytes`: the end of the long line as read (the line itself is not kept whole).
        chunk = Chunk(self.position, end, self._long + b"\n", tail=self._tail(last_bytes))
        self.position, self._long, self._long_seen, self.pending = end, None, 0, rest
        self._long_tail = b""
        return chunk

    @property
    def buffered(self) -> int:
        """Bytes read but not yet returned (partial last line)."""
        return self.read_to - self.position


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


_DONE = object()
Encoding = TypeVar("Encoding")


def prefetch(handle: BinaryIO, start: int, batch_bytes: int, encode: Callable[[Chunk], Encoding],
             depth: int = 2) -> Iterator[tuple[Chunk, Encoding]]:
    """Chunks of a finished file with their encoding, produced by a reader thread.

    The thread reads and encodes ahead while the engine inserts. At most ``depth``
    chunks wait in memory; the chunks handed out keep their range and line count
    but not their bytes (only the encoding is sent). Errors in the thread are
    re-raised here.
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
                chunk.count = chunk.lines  # counted once: the encoder asks too
                # Hand out the encoding only (which may hold the bytes themselves: no copy).
                item = (Chunk(chunk.start, chunk.end, b"", chunk.count, chunk.tail), encode(chunk))
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
