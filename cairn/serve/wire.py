"""The ClickHouse HTTP interface on the wire: requests in, status codes and encodings out.

Pure Python, no engine: what a request asks for (URL parameters split into transport
parameters, ClickHouse settings and query parameters; credentials from headers, Basic
auth or the URL), its body (length or chunked, gzip/deflate/zstd/lz4, size limits), the
compression of answers, the error a ClickHouse error code maps to, and the
``X-ClickHouse-Summary`` header.
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
import uuid
import zlib
from dataclasses import dataclass, field
from typing import BinaryIO, Callable, Iterator, Mapping
from urllib.parse import parse_qsl, urlsplit

VERSION = "26.9.2.1"

# URL parameters that belong to the HTTP layer, not to ClickHouse settings.
TRANSPORT_PARAMS = frozenset({
    "query", "database", "default_format", "query_id", "session_id", "session_timeout", "session_check",
    "user", "password", "quota_key", "compress", "decompress", "buffer_size", "wait_end_of_query",
    "enable_http_compression", "send_progress_in_http_headers", "http_headers_progress_interval_ms",
    "http_zlib_compression_level", "client_protocol_version", "role", "query_kind", "stacktrace",
    "http_wait_end_of_query", "http_response_buffer_size", "add_http_cors_header", "cancel_http_readonly_queries_on_client_close",
})
_SETTING_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

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
    """An error answered in ClickHouse's format (``status`` overrides the one of the code)."""

    def __init__(self, code: int, message: str, name: str, status: int | None = None):
        super().__init__(f"Code: {code}. DB::Exception: {message}. ({name})")
        self.code, self.status = code, status


def status_for(code: int | None) -> int:
    """The HTTP status ClickHouse answers a ClickHouse error code with."""
    if code is None:
        return 500
    return _STATUS.get(code, 400 if code in _CLIENT_ERRORS else 500)


def error_text(code: int | None, text: str) -> tuple[int, bytes]:
    """(exception code, body) of an error answer, in ClickHouse's wording."""
    code = code if code is not None else 1000
    if not text.startswith("Code: "):
        text = f"Code: {code}. DB::Exception: {text}"
    return code, f"{text} (version {VERSION})\n".encode()


def content_type(fmt: str) -> str:
    """The Content-Type of an answer in output format ``fmt``."""
    return _CONTENT_TYPES.get(fmt.lower(), "text/plain; charset=UTF-8")


def summary(read_rows: int, read_bytes: int, written_rows: int, written_bytes: int, total_rows: int,
            result_bytes: int, elapsed: float) -> str:
    """The ``X-ClickHouse-Summary`` header (ClickHouse sends every number as a string)."""
    return json.dumps({"read_rows": str(read_rows), "read_bytes": str(read_bytes),
                       "written_rows": str(written_rows), "written_bytes": str(written_bytes),
                       "total_rows_to_read": str(total_rows), "result_rows": "0",
                       "result_bytes": str(result_bytes), "elapsed_ns": str(int(elapsed * 1e9))})


# ---------------------------------------------------------------------------
# The request line and headers
# ---------------------------------------------------------------------------

def _flag(value: str | None) -> bool:
    return value in ("1", "true")


@dataclass
class QueryRequest:
    """What the URL of a request asks for; settings are validated when read."""

    path: str
    params: dict[str, str] = field(default_factory=dict)
    query_id: str = ""

    @classmethod
    def from_target(cls, target: str) -> "QueryRequest":
        """Parse a request target ("/?query=...&max_threads=1"); the last value of a name wins."""
        url = urlsplit(target)
        params = dict(parse_qsl(url.query, keep_blank_values=True))
        return cls(url.path, params, params.get("query_id") or str(uuid.uuid4()))

    @property
    def is_ping(self) -> bool:
        """ClickHouse's liveness endpoints."""
        return self.path in ("/ping", "/replicas_status")

    @property
    def is_query(self) -> bool:
        """The paths that take a query."""
        return self.path in ("/", "", "/query")

    @property
    def query(self) -> str | None:
        """The ``query`` parameter (None: the query is the body)."""
        return self.params.get("query")

    def settings(self) -> dict[str, str]:
        """The ClickHouse settings of the request: every parameter that is not transport or ``param_``."""
        settings = {k: v for k, v in self.params.items() if k not in TRANSPORT_PARAMS and not k.startswith("param_")}
        for name in settings:
            if not _SETTING_NAME.match(name):
                raise HttpError(115, f"Unknown setting {name}", "UNKNOWN_SETTING")
        return settings

    @property
    def query_params(self) -> dict[str, str]:
        """Values of the query's ``{name:Type}`` placeholders (``param_name=...``)."""
        return {k[6:]: v for k, v in self.params.items() if k.startswith("param_")}

    @property
    def default_format(self) -> str | None:
        """The output format when the query has no FORMAT clause (None: TabSeparated)."""
        return self.params.get("default_format") or None

    @property
    def database(self) -> str | None:
        """The database the query runs in (None: the datalake's)."""
        return self.params.get("database") or None

    @property
    def session_id(self) -> str | None:
        """The client session to run in (None: a pooled session)."""
        return self.params.get("session_id") or None

    @property
    def session_check(self) -> bool:
        """``session_check=1``: the session must exist already."""
        return self.params.get("session_check") == "1"

    def session_timeout(self) -> float | None:
        """The client session's idle timeout in seconds (None: the server's)."""
        value = self.params.get("session_timeout")
        try:
            return float(value) if value else None
        except ValueError:
            raise HttpError(36, "Invalid session timeout", "INVALID_SESSION_TIMEOUT") from None

    @property
    def compress(self) -> bool:
        """``enable_http_compression``: the answer may be compressed per Accept-Encoding."""
        return _flag(self.params.get("enable_http_compression"))

    @property
    def wait_end(self) -> bool:
        """``wait_end_of_query``: buffer the whole result before answering."""
        return _flag(self.params.get("wait_end_of_query"))


