"""Standard input (``-``) as a collector source.

A thread reads the pipe into a bounded queue; the collector cuts what is queued
into chunks without ever blocking on the pipe. When the queue is full the thread
blocks, which blocks the writer: memory stays bounded while the engine is away.

Positions are not resumable across runs (a pipe cannot be re-read): each run is
its own stream; within a run each chunk is inserted once.
"""

from __future__ import annotations

import os
import queue
import threading
import time
import uuid
from typing import TYPE_CHECKING, BinaryIO

from cairn.ingest.checkpoints import Stream
from cairn.ingest.chunks import Chunk, LineChunker

if TYPE_CHECKING:  # pragma: no cover
    from cairn.ingest.loader import Loader

BLOCK_BYTES = 65536
STDIN_QUEUE_BLOCKS = 64  # 64 KiB blocks: at most 4 MiB of stdin waits in memory


class QueueReader:
    """File-like view of the stdin queue for LineChunker: read() never blocks."""

    def __init__(self, blocks: "queue.Queue[bytes | None]"):
        self.blocks = blocks
        self.eof = False
        self._rest = b""

    def seek(self, offset: int) -> int:
        """A no-op: the queue is read once, from its start."""
        return offset

    def read(self, size: int) -> bytes:
        """Up to ``size`` queued bytes (fewer, or none, when the queue is empty)."""
        parts, have = [self._rest] if self._rest else [], len(self._rest)
        self._rest = b""
        while have < size and not self.eof:
            try:
                block = self.blocks.get_nowait()
            except queue.Empty:
                break
            if block is None:
                self.eof = True
                break
            parts.append(block)
            have += len(block)
        data = b"".join(parts)
        if len(data) > size:
            data, self._rest = data[:size], data[size:]
        return data


def _pump(fd: int, blocks: "queue.Queue[bytes | None]") -> None:
    """Copy the pipe into the queue; None marks its end."""
    while True:
        try:
            block = os.read(fd, BLOCK_BYTES)
        except OSError:
            block = b""
        blocks.put(block if block else None)  # blocks the writer while the queue is full
        if not block:
            return


class StdinSource:
    """Standard input being read: its queue, chunker and stream."""

    def __init__(self, loader: "Loader", source: BinaryIO, batch_bytes: int):
        blocks: queue.Queue = queue.Queue(maxsize=STDIN_QUEUE_BLOCKS)
        threading.Thread(target=_pump, args=(source.fileno(), blocks), name="cairn-stdin", daemon=True).start()
        self.reader = QueueReader(blocks)
        self.chunker = LineChunker(self.reader, 0, batch_bytes)  # type: ignore[arg-type]
        # A pipe cannot be re-read: each run is its own stream, so tokens never collide.
        self.stream = Stream(loader, f"stdin-{uuid.uuid4().hex[:16]}", "-")
        self.last_send = 0.0

    def next_chunk(self) -> Chunk | None:
        """The next chunk of complete lines (the last line too once the pipe is closed)."""
        return self.chunker.next_chunk(final=self.reader.eof)

    def sent(self) -> None:
        """Note that a chunk was just sent (for the idle commit)."""
        self.last_send = time.monotonic()

    @property
    def drained(self) -> bool:
        """The pipe is closed and every byte read from it was handed out."""
        return self.reader.eof and self.chunker.buffered == 0 and self.reader.blocks.empty()

    def state(self) -> dict:
        """Its entry in ``collector.json``."""
        return {"source": "-", "fingerprint": self.stream.fp, "position": self.stream.sent_end, "size": None,
                "lag_bytes": self.chunker.buffered + self.reader.blocks.qsize() * BLOCK_BYTES,
                "lag_seconds": None, "state": "end of input" if self.reader.eof else "following"}
