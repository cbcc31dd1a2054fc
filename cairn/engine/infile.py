"""Embedded inserts that fail loudly: ``INSERT ... FROM INFILE`` a private FIFO.

chDB's streaming inserter (``send_insert`` / ``append`` / ``finish``) drops every
exception raised after parsing: a materialized view's ``throwIf``, a CHECK
constraint, ``NOT_ENOUGH_SPACE`` (243), a real ENOSPC (76). It reports the rows as
written while nothing was stored, and only the process-wide ``system.errors`` knows.
A plain ``query()`` raises all of them, so the data goes through a statement that
the engine runs with ``query()``: ``INSERT INTO t FROM INFILE '<fifo>' ... FORMAT f``,
while a writer thread streams the bytes into the FIFO (chDB releases the GIL, so
the engine parses as the writer writes; measured as fast as ``send_insert``).

A closed pipe reads as a normal end of data, so a writer that stops early must
make the statement fail instead of committing a prefix. Two framings:

* ``plain``: the bytes as they are. Only for data materialised as ``bytes`` before
  the statement starts (``EmbeddedEngine.insert_raw``): nothing can fail half-way
  but the engine itself.
* ``zstd``: the bytes in a zstd frame (``COMPRESSION 'zstd'``), for streams whose
  producer may fail half-way (an HTTP body in `cairn serve`). On a producer failure
  the writer ends the frame with a corrupt block: decoding fails (code 561) whatever
  the format and whatever ``input_format_allow_errors_*`` say, and the statement stores
  nothing of its last block. (A truncated zstd or lz4 frame is accepted silently.)
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import tempfile
import threading
from typing import Any, Callable, Iterable

from cairn.engine.sql import sql_string

FIFO_PREFIX = "cairn-insert-"
"""Prefix of the private temporary directory (0700) holding one insert's FIFO."""

_F_SETPIPE_SZ = 1031  # Linux fcntl: a bigger pipe means fewer wake-ups of the engine's reader
_PIPE_BYTES = 1 << 20
# A zstd block header with the reserved block type 3: "Data corruption detected".
_CORRUPT_ZSTD_BLOCK = b"\x06\x00\x00"
# Fast level: the frame is there for its integrity, not to save bytes through a pipe.
_ZSTD_LEVEL = -1


class _Writer(threading.Thread):
    """Streams chunks into the FIFO; remembers a failure of the producer (never of the engine)."""

    def __init__(self, fifo: str, chunks: Iterable[bytes], framing: str):
        super().__init__(name="cairn-insert-writer", daemon=True)
        self.fifo, self.chunks, self.framing = fifo, chunks, framing
        self.producer_error: BaseException | None = None

    def run(self) -> None:
        try:
            # Blocks until the engine opens the FIFO (or the cleanup opens it to unblock us).
            fd = os.open(self.fifo, os.O_WRONLY)
        except OSError:
            return
        with open(fd, "wb", buffering=0) as pipe:
            with contextlib.suppress(OSError):  # may be refused above /proc/sys/fs/pipe-max-size
                fcntl.fcntl(pipe.fileno(), _F_SETPIPE_SZ, _PIPE_BYTES)
            self._stream(pipe)

    def _stream(self, pipe: Any) -> None:
        compressor = None
        if self.framing == "zstd":
            import zstandard

            compressor = zstandard.ZstdCompressor(level=_ZSTD_LEVEL).compressobj()
        chunks = iter(self.chunks)
        while True:
            try:
                chunk = next(chunks)
            except StopIteration:
                break
            except BaseException as exc:  # noqa: BLE001 - any producer failure must fail the statement
                self.producer_error = exc
                self._seal(pipe, compressor)
                return
            if chunk and not _send(pipe, compressor.compress(chunk) if compressor else chunk):
                return
        if compressor is not None:
            _send(pipe, compressor.flush())

    def _seal(self, pipe: Any, compressor: Any) -> None:
        """End the data so that the engine refuses the statement (see the module docstring)."""
        if compressor is None:
            return  # plain framing only carries materialised bytes: no producer to fail
        import zstandard

        _send(pipe, compressor.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK) + _CORRUPT_ZSTD_BLOCK)


def _send(pipe: Any, data: bytes) -> bool:
    """Write ``data``; False when the engine stopped reading (it raises on its side)."""
    if not data:
        return True
    try:
        pipe.write(data)
        return True
    except OSError:  # BrokenPipeError: the statement failed or finished early
        return False


