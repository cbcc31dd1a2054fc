"""`cairn serve`: the embedded datalake over the ClickHouse HTTP interface.

One process owns the embedded data directory and answers ClickHouse HTTP clients
(clickhouse-connect, its SQLAlchemy dialect / Superset, curl). Queries run on pools
of chDB sessions: one pool for admins, and one per restricted user whose sessions
carry that user's row filters and ``readonly = 1`` (see cairn/serve/access.py), so the
engine itself enforces them. The server also publishes an admin credential in
``<data_dir>/serve.json`` (mode 0600) through which the other `cairn` commands on
the same data directory keep working (cairn/engine.py ``open_engine``).
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import re
import secrets
import select
import socket
import threading
import time
import uuid
import zlib
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator
from urllib.parse import parse_qsl, urlsplit

from cairn.serve.access import AccessDenied, Scope, param_value, session_setup, sql_string
from cairn.serve.query_check import check_query
from cairn.engine import EmbeddedEngine, EmbeddedSession
from cairn.engine.served import ADMIN_USER, connect_host, write_serve_file
from cairn.errors import CairnError, EngineError
from cairn.serve.users import Authenticator, User, list_users

if TYPE_CHECKING:  # pragma: no cover
    from cairn.config import Config

log = logging.getLogger("cairn.serve")

VERSION = "26.9.2.1"
DEFAULT_FORMAT = "TabSeparated"

# URL parameters that belong to the HTTP layer, not to ClickHouse settings.
TRANSPORT_PARAMS = frozenset({
    "query", "database", "default_format", "query_id", "session_id", "session_timeout", "session_check",
    "user", "password", "quota_key", "compress", "decompress", "buffer_size", "wait_end_of_query",
    "enable_http_compression", "send_progress_in_http_headers", "http_headers_progress_interval_ms",
    "http_zlib_compression_level", "client_protocol_version", "role", "query_kind", "stacktrace",
    "http_wait_end_of_query", "http_response_buffer_size", "add_http_cors_header", "cancel_http_readonly_queries_on_client_close",
})
_SETTING_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_FORMAT_SUFFIX = re.compile(r" FORMAT (\w+)$")
RESULT_KINDS = ("SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXISTS", "EXPLAIN", "(")

# ClickHouse error code -> HTTP status, as ClickHouse's HTTP handler maps them.
_STATUS = {516: 401, 194: 401, 192: 401, 164: 403, 497: 403, 60: 404, 81: 404, 394: 499, 159: 408,
           202: 503, 373: 423, 372: 404, 117: 400}
_CLIENT_ERRORS = {62, 47, 46, 36, 43, 53, 6, 27, 72, 73, 26, 38, 41, 44, 49, 57, 70, 107, 115, 125, 184, 215,
                  352, 386, 396, 456, 457, 158, 393, 10, 16, 8}

_CONTENT_TYPES = {
    "tabseparated": "text/tab-separated-values; charset=UTF-8", "tsv": "text/tab-separated-values; charset=UTF-8",
    "csv": "text/csv; charset=UTF-8; header=absent", "csvwithnames": "text/csv; charset=UTF-8; header=present",
    "json": "application/json; charset=UTF-8", "jsoncompact": "application/json; charset=UTF-8",
    "jsoneachrow": "application/x-ndjson; charset=UTF-8", "native": "application/octet-stream",
    "rowbinary": "application/octet-stream", "rowbinarywithnamesandtypes": "application/octet-stream",
    "parquet": "application/octet-stream", "arrow": "application/octet-stream",
    "arrowstream": "application/octet-stream", "xml": "application/xml; charset=UTF-8",
}


class HttpError(Exception):
    """An error answered in ClickHouse's format."""

    def __init__(self, code: int, message: str, name: str, status: int | None = None):
        super().__init__(f"Code: {code}. DB::Exception: {message}. ({name})")
        self.code, self.status = code, status


def _status_for(code: int | None) -> int:
    if code is None:
        return 500
    return _STATUS.get(code, 400 if code in _CLIENT_ERRORS else 500)


@dataclass
class ServeOptions:
    """How `cairn serve` listens and behaves."""

    host: str = "127.0.0.1"
    port: int = 8123
    workers: int = 2
    max_body_bytes: int = 256 * 1024 * 1024
    display_name: str = "cairn"
    buffer_bytes: int = 1024 * 1024  # results up to this size are sent with Content-Length
    shutdown_grace: float = 10.0
    session_timeout: float = 60.0
    query_timeout: float = 300.0


@dataclass(frozen=True)
class Principal:
    """Who a request runs as."""

    name: str
    admin: bool
    scope: Scope = Scope()


# ---------------------------------------------------------------------------
# Session pools
# ---------------------------------------------------------------------------

class FairSlots:
    """A counting semaphore that serves waiters first come, first served.

    threading.Semaphore lets a newly arriving thread take a released slot before the
    threads already waiting: under a steady load of dashboard clients some requests then
    wait for tens of seconds. Here a released slot is handed to the oldest waiter.
    """

    def __init__(self, size: int):
        self._free = size
        self._lock = threading.Lock()
        self._waiters: deque[threading.Event] = deque()

    def __enter__(self) -> None:
        with self._lock:
            if self._free > 0 and not self._waiters:
                self._free -= 1
                return
            ticket = threading.Event()
            self._waiters.append(ticket)
        ticket.wait()

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            if self._waiters:
                self._waiters.popleft().set()  # the slot passes straight to the oldest waiter
            else:
                self._free += 1


