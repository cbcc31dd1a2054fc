"""Follow tracking logs in real time: files, globs and standard input.

The collector polls its sources every ``collector.flush_interval`` seconds and sends
the complete lines that appeared since, through the exactly-once ``Stream`` of
``checkpoints.py`` (intent row, insert with a deduplication token, commit). A file
is followed by its open descriptor, so log rotation never loses data:

* rename + create: the old file stays open and is drained; once its path points
  elsewhere and it has been quiet for ``ROTATE_GRACE`` seconds, its last line is
  taken even without newline and it is closed; the new file is a new stream;
* deletion and compression of the old file: same (the descriptor keeps the bytes);
* copytruncate: the file shrinks under us; the bytes written between our last read
  and the truncation are read from the copy, found next to the file by fingerprint
  (plain or gzip); then the truncated file is followed from 0 as new content.

Files are identified by (device, inode) while open and by their stream name in the
checkpoints (first line, then the bytes before the position loaded: ``identity.py``),
so a rotated copy matched by a glob is never read twice, and a different file that
starts with the same line is a stream of its own.

Standard input (``-``) is read as described in ``stdin.py``. What the collector is
doing is published in ``collector.json`` (``collector_state.py``) for `cairn status`
(``status.py``).
"""

from __future__ import annotations

import glob
import logging
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Callable, Iterable

from cairn.engine.served import served_engine
from cairn.errors import EngineError
from cairn.ingest.batching import INSERT_SETTINGS, REALTIME_BATCH_BYTES
from cairn.ingest.checkpoints import InsertFailed, Stream
from cairn.ingest.chunks import Chunk, LineChunker, chunks_of_range
from cairn.ingest.collector_state import state_path, write_state
from cairn.ingest.encoding import encode_chunk
from cairn.ingest.files import (FINGERPRINT_BYTES, anchor_of, fingerprint, fingerprint_of_head, is_gzip,
                                open_followed, read_window, window_before)
from cairn.ingest.identity import first_line_of, resolve_stream
from cairn.ingest.loader import Loader
from cairn.ingest.reserve import DiskReserve, disk_reserve
from cairn.ingest.stdin import StdinSource

if TYPE_CHECKING:  # pragma: no cover
    from cairn.config import Config
    from cairn.engine import Engine

log = logging.getLogger("cairn.ingest.collector")

ROTATE_GRACE = 1.0  # seconds a rotated file must stay quiet before its partial last line counts
IDLE_COMMIT = 1.0  # seconds of quiet before a stream writes its commit row
MAX_CHUNKS_PER_CYCLE = 4  # per file, so that one big backlog does not starve the others
BACKOFF_MAX = 5.0
COPY_ATTEMPTS = 15  # x 0.2 s: how long a copytruncate copy may take to appear (or finish compressing)
# Messages that say why nothing is being delivered: shown even when the user asked for quiet.
ALERTS = ("engine", "insert failed", "paused", "disk space back")


class Stopped(Exception):
    """The collector was asked to stop while waiting for the engine."""


@dataclass
class Followed:
    """One open file being followed."""

    path: str
    handle: BinaryIO
    dev: int
    ino: int
    fp: str
    first_line: bytes
    stream: Stream
    chunker: LineChunker
    compressed: bool = False
    gone_since: float | None = None  # when its path stopped pointing to it
    last_growth: float = field(default_factory=time.monotonic)
    last_size: int = 0
    last_send: float = 0.0
    behind_since: float | None = None
    done: bool = False

    @property
    def finished(self) -> bool:
        """No more bytes will come: compressed, or rotated away and quiet."""
        return self.compressed or (self.gone_since is not None
                                   and time.monotonic() - max(self.gone_since, self.last_growth) >= ROTATE_GRACE)

    def state(self, now: float) -> dict:
        """Its entry in ``collector.json``: position, size and lag at wall-clock time ``now``."""
        size = self.last_size
        if not self.compressed:
            try:
                size = os.fstat(self.handle.fileno()).st_size
            except (OSError, ValueError):
                pass
        # A compressed file's size is not its uncompressed length: no lag is claimed.
        lag = max(0, size - self.stream.sent_end) if not self.compressed else 0
        return {"source": self.path, "fingerprint": self.fp, "position": self.stream.sent_end,
                "size": size, "lag_bytes": lag,
                "lag_seconds": round(now - self.behind_since, 3) if self.behind_since and lag else 0.0,
                "state": "rotated, draining" if self.gone_since else "following"}