def credentials(headers: Mapping[str, str], params: Mapping[str, str]) -> tuple[str, str]:
    """(user, password) from X-ClickHouse-User/Key, Basic auth or the URL, in ClickHouse's order."""
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


# ---------------------------------------------------------------------------
# Request bodies
# ---------------------------------------------------------------------------

def _too_large(message: str) -> HttpError:
    return HttpError(307, message, "TOO_LARGE_STRING_SIZE", status=413)


class RequestBody:
    """The request body, read lazily with the size limit, decompressed per Content-Encoding."""

    def __init__(self, headers: Mapping[str, str], rfile: BinaryIO, limit: int):
        self.rfile = rfile
        self.limit = limit
        self.read_bytes = 0
        self.chunked = "chunked" in (headers.get("Transfer-Encoding") or "").lower()
        length = headers.get("Content-Length")
        try:
            self.remaining = int(length) if length is not None else (None if self.chunked else 0)
        except ValueError:
            raise HttpError(27, "Cannot parse Content-Length", "CANNOT_PARSE_INPUT_ASSERTION_FAILED") from None
        if self.remaining is not None and self.remaining > limit:
            raise _too_large(f"Request body is too large: {self.remaining} bytes, the limit is {limit} "
                             f"(serve.max_body_bytes)")
        self.encoding = (headers.get("Content-Encoding") or "").strip().lower()
        self.consumed = False

    @property
    def present(self) -> bool:
        """Whether the client sent a body."""
        return self.chunked or bool(self.remaining)

    def raw_chunks(self) -> Iterator[bytes]:
        """The body as sent (still compressed), chunk by chunk."""
        self.consumed = True
        if self.chunked:
            yield from self._chunked()
            return
        remaining = self.remaining or 0
        while remaining > 0:
            data = self.rfile.read(min(remaining, 1 << 20))
            if not data:
                raise HttpError(33, "Unexpected end of request body", "CANNOT_READ_ALL_DATA")
            remaining -= len(data)
            self.read_bytes += len(data)
            yield data

    def _chunked(self) -> Iterator[bytes]:
        rfile = self.rfile
        while True:
            line = rfile.readline(1024)
            if not line:
                raise HttpError(33, "Unexpected end of chunked body", "CANNOT_READ_ALL_DATA")
            try:
                size = int(line.split(b";")[0].strip(), 16)
            except ValueError:
                raise HttpError(27, "Malformed chunked body", "CANNOT_PARSE_INPUT_ASSERTION_FAILED") from None
            if size == 0:
                while rfile.readline(1024) not in (b"\r\n", b"\n", b""):  # trailers
                    pass
                return
            self.read_bytes += size
            if self.read_bytes > self.limit:
                raise _too_large(f"Request body is too large: the limit is {self.limit} bytes (serve.max_body_bytes)")
            data = rfile.read(size)
            rfile.readline(1024)
            if len(data) < size:
                raise HttpError(33, "Unexpected end of chunked body", "CANNOT_READ_ALL_DATA")
            yield data

    def chunks(self) -> Iterator[bytes]:
        """Decompressed body chunks."""
        enc = self.encoding
        if enc in ("", "identity"):
            yield from self.raw_chunks()
            return
        feed, end = decompressor(enc)
        out = 0
        try:
            for chunk in self.raw_chunks():
                data = feed(chunk)
                out += len(data)
                # A small compressed body may expand enormously: bound what it becomes too.
                if out > self.limit * 4:
                    raise _too_large("Decompressed request body is too large")
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
        """The whole decompressed body."""
        return b"".join(self.chunks())

    def drain(self) -> None:
        """Read what the client sent and we did not use, so the connection stays in sync."""
        if not self.consumed and self.present:
            with contextlib.suppress(HttpError, OSError):
                for _ in self.raw_chunks():
                    pass


class BytesBody:
    """Insert data already in memory (split off a query body)."""

    def __init__(self, data: bytes):
        self.data = data

    def chunks(self) -> Iterator[bytes]:
        """The data, as one chunk."""
        yield self.data

    def read_all(self) -> bytes:
        """The data."""
        return self.data


# ---------------------------------------------------------------------------
# Compression
# ---------------------------------------------------------------------------

def decompressor(encoding: str) -> tuple[Callable[[bytes], bytes], Callable[[], bytes]]:
    """(feed, end) of a streaming decompressor for a Content-Encoding, or HttpError 48."""
    if encoding in ("gzip", "deflate", "x-gzip"):
        decomp = zlib.decompressobj(wbits=47 if "gzip" in encoding else 15)
        return decomp.decompress, decomp.flush
    if encoding in ("zstd", "lz4"):
        return _multi_frame(encoding), (lambda: b"")
    raise HttpError(48, f"Unknown Content-Encoding {encoding!r}", "NOT_IMPLEMENTED", status=400)


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


class Compressor:
    """A streaming compressor for an answer's Content-Encoding: ``feed(data)`` then ``end()``."""

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
        else:  # pragma: no cover - guarded by choose_encoding
            raise ValueError(encoding)


def choose_encoding(accept: str) -> str | None:
    """The answer's Content-Encoding for an Accept-Encoding header (ClickHouse prefers lz4, zstd)."""
    offered = [part.split(";")[0].strip().lower() for part in (accept or "").split(",")]
    for encoding in ("lz4", "zstd", "gzip", "deflate"):
        if encoding in offered:
            return encoding
    return None