class SessionPool:
    """At most ``size`` chDB sessions built by ``factory``; a request borrows one."""

    def __init__(self, factory: Callable[[], EmbeddedSession], size: int):
        self._factory = factory
        self._idle: list[EmbeddedSession] = []
        self._slots = threading.BoundedSemaphore(size)
        self._lock = threading.Lock()
        self.closed = False

    @contextlib.contextmanager
    def acquire(self) -> Iterator[EmbeddedSession]:
        self._slots.acquire()
        session = None
        try:
            with self._lock:
                session = self._idle.pop() if self._idle else None
            if session is None:
                session = self._factory()
            yield session
        except BaseException:
            # A failed statement leaves the session usable, but a cancelled or broken one
            # may not be: drop it rather than hand it to the next request.
            if session is not None:
                session.close()
                session = None
            raise
        finally:
            if session is not None:
                with self._lock:
                    if self.closed:
                        session.close()
                    else:
                        self._idle.append(session)
            self._slots.release()

    def close(self) -> None:
        with self._lock:
            self.closed = True
            idle, self._idle = self._idle, []
        for session in idle:
            session.close()


@dataclass
class NamedSession:
    """A client session (``session_id``): one chDB session kept between requests."""

    session: EmbeddedSession
    owner: str
    timeout: float
    lock: threading.Lock = field(default_factory=threading.Lock)
    last_used: float = field(default_factory=time.monotonic)
    state: tuple = ()  # (scope, tables) the session's filters were built from


class Backend:
    """Sessions on the embedded engine, per principal."""

    def __init__(self, engine: EmbeddedEngine, options: ServeOptions):
        self.engine = engine
        self.database = engine.database
        self.options = options
        self._lock = threading.Lock()
        self._admin_pool = SessionPool(lambda: self._open([]), options.workers)
        self._user_pools: dict[tuple, SessionPool] = {}
        self._slots = FairSlots(options.workers)
        self._checks: "OrderedDict[tuple, Any]" = OrderedDict()
        self._normalised: "OrderedDict[str, str]" = OrderedDict()
        self._named: dict[tuple[str, str], NamedSession] = {}
        self._tables: tuple[str, ...] = ()
        self._tables_at = float("-inf")
        with self._admin_pool.acquire() as session:
            self.timezone = session.execute("SELECT timezone()").data.decode().strip() or "UTC"
        # Runs KILL QUERY for cancelled queries (client gone, shutdown).
        self.killer = self._open([])
        self._meta = self._open([])
        self._meta_lock = threading.Lock()

    def _open(self, setup: list[str]) -> EmbeddedSession:
        session = self.engine.open_session([f"USE `{self.database}`", *setup])
        session.current_db = self.database
        return session

    def tables(self) -> tuple[str, ...]:
        """Tables and views of the datalake database (re-read at most once a second)."""
        with self._lock:
            if time.monotonic() - self._tables_at < 1.0:
                return self._tables
        # Its own session: pooled ones carry the URL settings of their last request
        # (max_result_rows=10 would break this listing).
        with self._meta_lock:
            raw = self._meta.execute("SELECT name FROM system.tables WHERE database = {db:String} ORDER BY name",
                                     "TabSeparatedRaw", {"db": self.database}).data.decode()
        tables = tuple(line for line in raw.split("\n") if line)
        with self._lock:
            self._tables, self._tables_at = tables, time.monotonic()
        return tables

    def normalised(self, session: EmbeddedSession, sql: str) -> str:
        """ClickHouse's single-line form of ``sql`` ("" when it does not parse), remembered."""
        with self._lock:
            hit = self._normalised.get(sql)
            if hit is not None:
                self._normalised.move_to_end(sql)
                return hit
        try:
            text = session.execute("SELECT formatQuerySingleLine({q:String})", "TabSeparatedRaw",
                                   {"q": param_value(sql)}).data.decode("utf-8").rstrip("\n")
        except EngineError:
            return ""  # the engine reports its own error when it runs the text
        if len(sql) < 65536:
            with self._lock:
                self._normalised[sql] = text
                while len(self._normalised) > 2048:
                    self._normalised.popitem(last=False)
        return text

    def checked(self, principal: Principal, tables: tuple[str, ...], sql: str, default_format: str | None,
                params: dict, check: Callable[[], Any]) -> Any:
        """The access check of a query, remembered: dashboards send the same queries again and again.

        The key holds everything the decision depends on (user scope, the datalake's
        tables, the text, the parameters, the format); refusals are not cached.
        """
        key = (principal.name, principal.scope, tables, sql, default_format, tuple(sorted(params.items())))
        with self._lock:
            hit = self._checks.get(key)
            if hit is not None:
                self._checks.move_to_end(key)
                return hit
        result = check()
        with self._lock:
            self._checks[key] = result
            while len(self._checks) > 2048:
                self._checks.popitem(last=False)
        return result

    def _restricted_setup(self, principal: Principal, tables: tuple[str, ...]) -> list[str]:
        return session_setup(principal.scope, self.database, tables,
                                                          self.options.query_timeout)

    def pool_for(self, principal: Principal, tables: tuple[str, ...]) -> SessionPool:
        """The pool of sessions that run this principal's queries."""
        if principal.admin:
            return self._admin_pool
        # The filters cover the tables that existed when the sessions were made: a new
        # table (or a changed scope) gets a new pool, never an unfiltered table.
        key = (principal.name, principal.scope, tables)
        with self._lock:
            pool = self._user_pools.get(key)
            if pool is None:
                stale = [k for k in self._user_pools if k[0] == principal.name]
                for k in stale:
                    self._user_pools.pop(k).close()
                setup = self._restricted_setup(principal, tables)
                pool = SessionPool(lambda: self._open(setup), self.options.workers)
                self._user_pools[key] = pool
            return pool

    @contextlib.contextmanager
    def session(self, principal: Principal, session_id: str | None, tables: tuple[str, ...],
                timeout: float | None, check: bool = False) -> Iterator[tuple[EmbeddedSession, bool]]:
        """A session for one request: the client's named session, or one from the pool.

        Yields (session, named).
        """
        # At most `workers` statements run in the engine at once, whoever sends them, so
        # that a burst of dashboard clients queues here instead of thrashing the cores.
        # The collector's inserts and KILL QUERY do not take a slot.
        with self._slots:
            if not session_id:
                with self.pool_for(principal, tables).acquire() as session:
                    yield session, False
                return
            with self._named_session(principal, session_id, tables, timeout, check) as session:
                yield session, True

    @contextlib.contextmanager
    def _named_session(self, principal: Principal, session_id: str, tables: tuple[str, ...],
                       timeout: float | None, check: bool) -> Iterator[EmbeddedSession]:
        key = (principal.name, session_id)
        state = (principal.admin, principal.scope, () if principal.admin else tables)
        with self._lock:
            named = self._named.get(key)
            if named is not None and named.state != state and not named.lock.locked():
                # The user's scope or the datalake's tables changed since the session was
                # made: its filters are stale, start a fresh one (as a new login would).
                self._named.pop(key).session.close()
                named = None
            if named is None:
                if check:
                    raise HttpError(372, f"Session {session_id} not found", "SESSION_NOT_FOUND")
                setup = [] if principal.admin else self._restricted_setup(principal, tables)
                named = NamedSession(self._open(setup), principal.name,
                                     timeout or self.options.session_timeout, state=state)
                self._named[key] = named
        # A client sends its next request as soon as it has read a response, possibly
        # before the previous request's thread has released the session: wait a little.
        if not named.lock.acquire(timeout=10):
            raise HttpError(373, f"Session {session_id} is locked by a concurrent client", "SESSION_IS_LOCKED")
        try:
            yield named.session
        finally:
            named.last_used = time.monotonic()
            if timeout:
                named.timeout = timeout
            named.lock.release()

    def expire_sessions(self) -> None:
        now = time.monotonic()
        with self._lock:
            expired = [k for k, s in self._named.items()
                       if now - s.last_used > s.timeout and not s.lock.locked()]
            gone = [self._named.pop(k) for k in expired]
        for named in gone:
            named.session.close()

    def close(self) -> None:
        with self._lock:
            pools = [self._admin_pool, *self._user_pools.values()]
            named = list(self._named.values())
            self._user_pools.clear()
            self._named.clear()
        for pool in pools:
            pool.close()
        for n in named:
            n.session.close()
        self.killer.close()
        self._meta.close()


