"""Low-level chDB sessions on an embedded data directory: what `cairn serve` runs queries on.

A session is one raw chDB connection that runs SQL text exactly as the HTTP client
sent it and returns bytes in the requested format, so the server never decodes and
re-encodes results. It implements :class:`cairn.engine.contract.Session`.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

from cairn.engine.contract import RawResult
from cairn.engine.errors import engine_error
from cairn.engine.infile import infile_insert
from cairn.engine.sql import sql_string
from cairn.errors import EngineError, EngineUnavailable

_QUERY_TAG_RE = re.compile(r"[0-9a-f]{32}")
# The SETTINGS clause of an INSERT head: it must follow FROM INFILE, so it is moved there.
_INSERT_SETTINGS_RE = re.compile(r"\s+SETTINGS\s+(?=[A-Za-z_`][\w`]*\s*=)", re.I)


def split_insert_settings(statement: str) -> tuple[str, str]:
    """``("INSERT INTO t (a)", "x = 1")`` out of ``INSERT INTO t (a) SETTINGS x = 1``."""
    match = _INSERT_SETTINGS_RE.search(statement)
    if match is None:
        return statement.strip(), ""
    return statement[:match.start()].strip(), statement[match.end():].strip()


def _query_marker(tag: str) -> str:
    # At the end of the text, so that error positions ClickHouse reports stay those of the query.
    return f"/* cairn-query:{tag} */"


class RawStream:
    """A running query whose result arrives as byte chunks; ``cancel()`` stops it (thread-safe)."""

    def __init__(self, stream: Any, kill: Callable[[], None] | None = None):
        self._stream = stream
        self._kill = kill
        self._lock = threading.Lock()
        self.cancelled = False
        self.rows_read = 0
        self.bytes_read = 0

    def __iter__(self) -> Iterator[bytes]:
        while True:
            try:
                chunk = self._stream.fetch()
            except Exception as exc:
                if self.cancelled:
                    raise EngineError("Code: 394. DB::Exception: Query was cancelled. (QUERY_WAS_CANCELLED)",
                                      394) from None
                raise engine_error(exc) from None
            if chunk is None:
                return
            with contextlib.suppress(Exception):
                self.rows_read += int(chunk.rows_read())
                self.bytes_read += int(chunk.bytes_read())
            data = chunk.bytes()
            if data:
                yield data

    def cancel(self) -> None:
        """Stop the query (called from another thread when the client goes away)."""
        with self._lock:
            if self.cancelled:
                return
            self.cancelled = True
        # A query busy computing its first block does not see the stream's cancel until
        # that block is done; KILL QUERY (from another session) interrupts it right away.
        if self._kill is not None:
            with contextlib.suppress(Exception):
                self._kill()
        with contextlib.suppress(Exception):
            self._stream.cancel()

    def close(self) -> None:
        """Same as :meth:`cancel`: a stream closed before its end stops its query."""
        self.cancel()


class EmbeddedSession:
    """One chDB connection on an embedded data directory.

    Settings changed with ``SET`` stay for the life of the session, which is what
    restricted sessions rely on: their row filters and ``readonly = 1`` are set once
    at creation and the engine itself refuses any later change. One statement at a
    time per session; the caller serialises (the server keeps pools of sessions).

    The server keeps its bookkeeping of the connection's state on the session itself,
    in the attributes declared below.
    """

    created: float
    """``time.monotonic()`` at opening, for the server's idle and age limits."""
    current_db: str | None
    """The database the server last selected with ``USE``; None until it does."""
    url_settings: dict[str, str]
    """The URL settings the server last applied with ``SET`` (``{}`` while one is in flight,
    since a failed ``SET`` leaves the state unknown)."""

    def __init__(self, path: Path, setup: Sequence[str] = ()):
        import chdb

        try:
            self._conn = chdb.connect(str(path))
        except Exception as exc:
            raise EngineUnavailable(f"cannot open the embedded engine in {path}: {exc}") from None
        self.created = time.monotonic()
        self.current_db = None
        self.url_settings = {}
        self._kill_lock = threading.Lock()
        for statement in setup:
            self.execute(statement)

    def execute(self, sql: str, fmt: str = "TabSeparated", params: dict | None = None) -> RawResult:
        """Run one statement to completion and return its bytes."""
        try:
            res = self._conn.query(sql, fmt, params=params or None)
        except Exception as exc:
            raise engine_error(exc) from None
        out = RawResult(res.bytes() or b"")
        with contextlib.suppress(Exception):
            out.rows_read, out.bytes_read = int(res.rows_read()), int(res.bytes_read())
            out.rows_written, out.bytes_written = int(res.rows_written()), int(res.bytes_written())
            out.elapsed = float(res.elapsed())
        return out

    def stream(self, sql: str, fmt: str = "TabSeparated", params: dict | None = None,
               killer: "EmbeddedSession | None" = None) -> RawStream:
        """Start a query whose result is read chunk by chunk.

        With ``killer`` (another session), ``cancel()`` also runs KILL QUERY there, which
        stops the query even in the middle of computing a block.
        """
        kill = None
        if killer is not None:
            tag = uuid.uuid4().hex
            sql = f"{sql}\n{_query_marker(tag)}"
            kill = lambda: killer.kill(tag)  # noqa: E731
        try:
            return RawStream(self._conn.send_query(sql, fmt, params=params or None), kill)
        except Exception as exc:
            raise engine_error(exc) from None

    def kill(self, tag: str) -> None:
        """KILL the query that ``stream(..., killer=self)`` started with ``tag``."""
        if not _QUERY_TAG_RE.fullmatch(tag):
            raise ValueError("bad query tag")
        with self._kill_lock:
            # NOT startsWith: the KILL statement contains the marker too.
            self.execute(f"KILL QUERY WHERE position(query, {sql_string(_query_marker(tag))}) > 0 "
                         f"AND NOT startsWith(query, 'KILL') ASYNC")

    def insert(self, statement: str, fmt: str, chunks: Iterable[bytes]) -> RawResult:
        """Stream ``chunks`` (encoded in ``fmt``) into ``statement`` (``INSERT INTO t (cols) [SETTINGS ...]``).

        Runs as ``INSERT ... FROM INFILE`` a FIFO in a zstd frame
        (:func:`cairn.engine.infile.infile_insert`): any engine failure raises
        :class:`EngineError`, and when ``chunks`` itself fails half-way (a client
        gone, a body too large) the engine refuses the truncated data and that
        exception propagates unchanged, for the caller to answer. As with an HTTP
        INSERT to ClickHouse, an insert of several blocks may keep the blocks before
        the failure. ``rows_written`` is the engine's count: views' rows included.
        """
        head, settings = split_insert_settings(statement)
        res = infile_insert(self._run_insert, head, fmt, chunks, settings, framing="zstd")
        out = RawResult(b"")
        with contextlib.suppress(Exception):
            out.rows_written, out.bytes_written = int(res.rows_written()), int(res.bytes_written())
            out.elapsed = float(res.elapsed())
        return out

    def _run_insert(self, sql: str) -> Any:
        try:
            return self._conn.query(sql, "TabSeparated")
        except Exception as exc:
            raise engine_error(exc) from None

    def close(self) -> None:
        """Close the chDB connection."""
        with contextlib.suppress(Exception):
            self._conn.close()
