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
from cairn.engine.errors import clickhouse_error, engine_error
from cairn.engine.infile import infile_insert
from cairn.engine.sql import sql_string
from cairn.errors import EngineError, EngineUnavailable

# ABORTED: what every statement answers once ClickHouse's fatal-signal handler ran.
ENGINE_FAILED = 236
_QUERY_TAG_RE = re.compile(r"[0-9a-f]{32}")
# The SETTINGS clause of an INSERT head: it must follow FROM INFILE, so it is moved there.
_INSERT_SETTINGS_RE = re.compile(r"\s+SETTINGS\s+(?=[A-Za-z_`][\w`]*\s*=)", re.I)


def split_insert_settings(statement: str) -> tuple[str, str]:
    """``("INSERT INTO t (a)", "x = 1")`` out of ``INSERT INTO t (a) SETTINGS x = 1``."""
    match = _INSERT_SETTINGS_RE.search(statement)
    if match is None:
        return statement.strip(), ""
    return statement[:match.start()].strip(), statement[match.end():].strip()


def _engine_text(sql: str) -> str | bytes:
    """``sql`` as chDB takes it: bytes when it carries bytes that are not UTF-8 (as surrogates)."""
    try:
        sql.encode("utf-8")
    except UnicodeEncodeError:
        return sql.encode("utf-8", "surrogateescape")
    return sql


def new_query_tag() -> str:
    """A fresh marker for a statement that may be killed by ``EmbeddedSession.kill``."""
    return uuid.uuid4().hex


def _query_marker(tag: str) -> str:
    # At the end of the text, so that error positions ClickHouse reports stay those of the query.
    return f"/* cairn-query:{tag} */"


class RawStream:
    """A running query whose result arrives as byte chunks.

    Only the thread that owns the session may iterate, ``cancel()`` or ``close()`` the
    stream, and it must do so before the session is closed or reused: chDB dereferences
    a null connection when a stream of a closed connection is fetched or cancelled,
    and the engine then answers code 236 to everything (issue 12, finding 1). Any
    other thread (the server's monitor, shutdown) calls ``interrupt()``, which never
    touches the chDB stream: it runs KILL QUERY from the killer session, and the
    owner's fetch then fails with code 394.
    """

    def __init__(self, stream: Any, kill: Callable[[], None] | None = None,
                 rerun: Callable[[], bytes] | None = None,
                 on_error: Callable[[BaseException], EngineError] = engine_error, gate: Any = None):
        self._stream = stream
        self._gate = gate if gate is not None else contextlib.nullcontext()
        self._kill = kill
        self._rerun = rerun
        self._error = on_error
        self._lock = threading.Lock()  # serialises every chDB call on this stream
        self._interrupted = threading.Event()
        self._done = False
        self.cancelled = False
        self.rows_read = 0
        self.bytes_read = 0
        self.result_rows = 0

    def __iter__(self) -> Iterator[bytes]:
        sent = False
        while True:
            with self._lock:
                if self._done:
                    return
                if self._interrupted.is_set():
                    self._done = True
                    with contextlib.suppress(Exception):
                        self._stream.cancel()
                    raise _cancelled()
                try:
                    with self._gate:
                        data = self._fetch()
                except Exception as exc:
                    self._done = True
                    with contextlib.suppress(Exception):
                        self._stream._exhausted = True  # chDB ended the query itself: nothing to cancel
                    if self.cancelled:
                        raise _cancelled() from None
                    raise self._error(exc) from None
                if data is None:
                    self._done = True
            if data is None:
                if not sent and self._rerun is not None and not _has_raw_fetch(self._stream):
                    # chDB's public fetch() drops the header-only document of an empty
                    # result; without the private call, run the query whole to get it.
                    data = self._rerun()
                    if data:
                        yield data
                return
            if data:
                sent = True
                yield data

    def _fetch(self) -> bytes | None:
        """The next chunk's bytes (None at the end); called with ``_lock`` held."""
        stream = self._stream
        if _has_raw_fetch(stream):
            # chDB's StreamingResult.fetch() ends the stream at a chunk of 0 rows, which
            # for an empty result is the header-only document (JSON meta, CSV header,
            # Parquet schema): the C++ stream ends with a chunk of no bytes instead.
            # Private API (chdb-core 26.9.0), guarded by tests/unit/test_serve_formats.py.
            chunk = stream._conn.streaming_fetch_result(stream._result)
            data = chunk.bytes() if chunk is not None else b""
            if not data:
                stream._exhausted = True  # the C++ side has ended the query
                with contextlib.suppress(Exception):
                    stream._cleanup_progress_callback_once()
                return None
        else:
            chunk = stream.fetch()
            if chunk is None:
                return None
            data = chunk.bytes() or b""
        with contextlib.suppress(Exception):
            # Rows and bytes read from storage, as ClickHouse's X-ClickHouse-Summary
            # (rows_read() counts the chunk's result rows).
            self.rows_read += int(chunk.storage_rows_read())
            self.bytes_read += int(chunk.storage_bytes_read())
            self.result_rows += int(chunk.rows_read())
        return data

    def interrupt(self) -> None:
        """Stop the query from any thread (client gone, shutdown); never touches the chDB stream.

        A query busy computing a block does not see a cancel until that block is done;
        KILL QUERY (from another session) interrupts it right away and the owner's
        fetch then fails with code 394.
        """
        if self._interrupted.is_set():
            return
        self._interrupted.set()
        self.cancelled = True
        if self._kill is not None:
            with contextlib.suppress(Exception):
                self._kill()

    def cancel(self) -> None:
        """Stop the query now: the owner thread only, before its session is released."""
        self.cancelled = True
        with self._lock:
            if not self._done:
                self._done = True
                with contextlib.suppress(Exception):
                    self._stream.cancel()

    def close(self) -> None:
        """Same as :meth:`cancel`: a stream closed before its end stops its query."""
        self.cancel()