# ---------------------------------------------------------------------------
# HTTP
# ---------------------------------------------------------------------------

class _Monitor(threading.Thread):
    """Cancels the queries of clients that went away; expires idle client sessions."""

    def __init__(self, server: "CairnHTTPServer"):
        super().__init__(name="cairn-serve-monitor", daemon=True)
        self.server = server
        self._watched: dict[int, tuple[socket.socket, Any]] = {}
        self._lock = threading.Lock()
        self.stop = threading.Event()

    def watch(self, sock: socket.socket, stream: Any) -> int:
        token = id(stream)
        with self._lock:
            self._watched[token] = (sock, stream)
        return token

    def unwatch(self, token: int) -> None:
        with self._lock:
            self._watched.pop(token, None)

    def cancel_all(self) -> None:
        with self._lock:
            streams = [s for _, s in self._watched.values()]
        for stream in streams:
            stream.cancel()

    def run(self) -> None:
        last_expiry = time.monotonic()
        while not self.stop.wait(0.1):
            with self._lock:
                items = list(self._watched.items())
            for token, (sock, stream) in items:
                if _peer_closed(sock):
                    log.info("client went away: cancelling its query")
                    stream.cancel()
                    self.unwatch(token)
            if time.monotonic() - last_expiry > 1.0:
                last_expiry = time.monotonic()
                with contextlib.suppress(Exception):
                    self.server.backend.expire_sessions()


def _peer_closed(sock: socket.socket) -> bool:
    """True when the client closed its side (readable with nothing to read)."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
        if not readable:
            return False
        return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except (OSError, ValueError):
        return True


class CairnHTTPServer(ThreadingHTTPServer):
    """The listening server: a thread per connection (HTTP/1.1 keep-alive)."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], backend: Backend, authenticator: Authenticator,
                 admin_password: str, options: ServeOptions):
        self.backend = backend
        self.authenticator = authenticator
        self.admin_password = admin_password
        self.options = options
        self.stopping = False
        self.active = 0
        self.active_lock = threading.Condition()
        self.monitor = _Monitor(self)
        super().__init__(address, ClickHouseHandler)

    def authenticate(self, user: str, password: str) -> Principal:
        """The principal of these credentials, or the error ClickHouse gives (516)."""
        if user == ADMIN_USER:
            if secrets.compare_digest(password.encode("utf-8", "surrogatepass"),
                                      self.admin_password.encode()):
                return Principal(ADMIN_USER, True)
        else:
            account: User | None = self.authenticator.authenticate(user, password)
            if account is not None:
                return Principal(account.name, account.admin, account.scope)
        raise HttpError(516, f"{user}: Authentication failed: password is incorrect, or there is no user "
                             f"with such name", "AUTHENTICATION_FAILED")