def infile_insert(run: Callable[[str], Any], head: str, fmt: str, chunks: Iterable[bytes],
                  settings: str = "", framing: str = "plain") -> Any:
    """Run ``<head> FROM INFILE <fifo> ... FORMAT <fmt>`` with ``run`` while ``chunks`` stream in.

    ``head`` is ``INSERT INTO t [(cols)]``; ``settings`` the rendered list after
    ``SETTINGS`` (``a = 1, b = 'x'``) or empty. Returns what ``run`` returned; raises
    what it raised (the engine's error). When the producer of ``chunks`` failed, its
    exception is raised instead, after the engine refused the truncated data.
    """
    if framing not in ("plain", "zstd"):
        raise ValueError(f"unknown framing {framing!r}")
    if framing == "plain" and not isinstance(chunks, (list, tuple)):
        # A plain pipe cannot say "failed" after a prefix: only materialised data may use it.
        raise TypeError("plain framing takes a list of bytes; stream with framing='zstd'")
    # mode 0700: the data stays private; the pid tells whose a left-over directory was.
    directory = tempfile.mkdtemp(prefix=f"{FIFO_PREFIX}{os.getpid()}-")
    fifo = os.path.join(directory, "data")
    try:
        os.mkfifo(fifo, 0o600)
        compression = " COMPRESSION 'zstd'" if framing == "zstd" else ""
        # Parallel parsing on: a 32 MiB backfill batch parses on both cores (backfill of
        # 400k lines: 12.3 s against 13.1 s with it off). The parsed chunks are squashed
        # into one insert block all the same, so a statement stays all or nothing (tested).
        all_settings = "input_format_parallel_parsing = 1" + (f", {settings}" if settings else "")
        sql = f"{head} FROM INFILE {sql_string(fifo)}{compression} SETTINGS {all_settings} FORMAT {fmt}"
        writer = _Writer(fifo, chunks, framing)
        writer.start()
        try:
            result = run(sql)
        except BaseException:
            _unblock(fifo, writer)
            if writer.producer_error is not None:  # the cause; the engine's error is its consequence
                raise writer.producer_error from None
            raise
        _unblock(fifo, writer)
        if writer.producer_error is not None:  # cannot happen with either framing; never report success
            raise writer.producer_error
        return result
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def remove_stale_dirs(directory: str | None = None) -> int:
    """Remove the FIFO directories left by processes that are gone (killed mid-insert); returns how many.

    Each directory carries its process id (``cairn-insert-<pid>-...``): those of a live
    process, this one included, are left alone. Called when an embedded engine opens.
    """
    directory = directory or tempfile.gettempdir()
    removed = 0
    try:
        names = os.listdir(directory)
    except OSError:
        return 0
    for name in names:
        if not name.startswith(FIFO_PREFIX):
            continue
        pid_text = name[len(FIFO_PREFIX):].split("-", 1)[0]
        if not pid_text.isdigit() or _alive(int(pid_text)):
            continue
        path = os.path.join(directory, name)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
            removed += not os.path.exists(path)
    return removed


def _alive(pid: int) -> bool:
    """Whether a process with this id exists (one of another user counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _unblock(fifo: str, writer: _Writer) -> None:
    """Wait for the writer; when the engine never opened the FIFO, open it so the writer's open() returns.

    Looped: the writer may not have reached its open() yet when the statement failed.
    """
    while writer.is_alive():
        with contextlib.suppress(OSError):
            os.close(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK))
        writer.join(0.05)


# A statement of at most this much data (and rows) is one insert block for the
# engine (defaults: min_insert_block_size_rows 1,048,449, bytes 256 MiB), so it is
# stored all or nothing; measured: 63 MiB with a view failing on the last row stores 0.
MAX_STATEMENT_BYTES = 64 << 20
MAX_STATEMENT_ROWS = 1_000_000
# Formats where a raw newline always ends a row, so the data can be cut there into
# several statements. Others (and headers: ...WithNames) go as one statement.
SPLITTABLE_FORMATS = frozenset({"TabSeparated", "TSV", "TabSeparatedRaw", "TSVRaw"})


def statement_batches(chunks: Iterable[bytes], fmt: str, max_bytes: int = MAX_STATEMENT_BYTES,
                      max_rows: int = MAX_STATEMENT_ROWS) -> list[list[bytes]]:
    """``chunks`` materialised and grouped into the data of successive statements.

    For the TabSeparated family each group holds at most ``max_bytes`` and
    ``max_rows`` rows (cut at row ends; a single longer row goes alone), so each
    statement is one insert block. Other formats stay one group. Empty chunks are
    dropped; no chunk means no statement.
    """
    # bytes and bytearray as they are (a chunk's 32 MiB is not copied); other buffers copied.
    parts = [chunk if isinstance(chunk, (bytes, bytearray)) else bytes(chunk) for chunk in chunks if chunk]
    if fmt not in SPLITTABLE_FORMATS:
        return [parts] if parts else []
    batches: list[list[bytes]] = []
    batch: list[bytes] = []
    size = rows = 0
    for part in parts:
        while part:
            count = part.count(b"\n")
            if len(part) <= max_bytes - size and count <= max_rows - rows:
                batch.append(part)
                size, rows = size + len(part), rows + count
                break
            cut = _row_cut(part, max_bytes - size, max_rows - rows, count)
            if cut == 0 and batch:
                batches.append(batch)  # no room left in this one: start the next
                batch, size, rows = [], 0, 0
                continue
            if cut == 0:  # one row longer than a whole statement: it goes alone
                cut = part.find(b"\n") + 1 or len(part)
            batches.append([*batch, part[:cut]])
            batch, size, rows = [], 0, 0
            part = part[cut:]
    if batch:
        batches.append(batch)
    return batches


def _row_cut(part: bytes, room_bytes: int, room_rows: int, count: int) -> int:
    """Length of the longest prefix of ``part`` made of whole rows that fits the room (0: none)."""
    if room_rows <= 0:
        return 0
    limit = min(len(part), room_bytes)
    if count > room_rows:
        limit = min(limit, len(part) * room_rows // count)  # rows of about even length
    while limit > 0:
        end = part.rfind(b"\n", 0, limit)
        if end < 0:
            return 0
        rows = part.count(b"\n", 0, end + 1)
        if rows <= room_rows:
            return end + 1
        limit = min(end, (end + 1) * room_rows // rows)
    return 0