def _has_raw_fetch(stream: Any) -> bool:
    """Whether chDB's stream exposes the low-level fetch that keeps header-only chunks."""
    return hasattr(stream, "_result") and hasattr(getattr(stream, "_conn", None), "streaming_fetch_result")


def _cancelled() -> EngineError:
    return clickhouse_error(394, "Query was cancelled", "QUERY_WAS_CANCELLED")


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
    gate: Any = contextlib.nullcontext()
    """Held around each engine call that computes (a statement run whole, each fetch of a
    stream): the server's bound on statements computing at once. Not held while a result
    is written to its client, so a slow reader never keeps others waiting."""
    on_fatal: Callable[[str], None] | None = None
    """Called with the error text when the engine answers code 236 (it failed for good:
    chDB's crash handler left it refusing everything; only a new process recovers)."""

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
        self.closed = False
        for statement in setup:
            self.execute(statement)

    def execute(self, sql: str, fmt: str = "TabSeparated", params: dict | None = None) -> RawResult:
        """Run one statement to completion and return its bytes.

        ``rows_read``/``bytes_read`` are what the statement read from storage (as
        ClickHouse's ``X-ClickHouse-Summary``); ``result_rows`` the rows of its result.
        """
        return self.execute_marked(sql, fmt, params)

    def execute_marked(self, sql: str, fmt: str = "TabSeparated", params: dict | None = None,
                       tag: str | None = None) -> RawResult:
        """:meth:`execute`, the statement marked with ``tag`` (from :func:`new_query_tag`) so
        that ``kill(tag)`` on another session stops it."""
        if tag is not None:
            sql = f"{sql}\n{_query_marker(tag)}"
        try:
            with self.gate:
                res = self._live().query(_engine_text(sql), fmt, params=params or None)
        except Exception as exc:
            raise self._error(exc) from None
        out = RawResult(res.bytes() or b"")
        out.result_rows = 0  # type: ignore[attr-defined]
        with contextlib.suppress(Exception):
            out.rows_read, out.bytes_read = int(res.storage_rows_read()), int(res.storage_bytes_read())
            out.result_rows = int(res.rows_read())  # type: ignore[attr-defined]
            out.rows_written, out.bytes_written = int(res.rows_written()), int(res.bytes_written())
            out.elapsed = float(res.elapsed())
        return out

    def stream(self, sql: str, fmt: str = "TabSeparated", params: dict | None = None,
               killer: "EmbeddedSession | None" = None) -> RawStream:
        """Start a query whose result is read chunk by chunk.

        With ``killer`` (another session), ``cancel()`` also runs KILL QUERY there, which
        stops the query even in the middle of computing a block.
        """
        return self.stream_marked(sql, fmt, params, killer)

    def stream_marked(self, sql: str, fmt: str = "TabSeparated", params: dict | None = None,
                      killer: "EmbeddedSession | None" = None, tag: str | None = None) -> RawStream:
        """:meth:`stream`, killed by ``tag`` (from :func:`new_query_tag`; a new one when not given)."""
        kill = None
        if killer is not None:
            tag = tag or new_query_tag()
            sql = f"{sql}\n{_query_marker(tag)}"
            kill = lambda: killer.kill(tag)  # noqa: E731
        try:
            with self.gate:
                started = self._live().send_query(_engine_text(sql), fmt, params=params or None)
            return RawStream(started, kill, rerun=lambda: self.execute(sql, fmt, params).data,
                             on_error=self._error, gate=self.gate)
        except Exception as exc:
            raise self._error(exc) from None

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
            return self._live().query(sql, "TabSeparated")
        except Exception as exc:
            raise self._error(exc) from None

    def _error(self, exc: BaseException) -> EngineError:
        """The EngineError of a chDB failure; code 236 (the engine failed for good) is reported."""
        error = engine_error(exc)
        if error.code == ENGINE_FAILED and self.on_fatal is not None:
            with contextlib.suppress(Exception):
                self.on_fatal(str(error))
        return error

    def _live(self) -> Any:
        """The chDB connection; refused once closed (chDB would dereference a null pointer)."""
        if self.closed:
            raise clickhouse_error(1000, "the session is closed", "CAIRN_SESSION_CLOSED")
        return self._conn

    def close(self) -> None:
        """Close the chDB connection (no stream of it may be fetched or cancelled afterwards)."""
        self.closed = True
        with contextlib.suppress(Exception):
            self._conn.close()

    def close_after_kills(self, timeout: float = 5.0) -> bool:
        """Close once no KILL runs on this session (a killer shared by threads); False if one still does."""
        if not self._kill_lock.acquire(timeout=timeout):
            return False
        try:
            self.close()
        finally:
            self._kill_lock.release()
        return True