class _Body:
    """The request body, read lazily with the size limit, decompressed per Content-Encoding."""

    def __init__(self, handler: "ClickHouseHandler", limit: int):
        self.handler = handler
        self.limit = limit
        self.read_bytes = 0
        headers = handler.headers
        self.chunked = "chunked" in (headers.get("Transfer-Encoding") or "").lower()
        length = headers.get("Content-Length")
        try:
            self.remaining = int(length) if length is not None else (None if self.chunked else 0)
        except ValueError:
            raise HttpError(27, "Cannot parse Content-Length", "CANNOT_PARSE_INPUT_ASSERTION_FAILED") from None
        if self.remaining is not None and self.remaining > limit:
            raise HttpError(307, f"Request body is too large: {self.remaining} bytes, the limit is {limit} "
                                 f"(serve.max_body_bytes)", "TOO_LARGE_STRING_SIZE", status=413)
        self.encoding = (headers.get("Content-Encoding") or "").strip().lower()
        self.consumed = False

    @property
    def present(self) -> bool:
        return self.chunked or bool(self.remaining)

    def raw_chunks(self) -> Iterator[bytes]:
        rfile = self.handler.rfile
        self.consumed = True
        if self.chunked:
            while True:
                line = rfile.readline(1024)
                if not line:
                    raise HttpError(33, "Unexpected end of chunked body", "CANNOT_READ_ALL_DATA")
                try:
                    size = int(line.split(b";")[0].strip(), 16)
                except ValueError:
                    raise HttpError(27, "Malformed chunked body", "CANNOT_PARSE_INPUT_ASSERTION_FAILED") from None
                if size == 0:
                    while rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass
                    return
                self._count(size)
                data = rfile.read(size)
                rfile.readline(1024)
                if len(data) < size:
                    raise HttpError(33, "Unexpected end of chunked body", "CANNOT_READ_ALL_DATA")
                yield data
        else:
            remaining = self.remaining or 0
            while remaining > 0:
                data = rfile.read(min(remaining, 1 << 20))
                if not data:
                    raise HttpError(33, "Unexpected end of request body", "CANNOT_READ_ALL_DATA")
                remaining -= len(data)
                self.read_bytes += len(data)
                yield data

    def _count(self, n: int) -> None:
        self.read_bytes += n
        if self.read_bytes > self.limit:
            raise HttpError(307, f"Request body is too large: the limit is {self.limit} bytes "
                                 f"(serve.max_body_bytes)", "TOO_LARGE_STRING_SIZE", status=413)

    def chunks(self) -> Iterator[bytes]:
        """Decompressed body chunks."""
        enc = self.encoding
        if enc in ("", "identity"):
            yield from self.raw_chunks()
            return
        if enc in ("gzip", "deflate", "x-gzip"):
            decomp = zlib.decompressobj(wbits=47 if "gzip" in enc else 15)
            feed, end = decomp.decompress, decomp.flush
        elif enc in ("zstd", "lz4"):
            feed, end = _multi_frame(enc), (lambda: b"")
        else:
            raise HttpError(48, f"Unknown Content-Encoding {enc!r}", "NOT_IMPLEMENTED", status=400)
        out = 0
        try:
            for chunk in self.raw_chunks():
                data = feed(chunk)
                out += len(data)
                if out > self.limit * 4:
                    raise HttpError(307, "Decompressed request body is too large", "TOO_LARGE_STRING_SIZE", 413)
                if data:
                    yield data
            tail = end()
            if tail:
                yield tail
        except HttpError:
            raise
        except Exception as exc:
            raise HttpError(271, f"Cannot decompress the request body ({enc}): {exc}", "CANNOT_DECOMPRESS",
                            status=400) from None

    def read_all(self) -> bytes:
        return b"".join(self.chunks())

    def drain(self) -> None:
        """Read what the client sent and we did not use, so the connection stays in sync."""
        if not self.consumed and self.present:
            with contextlib.suppress(HttpError, OSError):
                for _ in self.raw_chunks():
                    pass


def _multi_frame(encoding: str) -> Callable[[bytes], bytes]:
    """A decompressor for a body made of one or more concatenated zstd / lz4 frames.

    clickhouse-connect compresses each block of an insert as its own frame.
    """
    if encoding == "zstd":
        import zstandard

        make = lambda: zstandard.ZstdDecompressor().decompressobj()  # noqa: E731
    else:
        import lz4.frame

        make = lz4.frame.LZ4FrameDecompressor
    state = {"d": make()}

    def feed(data: bytes) -> bytes:
        out = []
        while data:
            decomp = state["d"]
            out.append(decomp.decompress(data))
            if getattr(decomp, "eof", False):
                data = decomp.unused_data
                state["d"] = make()
            else:
                data = b""
        return b"".join(out)

    return feed


_INLINE_FORMAT = re.compile(rb"\bFORMAT[ \t\r\n]+([A-Za-z][A-Za-z0-9_]*)[ \t]*(?:\r?\n|$)", re.I)


def _split_inline_insert(raw: bytes) -> tuple[str, bytes] | None:
    """Split "INSERT ... FORMAT X<newline><data>" into statement and data, else None.

    Only a routing guess: the statement part is then parsed by ClickHouse (which must
    find an INSERT ending in that FORMAT) before anything runs.
    """
    head = raw[:65536]
    if not re.match(rb"\s*(?:/\*.*?\*/\s*|--[^\n]*\n\s*)*INSERT\b", head, re.I | re.S):
        return None
    match = _INLINE_FORMAT.search(head)
    if match is None:
        return None
    try:
        statement = raw[:match.end(1)].decode("utf-8")
    except UnicodeDecodeError:
        return None
    return statement, raw[match.end():]