class Collector:
    """Follows sources and delivers their lines exactly once."""

    def __init__(self, engine: "Engine", sources: Iterable[str], flush_interval: float = 0.2,
                 batch_bytes: int = REALTIME_BATCH_BYTES, state_dir: Path | None = None,
                 stdin: BinaryIO | None = None, echo: Callable[[str], None] | None = None,
                 reconnect: Callable[[], "Engine | None"] | None = None, reserve: DiskReserve | None = None):
        """``reserve``: free space to keep on the data directory's disk (None: not checked)."""
        self.engine = engine
        self.reconnect = reconnect
        self.reserve = reserve
        # Small latency-bound inserts: let the views behind `events` run side by side.
        # The collector checks the reserve itself: below it, it waits instead of failing.
        self.loader = Loader(engine, batch_bytes, insert_settings=INSERT_SETTINGS, reserve=None)
        self.patterns = [s for s in sources if s != "-"]
        self.use_stdin = any(s == "-" for s in sources)
        self.flush_interval = flush_interval
        self.batch_bytes = batch_bytes
        self.state_path = state_path(state_dir) if state_dir else None
        self.echo = echo or (lambda message: log.info(message))
        self.stop = threading.Event()
        self.files: dict[tuple[int, int], Followed] = {}
        self.known: dict[tuple[int, int], tuple[int, int]] = {}  # finished identities -> (size, mtime)
        self.engine_ok = True
        self.last_error = ""
        self.failure = ""  # what the last error was: "insert failed" or "engine unavailable"
        self.paused_reason = ""  # why nothing is sent now although the engine answers (disk reserve)
        self.retries = 0
        self.lost_bytes = 0
        self.started = time.time()
        self.trace = open(os.environ["CAIRN_COLLECTOR_TRACE"], "a") if os.environ.get("CAIRN_COLLECTOR_TRACE") else None
        self._stdin: StdinSource | None = None
        self._stdin_source = stdin
        self._last_state = 0.0

    # -- main loop ---------------------------------------------------------
    def run(self) -> None:
        """Follow until ``stop`` is set (or, with stdin as the only source, until its end)."""
        if self.use_stdin:
            self._start_stdin()
        try:
            self._loop()
        except Stopped:
            pass
        finally:
            self._shutdown()

    def _loop(self) -> None:
        while not self.stop.is_set():
            began = time.monotonic()
            self._wait_for_space()  # announced even while idle, before any write
            self._discover()
            busy = self._read_files()
            if self.use_stdin:
                busy |= self._read_stdin()
                if not self.patterns and self._stdin is not None and self._stdin.drained:
                    break
            self._commit_idle()
            self._write_state()
            if not busy:
                self.stop.wait(max(0.0, self.flush_interval - (time.monotonic() - began)))

    def _shutdown(self) -> None:
        # One attempt each: on a stop request nobody waits for an absent engine, and
        # an uncommitted range is replayed (deduplicated) by the next run.
        streams = [f.stream for f in self.files.values()]
        if self._stdin is not None:
            streams.append(self._stdin.stream)
        for stream in streams:
            try:
                stream.commit()
            except EngineError:
                pass
        self._write_state(force=True, running=False)
        for followed in self.files.values():
            followed.handle.close()
        if self.trace:
            self.trace.close()

    def _retry(self, action: Callable[[], Any]) -> Any:
        """Run an engine action until it succeeds, backing off while the engine is away.

        Nothing is read meanwhile: positions stay in the files (or, for stdin, in a
        bounded queue that blocks the writer), so memory stays bounded. A stop
        request during the wait raises ``Stopped``.
        """
        delay = 0.1
        while True:
            try:
                result = action()
            except EngineError as exc:
                self.retries += 1
                # A failed insert is not an absent engine: say which, the cure differs.
                what = "insert failed" if isinstance(exc, InsertFailed) else "engine unavailable"
                if self.engine_ok or str(exc) != self.last_error:
                    self.echo(f"{what}, retrying with backoff: {exc}")
                self.engine_ok, self.last_error, self.failure = False, str(exc), what
                self._sleep(delay)
                delay = min(delay * 2, BACKOFF_MAX)
                self._reconnect()
                continue
            if not self.engine_ok:
                self.echo("engine back, delivering")
            self.engine_ok = True
            return result

    def _sleep(self, delay: float) -> None:
        """Wait ``delay`` seconds, keeping collector.json (lag seconds) fresh; ``Stopped`` on a stop request."""
        waited = 0.0
        while waited < delay:
            self._write_state()
            if self.stop.wait(min(0.5, delay - waited)):
                raise Stopped() from None
            waited += 0.5

    def _wait_for_space(self) -> None:
        """Below the free-space reserve, send nothing: look again with backoff until there is room.

        A full disk fails a write half-way; pausing before keeps every position where
        it is (the files are the buffer) and resumes by itself once space is freed.
        """
        if self.reserve is None:
            return
        delay = 0.5
        while (reason := self.reserve.shortfall()) is not None:
            if not self.paused_reason:
                self.echo(f"paused, nothing is sent until space is freed: {reason}")
            self.paused_reason = reason  # the latest figure, for `cairn status`
            self._write_state(force=True)
            self._sleep(delay)
            delay = min(delay * 2, BACKOFF_MAX)
        if self.paused_reason:
            self.echo("disk space back, resuming")
            self.paused_reason = ""
            self._write_state(force=True)

    def _reconnect(self) -> None:
        """Open the engine again (a restarted `cairn serve` listens with a new credential)."""
        if self.reconnect is None:
            return
        try:
            engine = self.reconnect()
        except EngineError:
            return
        if engine is None:
            return
        old, self.engine = self.engine, engine
        self.loader.engine = engine
        self.loader.checkpoints.engine = engine
        old.close()

    # -- files -------------------------------------------------------------
    def _expand(self) -> list[str]:
        paths: list[str] = []
        for pattern in self.patterns:
            expanded = os.path.expanduser(pattern)
            if glob.has_magic(expanded):
                paths.extend(sorted(glob.glob(expanded)))
            elif os.path.isfile(expanded):
                paths.append(expanded)
        seen, unique = set(), []
        for path in paths:
            absolute = os.path.abspath(path)
            if absolute not in seen:
                seen.add(absolute)
                unique.append(absolute)
        return unique

    def _discover(self) -> None:
        now = time.monotonic()
        present: set[tuple[int, int]] = set()
        for path in self._expand():
            try:
                st = os.stat(path)
            except OSError:
                continue
            identity = (st.st_dev, st.st_ino)
            present.add(identity)
            followed = self.files.get(identity)
            if followed is not None:
                followed.path = path
                followed.gone_since = None
                continue
            if self.known.get(identity) == (st.st_size, st.st_mtime_ns):
                continue
            self._open(path, identity, st)
        for identity, followed in self.files.items():
            if identity not in present and followed.gone_since is None:
                followed.gone_since = now

    def _active_fps(self) -> set[str]:
        return {f.fp for f in self.files.values()}

    def _open(self, path: str, identity: tuple[int, int], st: os.stat_result) -> None:
        try:
            compressed = is_gzip(path)
            with open_followed(path, compressed) as probe:
                head = probe.read(FINGERPRINT_BYTES)
            first_line_hash = fingerprint_of_head(head, complete=compressed)
        except (OSError, EOFError) as exc:
            log.debug("cannot read %s yet: %s", path, exc)
            return
        if first_line_hash is None:
            return  # empty, or first line not finished: look again next cycle
        newline = head.find(b"\n")
        first_line = head[:newline + 1] if newline != -1 else head
        try:
            fp = self._retry(lambda: self._stream_name(path, compressed, first_line_hash,
                                                       len(first_line) if compressed else None))
        except (OSError, EOFError) as exc:
            log.debug("cannot read %s yet: %s", path, exc)
            return
        if fp in self._active_fps():
            # The same content is already being read through another name
            # (a rotated copy of the followed file): one reader per content.
            return
        try:
            handle = open_followed(path, compressed)
        except OSError:
            return
        source = path
        stream = Stream(self.loader, fp, source)
        if compressed:
            first_line = b""  # a compressed file is never truncated under us: nothing to compare
        fd_path = f"/proc/self/fd/{handle.fileno()}" if not compressed else path

        def reopen() -> BinaryIO:
            return open(fd_path, "rb") if not compressed else open_followed(path, True)

        self._wait_for_space()  # opening replays an interrupted range
        start = self._retry(lambda: stream.open(chunks_of_range(reopen, self.batch_bytes)))
        chunker = LineChunker(handle, start, self.batch_bytes)
        followed = Followed(path, handle, identity[0], identity[1], fp, first_line, stream, chunker,
                            compressed=compressed, last_size=st.st_size)
        self.files[identity] = followed
        if start:
            self.echo(f"following {path} from byte {start:,}")
        else:
            self.echo(f"following {path}")

    def _stream_name(self, path: str, compressed: bool, first_line_hash: str, first_line_bytes: int | None) -> str:
        """Which stream the file at ``path`` is (see ``identity.py``); streams open here count as taken."""
        with open_followed(path, compressed) as handle:
            return resolve_stream(self.loader.checkpoints, first_line_hash, lambda offset: read_window(handle, offset),
                                  first_line_bytes, taken=self._active_fps())

    def _read_files(self) -> bool:
        busy = False
        for identity, followed in list(self.files.items()):
            if self.stop.is_set():
                break
            try:
                truncated = not followed.compressed and self._truncated(followed)
            except OSError as exc:  # a file system race must never stop the collector
                self.echo(f"cannot check {followed.path}: {exc}")
                continue
            if truncated:
                self._handle_truncation(identity, followed)
                continue
            sent = 0
            while sent < MAX_CHUNKS_PER_CYCLE and not self.stop.is_set():
                try:
                    chunk = followed.chunker.next_chunk(final=followed.finished)
                except (OSError, EOFError) as exc:
                    self.echo(f"cannot read {followed.path}: {exc}")
                    chunk = None
                if chunk is None:
                    break
                if followed.behind_since is None:
                    followed.behind_since = time.time()
                self._send(followed.stream, chunk, followed.last_size)
                followed.last_send = time.monotonic()
                sent += 1
            busy |= sent == MAX_CHUNKS_PER_CYCLE
            self._update_lag(followed)
            if followed.finished and followed.chunker.buffered == 0 and sent < MAX_CHUNKS_PER_CYCLE:
                self._close(identity, followed)
        return busy

    def _send(self, stream: Stream, chunk: Chunk, size: int) -> None:
        encoded = encode_chunk(stream.source, chunk)
        self._wait_for_space()
        self._retry(lambda: stream.send(chunk, size, encoded))
        if self.trace:
            self.trace.write(f"{stream.source}\t{chunk.end}\t{time.time():.6f}\n")
            self.trace.flush()

    def _update_lag(self, followed: Followed) -> None:
        try:
            size = os.fstat(followed.handle.fileno()).st_size if not followed.compressed else followed.last_size
        except OSError:
            return
        if size != followed.last_size:
            followed.last_growth = time.monotonic()
        followed.last_size = size
        unread = size - followed.chunker.read_to
        if unread > 0 or not self.engine_ok and followed.chunker.buffered:
            if followed.behind_since is None:
                followed.behind_since = time.time()
        else:
            followed.behind_since = None

    def _truncated(self, followed: Followed) -> bool:
        """True when the file was cut under us (copytruncate), even if it grew again."""
        try:
            size = os.fstat(followed.handle.fileno()).st_size
        except OSError:
            return False
        if size < followed.chunker.read_to:
            return True
        if size != followed.last_size and followed.first_line:
            head = os.pread(followed.handle.fileno(), len(followed.first_line), 0)
            return head != followed.first_line
        return False

    def _handle_truncation(self, identity: tuple[int, int], followed: Followed) -> None:
        """copytruncate: finish the old content from its copy, then start over on the file.

        The copy may be compressed and deleted while we look (logrotate's compress):
        a vanished or half-written copy is looked for again for a few seconds.
        """
        found = None
        for _ in range(COPY_ATTEMPTS):
            copy = self._find_copy(followed)
            if copy is not None:
                try:
                    self._read_copy(copy, followed)
                    found = copy
                    break
                except (OSError, EOFError) as exc:
                    log.debug("copy %s not readable yet: %s", copy, exc)
            if self.stop.wait(0.2):
                raise Stopped()
        if found is None:
            self.echo(f"{followed.path} was truncated and no rotated copy was found next to it; "
                      f"lines written after byte {followed.stream.sent_end:,} before the truncation are lost")
        else:
            self.echo(f"{followed.path} was truncated; reading its end from {found}")
        self._retry(followed.stream.commit)
        followed.handle.close()
        del self.files[identity]
        # The file at this inode now holds new content: discovered again as a new stream.

    def _read_copy(self, copy: str, followed: Followed) -> None:
        with open_followed(copy, is_gzip(copy)) as handle:
            st = os.fstat(handle.fileno())
            chunker = LineChunker(handle, followed.stream.sent_end, self.batch_bytes)
            while True:
                chunk = chunker.next_chunk(final=True)
                if chunk is None:
                    break
                self._send(followed.stream, chunk, chunk.end)
        self.known[(st.st_dev, st.st_ino)] = (st.st_size, st.st_mtime_ns)

    def _find_copy(self, followed: Followed) -> str | None:
        folder = os.path.dirname(followed.path) or "."
        base = os.path.basename(followed.path)
        try:
            names = sorted(os.listdir(folder))
        except OSError:
            return None
        for name in names:
            candidate = os.path.join(folder, name)
            if name == base or not name.startswith(base.split(".")[0]):
                continue
            try:
                st = os.stat(candidate)
                if (st.st_dev, st.st_ino) == (followed.dev, followed.ino) or not os.path.isfile(candidate):
                    continue
                if self._is_copy(candidate, followed):
                    return candidate
            except (OSError, EOFError):
                continue
        return None

    @staticmethod
    def _is_copy(candidate: str, followed: Followed) -> bool:
        """True when ``candidate`` holds the followed stream's content up to where it was read."""
        if fingerprint(candidate) != first_line_of(followed.fp):
            return False
        stream = followed.stream
        if stream.sent_end == 0 or not stream.anchor:
            return True
        window = window_before(candidate, stream.sent_end)
        return window is not None and anchor_of(window) == stream.anchor

    def _close(self, identity: tuple[int, int], followed: Followed) -> None:
        self._retry(lambda: followed.stream.commit(followed.stream.sent_end))
        try:
            st = os.fstat(followed.handle.fileno())
            if followed.gone_since is None:
                # Still at its path (a compressed file): remember it so it is not reopened.
                self.known[identity] = (st.st_size, st.st_mtime_ns)
        except OSError:
            pass
        followed.handle.close()
        del self.files[identity]
        self.echo(f"finished {followed.path}")

    def _commit_idle(self) -> None:
        now = time.monotonic()
        streams = [(f.stream, f.last_send) for f in self.files.values()]
        if self._stdin is not None:
            streams.append((self._stdin.stream, self._stdin.last_send))
        for stream, last_send in streams:
            if stream.dirty and now - last_send >= IDLE_COMMIT:
                self._retry(stream.commit)

    # -- stdin -------------------------------------------------------------
    def _start_stdin(self) -> None:
        import sys

        self._stdin = StdinSource(self.loader, self._stdin_source or sys.stdin.buffer, self.batch_bytes)

    def _read_stdin(self) -> bool:
        assert self._stdin is not None
        sent = 0
        while sent < MAX_CHUNKS_PER_CYCLE and not self.stop.is_set():
            chunk = self._stdin.next_chunk()
            if chunk is None:
                break
            self._send(self._stdin.stream, chunk, chunk.end)
            self._stdin.sent()
            sent += 1
        return sent == MAX_CHUNKS_PER_CYCLE

    # -- state ---------------------------------------------------------------
    def state(self, running: bool = True) -> dict:
        """What the collector is doing, per source (written to ``collector.json``)."""
        now = time.time()
        sources = [followed.state(now) for followed in self.files.values()]
        if self._stdin is not None:
            sources.append(self._stdin.state())
        return {"pid": os.getpid(), "running": running, "updated": now, "started": self.started,
                "engine_ok": self.engine_ok, "last_error": self.last_error, "retries": self.retries,
                "failure": self.failure, "paused_reason": self.paused_reason,
                "sources": sources}

    def _write_state(self, force: bool = False, running: bool = True) -> None:
        if self.state_path is None:
            return
        now = time.monotonic()
        if not force and now - self._last_state < 0.5:
            return
        self._last_state = now
        write_state(self.state_path, self.state(running))


def collector_for(engine: "Engine", config: "Config", sources: Iterable[str],
                  echo: Callable[[str], None] | None = None) -> Collector:
    """The collector of ``sources`` as configured: flush interval, batch size, state, reconnection, reserve.

    `cairn collect` and the collector inside `cairn serve` are built the same way here.
    """
    return Collector(engine, sources, flush_interval=config["collector.flush_interval"],
                     batch_bytes=config["collector.batch_bytes"], state_dir=config.data_dir, echo=echo,
                     reconnect=reconnect_for(engine, config), reserve=disk_reserve(engine, config))


def reconnect_for(engine: "Engine", config: "Config") -> Callable[[], "Engine | None"] | None:
    """How a collector on ``engine`` gets its engine back after an outage, or None to keep it.

    Through a local `cairn serve` (it owns the data directory) the collector follows
    the server's restarts; any other engine reconnects by itself.
    """
    return served_engine(config) if engine.capabilities.via_serve else None


def install_signal_handlers(collector: Collector) -> None:
    """SIGTERM and SIGINT stop the collector cleanly (current insert finishes, positions commit)."""

    def handler(signum: int, frame: object) -> None:
        collector.stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