class _BytesBody:
    """Insert data already in memory (split off a query body)."""

    def __init__(self, data: bytes):
        self.data = data

    def chunks(self) -> Iterator[bytes]:
        yield self.data

    def read_all(self) -> bytes:
        return self.data


class _Compressor:
    def __init__(self, encoding: str):
        self.encoding = encoding
        if encoding == "gzip":
            obj = zlib.compressobj(6, zlib.DEFLATED, 31)
            self.feed, self.end = obj.compress, obj.flush
        elif encoding == "deflate":
            obj = zlib.compressobj(6)
            self.feed, self.end = obj.compress, obj.flush
        elif encoding == "zstd":
            import zstandard

            obj = zstandard.ZstdCompressor().compressobj()
            self.feed, self.end = obj.compress, obj.flush
        elif encoding == "lz4":
            import lz4.frame

            obj = lz4.frame.LZ4FrameCompressor()
            first = [obj.begin()]

            def feed(data: bytes) -> bytes:
                head = first.pop() if first else b""
                return head + obj.compress(data)

            self.feed, self.end = feed, lambda: (first.pop() if first else b"") + obj.flush()
        else:  # pragma: no cover - guarded by _choose_encoding
            raise ValueError(encoding)


def _choose_encoding(accept: str) -> str | None:
    offered = [part.split(";")[0].strip().lower() for part in (accept or "").split(",")]
    for encoding in ("lz4", "zstd", "gzip", "deflate"):
        if encoding in offered:
            return encoding
    return None


class ClickHouseHandler(BaseHTTPRequestHandler):
    """One HTTP connection speaking ClickHouse's HTTP interface."""

    protocol_version = "HTTP/1.1"
    server_version = "cairn"
    sys_version = ""
    timeout = 120  # idle keep-alive connections are closed after this
    # Headers and body go out in separate writes: without TCP_NODELAY, Nagle's algorithm
    # and the client's delayed ACK add ~40 ms to every response.
    disable_nagle_algorithm = True
    server: CairnHTTPServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        log.debug("%s " + format, self.address_string(), *args)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Malformed HTTP (bad request line, headers): a plain ClickHouse-style error, then close."""
        self.request_version = "HTTP/1.1"  # answer with a status line even to garbage
        self.close_connection = True
        text = f"Code: 1000. DB::Exception: {message or 'Bad request'}. (BAD_REQUEST) (version {VERSION})\n"
        body = text.encode("utf-8", "replace")
        with contextlib.suppress(OSError):
            self.send_response(code, message)
            self.send_header("Content-Type", "text/plain; charset=UTF-8")
            self.send_header("X-ClickHouse-Exception-Code", "1000")
            self.send_header("Connection", "close")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD" and code >= 200 and code not in (204, 304):
                self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        self._handle()

    def do_POST(self) -> None:  # noqa: N802
        self._handle()

    def do_HEAD(self) -> None:  # noqa: N802
        self._handle()

    def do_OPTIONS(self) -> None:  # noqa: N802
        self._send(204, b"", {})

    # -- plumbing --------------------------------------------------------
    def _base_headers(self, query_id: str | None) -> dict[str, str]:
        headers = {"X-ClickHouse-Server-Display-Name": self.server.options.display_name,
                   "X-ClickHouse-Timezone": self.server.backend.timezone}
        if query_id:
            headers["X-ClickHouse-Query-Id"] = query_id
        if self.server.stopping:
            headers["Connection"] = "close"
        else:
            headers["Connection"] = "Keep-Alive"
            headers["Keep-Alive"] = f"timeout={self.timeout}"
        return headers

    def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        if headers.get("Connection") == "close":
            self.close_connection = True

    def _send_error(self, code: int | None, text: str, query_id: str | None, status: int | None = None) -> None:
        code = code if code is not None else 1000
        if not text.startswith("Code: "):
            text = f"Code: {code}. DB::Exception: {text}"
        body = f"{text} (version {VERSION})\n".encode()
        headers = self._base_headers(query_id)
        headers["Content-Type"] = "text/plain; charset=UTF-8"
        headers["X-ClickHouse-Exception-Code"] = str(code)
        if status == 413:
            # The body was not read: the connection cannot carry another request.
            headers["Connection"] = "close"
            headers.pop("Keep-Alive", None)
        self._send(status or _status_for(code), body, headers)

    # -- the request -----------------------------------------------------
    def _handle(self) -> None:
        server = self.server
        with server.active_lock:
            server.active += 1
        query_id: str | None = None
        body: _Body | None = None
        try:
            url = urlsplit(self.path)
            params: dict[str, str] = {}
            for key, value in parse_qsl(url.query, keep_blank_values=True):
                params[key] = value
            query_id = params.get("query_id") or str(uuid.uuid4())
            if server.stopping:
                raise HttpError(202, "The server is shutting down", "ABORTED", status=503)
            if url.path in ("/ping", "/replicas_status"):
                self._send(200, b"Ok.\n", {"Content-Type": "text/html; charset=UTF-8",
                                            **self._base_headers(None)})
                return
            if url.path not in ("/", "", "/query"):
                raise HttpError(1000, f"There is no handle {url.path}", "BAD_REQUEST", status=404)
            body = _Body(self, server.options.max_body_bytes)
            if "query" not in params and not body.present:
                # GET / with no query: ClickHouse's "Ok." (used as a liveness probe).
                self._send(200, b"Ok.\n", {"Content-Type": "text/html; charset=UTF-8", **self._base_headers(None)})
                return
            principal = server.authenticate(*self._credentials(params))
            self._run(principal, params, body, query_id)
        except HttpError as exc:
            if body is not None:
                body.drain()
            self._send_error(exc.code, str(exc), query_id, exc.status)
        except EngineError as exc:
            if body is not None:
                body.drain()
            self._send_error(exc.code, str(exc), query_id)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as exc:  # never let one request take the server down
            log.exception("internal error")
            with contextlib.suppress(Exception):
                self._send_error(1001, f"Code: 1001. DB::Exception: {type(exc).__name__}: {exc}. (STD_EXCEPTION)",
                                 query_id)
            self.close_connection = True
        finally:
            with server.active_lock:
                server.active -= 1
                server.active_lock.notify_all()

    def _credentials(self, params: dict[str, str]) -> tuple[str, str]:
        headers = self.headers
        user = headers.get("X-ClickHouse-User")
        key = headers.get("X-ClickHouse-Key")
        auth = headers.get("Authorization") or ""
        if auth.lower().startswith("basic "):
            try:
                decoded = base64.b64decode(auth[6:].strip(), validate=True).decode("utf-8")
            except Exception:
                raise HttpError(516, "Malformed Basic authorization header", "AUTHENTICATION_FAILED") from None
            basic_user, _, basic_password = decoded.partition(":")
            if user is not None and user != basic_user:
                raise HttpError(516, "Different credentials in Authorization and X-ClickHouse-User",
                                "AUTHENTICATION_FAILED")
            user, key = basic_user, basic_password
        if user is None:
            user = params.get("user")
        if key is None:
            key = params.get("password")
        # No credentials at all: ClickHouse's anonymous "default" user, which does not exist here.
        return user or "default", key or ""

    def _run(self, principal: Principal, params: dict[str, str], body: _Body, query_id: str) -> None:
        server = self.server
        backend = server.backend
        text_param = params.get("query")
        settings = {k: v for k, v in params.items()
                    if k not in TRANSPORT_PARAMS and not k.startswith("param_")}
        for name in settings:
            if not _SETTING_NAME.match(name):
                raise HttpError(115, f"Unknown setting {name}", "UNKNOWN_SETTING")
        query_params = {k[6:]: v for k, v in params.items() if k.startswith("param_")}
        default_format = params.get("default_format") or None
        database = params.get("database") or None
        session_id = params.get("session_id") or None
        try:
            session_timeout = float(params["session_timeout"]) if params.get("session_timeout") else None
        except ValueError:
            raise HttpError(36, "Invalid session timeout", "INVALID_SESSION_TIMEOUT") from None

        insert_body: Any = None
        if text_param is None:
            raw = body.read_all()
            split = _split_inline_insert(raw) if principal.admin else None
            if split is not None:
                # "INSERT ... FORMAT X\n<data>" in one body (clickhouse-connect sends small
                # inserts this way): the data part may be binary, so it must not be decoded.
                sql, data = split
                insert_body = _BytesBody(data)
            else:
                sql = raw.decode("utf-8", "replace")
        elif body.present:
            insert_body = body
            sql = text_param
        else:
            sql = text_param
        if not sql.strip():
            raise HttpError(62, "Empty query", "SYNTAX_ERROR")

        tables = backend.tables()
        if not principal.admin and database not in (None, backend.database):
            raise AccessDenied(f"{principal.name}: Not enough privileges to use database {database}")
        with backend.session(principal, session_id, tables, session_timeout,
                             check=params.get("session_check") == "1") as (session, named):
            if database and getattr(session, "current_db", None) != database:
                session.execute(f"USE `{database.replace('`', '')}`")
                session.current_db = database
            elif not database and named is False and getattr(session, "current_db", None) not in (None,
                                                                                                 backend.database):
                session.execute(f"USE `{backend.database}`")
                session.current_db = backend.database
            self._apply_settings(session, principal, settings)
            if principal.admin:
                self._run_admin(session, named, sql, insert_body, query_params, default_format, query_id,
                                params)
            else:
                if insert_body is not None:
                    # ClickHouse appends the body to the query text; for a read-only user
                    # that can only be a SELECT, checked like any other.
                    sql = sql + "\n" + insert_body.read_all().decode("utf-8", "replace")
                checked = backend.checked(principal, tables, sql, default_format, query_params,
                                          lambda: check_query(session, sql, backend.database, tables,
                                                              default_format, query_params))
                fmt = checked.fmt or default_format or DEFAULT_FORMAT
                self._run_result(session, checked.sql, fmt, query_params, query_id, params)

    def _apply_settings(self, session: EmbeddedSession, principal: Principal, settings: dict[str, str]) -> None:
        """Make the session's URL settings exactly this request's (as in ClickHouse: per query).

        A pooled session remembers what the previous request set: only the difference is
        sent, in one SET, and settings the previous request had and this one does not go
        back to their defaults. Restricted sessions are read-only: the engine refuses any
        change (code 164), and a value equal to the session's own is accepted.
        """
        if not principal.admin:
            if settings:
                session.execute("SET " + ", ".join(f"{k} = {sql_string(v)}" for k, v in settings.items()))
            return
        # A readonly admin request would pin the pooled session read-only: ignored;
        # admins may still SET it inside their own named session.
        settings = {k: v for k, v in settings.items() if k != "readonly"}
        applied: dict[str, str] = getattr(session, "url_settings", {})
        changes = [f"{name} = DEFAULT" for name in applied if name not in settings]
        changes += [f"{name} = {sql_string(value)}" for name, value in settings.items() if applied.get(name) != value]
        if changes:
            session.url_settings = {}  # unknown state until the SET succeeds
            session.execute("SET " + ", ".join(changes))
        session.url_settings = dict(settings)

    def _run_admin(self, session: EmbeddedSession, named: bool, sql: str, insert_body: _Body | None,
                   query_params: dict, default_format: str | None, query_id: str, params: dict) -> None:
        normalised = self.server.backend.normalised(session, sql)
        match = _FORMAT_SUFFIX.search(normalised)
        fmt = match.group(1) if match else None
        keyword = normalised.split(" ", 1)[0].upper() if normalised else ""
        if insert_body is not None and isinstance(insert_body, _BytesBody) and not (keyword == "INSERT" and match):
            # Not an "INSERT ... FORMAT" after all: run the whole body as text.
            sql = sql + "\n" + insert_body.read_all().decode("utf-8", "replace")
            insert_body = None
        if insert_body is not None and keyword == "INSERT":
            core = normalised[:match.start()] if match else normalised
            result = session.insert(core, fmt or "Values", insert_body.chunks())
            self._send_summary(result.rows_written, result.bytes_written, query_id)
            return
        if insert_body is not None:
            sql = sql + "\n" + insert_body.read_all().decode("utf-8", "replace")
        if keyword in ("SET", "USE") and not named:
            # Outside a session these change nothing lasting (as in ClickHouse): check them
            # on a throwaway session so the pooled one keeps its state.
            throwaway = self.server.backend.engine.open_session()
            try:
                throwaway.execute(sql, params=query_params)
            finally:
                throwaway.close()
            self._send_summary(0, 0, query_id)
            return
        if keyword.startswith(RESULT_KINDS) or not normalised:
            self._run_result(session, sql, fmt or default_format or DEFAULT_FORMAT, query_params, query_id, params)
            return
        result = session.execute(sql, default_format or DEFAULT_FORMAT, query_params)
        if keyword == "INSERT" or not result.data:
            self._send_summary(result.rows_written, result.bytes_written, query_id, result.rows_read,
                               result.bytes_read)
        else:
            headers = self._base_headers(query_id)
            headers["X-ClickHouse-Format"] = default_format or DEFAULT_FORMAT
            headers["Content-Type"] = _CONTENT_TYPES.get((default_format or DEFAULT_FORMAT).lower(),
                                                         "text/plain; charset=UTF-8")
            self._send(200, result.data, headers)

    def _send_summary(self, written_rows: int, written_bytes: int, query_id: str, read_rows: int = 0,
                      read_bytes: int = 0) -> None:
        headers = self._base_headers(query_id)
        headers["Content-Type"] = "text/plain; charset=UTF-8"
        headers["X-ClickHouse-Summary"] = _summary(read_rows, read_bytes, written_rows, written_bytes, 0, 0, 0)
        self._send(200, b"", headers)

    def _run_result(self, session: EmbeddedSession, sql: str, fmt: str, query_params: dict, query_id: str,
                    params: dict) -> None:
        """Run a statement with a result and send it: buffered when small, streamed otherwise."""
        started = time.monotonic()
        if not _streamable(sql):
            # chDB streams SELECTs only (not DESCRIBE, SHOW, EXISTS, EXPLAIN): run them whole.
            result = session.execute(sql, fmt, query_params)
            headers = self._base_headers(query_id)
            headers["X-ClickHouse-Format"] = fmt
            headers["Content-Type"] = _CONTENT_TYPES.get(fmt.lower(), "text/plain; charset=UTF-8")
            headers["X-ClickHouse-Summary"] = _summary(result.rows_read, result.bytes_read, 0, 0, 0,
                                                       len(result.data), time.monotonic() - started)
            self._send(200, result.data, headers)
            return
        stream = session.stream(sql, fmt, query_params, killer=self.server.backend.killer)
        monitor = self.server.monitor
        token = monitor.watch(self.connection, stream)
        encoding = None
        if params.get("enable_http_compression") in ("1", "true"):
            encoding = _choose_encoding(self.headers.get("Accept-Encoding", ""))
        wait_end = params.get("wait_end_of_query") in ("1", "true")
        limit = self.server.options.buffer_bytes
        try:
            chunks = iter(stream)
            buffered: list[bytes] = []
            size = 0
            finished = False
            while True:
                chunk = next(chunks, None)
                if chunk is None:
                    finished = True
                    break
                buffered.append(chunk)
                size += len(chunk)
                if size > limit and not wait_end:
                    break
            headers = self._base_headers(query_id)
            headers["X-ClickHouse-Format"] = fmt
            headers["Content-Type"] = _CONTENT_TYPES.get(fmt.lower(), "text/plain; charset=UTF-8")
            if finished:
                headers["X-ClickHouse-Summary"] = _summary(stream.rows_read, stream.bytes_read, 0, 0, 0, size,
                                                           time.monotonic() - started)
                data = b"".join(buffered)
                if encoding:
                    comp = _Compressor(encoding)
                    data = comp.feed(data) + comp.end()
                    headers["Content-Encoding"] = encoding
                self._send(200, data, headers)
                return
            # Large result: stream it with chunked transfer encoding as ClickHouse does.
            self.send_response(200)
            for key, value in headers.items():
                self.send_header(key, value)
            if encoding:
                self.send_header("Content-Encoding", encoding)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            comp = _Compressor(encoding) if encoding else None

            def write(data: bytes) -> None:
                if comp:
                    data = comp.feed(data)
                if data:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

            try:
                for chunk in buffered:
                    write(chunk)
                for chunk in chunks:
                    write(chunk)
                if comp:
                    tail = comp.end()
                    if tail:
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(tail), tail))
                self.wfile.write(b"0\r\n\r\n")
            except EngineError as exc:
                # Headers are gone: ClickHouse appends the error text to the body and
                # breaks the connection so that the client sees a truncated response.
                with contextlib.suppress(Exception):
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(str(exc)) + 1, str(exc).encode() + b"\n"))
                self.close_connection = True
        except (BrokenPipeError, ConnectionResetError):
            stream.cancel()
            raise
        finally:
            monitor.unwatch(token)
            stream.close()


_STREAMABLE = re.compile(r"^\s*(?:/\*.*?\*/\s*|--[^\n]*\n\s*)*[(\s]*(SELECT|WITH)\b", re.I | re.S)


def _streamable(sql: str) -> bool:
    # Only a routing decision (stream or run whole), never an access decision: a wrong
    # guess gives chDB's "Streaming query is not supported" error, nothing more.
    return bool(_STREAMABLE.match(sql))


def _summary(read_rows: int, read_bytes: int, written_rows: int, written_bytes: int, total_rows: int,
             result_bytes: int, elapsed: float) -> str:
    return json.dumps({"read_rows": str(read_rows), "read_bytes": str(read_bytes),
                       "written_rows": str(written_rows), "written_bytes": str(written_bytes),
                       "total_rows_to_read": str(total_rows), "result_rows": "0",
                       "result_bytes": str(result_bytes), "elapsed_ns": str(int(elapsed * 1e9))})


# ---------------------------------------------------------------------------
# The service
# ---------------------------------------------------------------------------

class CairnService:
    """Everything `cairn serve` runs: engine, migrations, HTTP server, collectors."""

    def __init__(self, config: "Config", options: ServeOptions, log_line: Callable[[str], None] = print):
        self.config = config
        self.options = options
        self.say = log_line
        self.engine: EmbeddedEngine | None = None
        self.httpd: CairnHTTPServer | None = None
        self.collectors: list[Any] = []
        self._serve_file: Path | None = None
        self._stopped = threading.Event()

    def start(self) -> tuple[str, int]:
        """Open the engine, migrate, start listening (and the collectors); returns the address."""
        from cairn.schema.migrator import Migrator

        if self.config.engine != "embedded":
            raise CairnError("`cairn serve` serves the embedded engine; with engine = server use ClickHouse itself")
        self.engine = EmbeddedEngine(self.config.data_dir, self.config.database)
        report = Migrator(self.engine, self.config).run()
        applied = sum(1 for status, _ in report.steps if status == "APPLY")
        if applied:
            self.say(f"applied {applied} pending migration(s)")
        backend = Backend(self.engine, self.options)
        database = self.config.database
        authenticator = Authenticator(lambda: list_users(self.engine) if self.engine else [])
        admin_password = secrets.token_urlsafe(32)
        try:
            self.httpd = CairnHTTPServer((self.options.host, self.options.port), backend, authenticator,
                                         admin_password, self.options)
        except OSError as exc:
            backend.close()
            raise CairnError(f"cannot listen on {self.options.host}:{self.options.port}: {exc.strerror}") from None
        host, port = self.httpd.server_address[:2]
        self._serve_file = write_serve_file(self.config.data_dir, self.options.host, port, admin_password)
        self.httpd.monitor.start()
        self._start_collectors()
        self.say(f"serving {database} ({self.engine.describe()}) on http://{connect_host(host)}:{port}")
        return host, port

    def _start_collectors(self) -> None:
        """Follow the configured tracking logs in this process (cairn/ingest/collector.py).

        The collector writes through this process's embedded engine, exactly as
        `cairn collect` does on its own; it stops (committing its positions) with the server.
        """
        sources = [s for s in self.config["collector.sources"] if s != "-"]  # no stdin for a server
        if not sources:
            return
        from cairn.ingest.collector import Collector

        collector = Collector(self.engine, sources, flush_interval=self.config["collector.flush_interval"],
                              batch_bytes=self.config["collector.batch_bytes"], state_dir=self.config.data_dir,
                              echo=self.say)
        thread = threading.Thread(target=collector.run, name="cairn-collector", daemon=True)
        thread.start()
        self.collectors.append((collector, thread))
        self.say(f"collecting {', '.join(sources)}")

    def serve_forever(self) -> None:
        """Serve until ``stop()`` (SIGTERM / Ctrl-C call it)."""
        assert self.httpd is not None
        try:
            self.httpd.serve_forever(poll_interval=0.2)
        finally:
            self._stopped.set()

    def stop(self) -> None:
        """Stop accepting, finish (then cancel) running queries, stop collectors, release the data."""
        httpd = self.httpd
        if httpd is not None and not httpd.stopping:
            httpd.stopping = True
            threading.Thread(target=httpd.shutdown, daemon=True).start()
            deadline = time.monotonic() + self.options.shutdown_grace
            with httpd.active_lock:
                while httpd.active and time.monotonic() < deadline:
                    httpd.active_lock.wait(0.1)
            if httpd.active:
                httpd.monitor.cancel_all()
                with httpd.active_lock:
                    end = time.monotonic() + 5
                    while httpd.active and time.monotonic() < end:
                        httpd.active_lock.wait(0.1)
            httpd.monitor.stop.set()
            self._stopped.wait(5)
            httpd.server_close()
        for collector, thread in self.collectors:
            collector.stop.set()
        for collector, thread in self.collectors:
            thread.join(30)  # the collector commits its positions on the way out
        self.collectors.clear()
        if httpd is not None:
            httpd.backend.close()
        if self._serve_file is not None:
            with contextlib.suppress(OSError):
                self._serve_file.unlink()
            self._serve_file = None
        if self.engine is not None:
            self.engine.close()
            self.engine = None
