"""The ClickHouse HTTP interface on the wire: requests in, status codes and encodings out.

Pure Python, no engine: what a request asks for (URL parameters split into transport
parameters, ClickHouse settings and query parameters; credentials from headers, Basic
auth or the URL), its body (length or chunked, gzip/deflate/zstd/lz4, size limits), the
compression of answers, the error a ClickHouse error code maps to, and the
``X-ClickHouse-Summary`` header.
"""

from __future__ import annotations

import base64
import json
import re
import uuid
import zlib
from dataclasses import dataclass, field
from typing import BinaryIO, Iterator, Mapping
from urllib.parse import parse_qsl, urlsplit

from cairn.engine.errors import error_message
from cairn.serve.inflate import DecodeError, inflate

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
_ENCODINGS = frozenset({"gzip", "x-gzip", "deflate", "zstd", "lz4"})
# query_id and session_id: echoed in headers or used as keys, so printable ASCII of bounded length
# (a CR/LF would let a client write its own response headers).
MAX_ID_LENGTH = 256
_ID = re.compile(r"^[\x20-\x7e]{1,%d}$" % MAX_ID_LENGTH)

# ClickHouse error code -> HTTP status, as ClickHouse's HTTP handler maps them.
# Authentication (src/Server/HTTP/exceptionCodeToHTTPStatus.cpp): a missing password is 401
# (REQUIRED_PASSWORD), a wrong one or an unknown user 403.
_STATUS = {516: 403, 193: 403, 194: 401, 192: 403, 164: 403, 497: 403, 60: 404, 81: 404, 394: 499, 159: 408,
           202: 503, 373: 423, 372: 404, 117: 400}
# 306 TOO_DEEP_RECURSION: ClickHouse reports a too deep query as TOO_DEEP_AST (400) from its
# parser; chDB raises 306 for the same text. 467 CANNOT_PARSE_BOOL: a bad setting value.
# 374 INVALID_SESSION_TIMEOUT.
_CLIENT_ERRORS = {62, 47, 46, 36, 43, 53, 6, 27, 72, 73, 26, 38, 41, 44, 49, 57, 70, 107, 115, 125, 184, 215,
                  352, 386, 396, 456, 457, 158, 393, 10, 16, 8, 167, 168, 306, 467, 374, 50}

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

    def __init__(self, code: int, message: str, name: str, status: int | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(error_message(code, message, name))
        self.code, self.status, self.headers = code, status, headers or {}


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
            result_bytes: int, elapsed: float, result_rows: int = 0) -> str:
    """The ``X-ClickHouse-Summary`` (and ``-Progress``) header: every number as a string, as ClickHouse.

    ``read_*`` are what the statement read from storage, ``result_*`` what it answered.
    """
    return json.dumps({"read_rows": str(read_rows), "read_bytes": str(read_bytes),
                       "written_rows": str(written_rows), "written_bytes": str(written_bytes),
                       "total_rows_to_read": str(total_rows), "result_rows": str(result_rows),
                       "result_bytes": str(result_bytes), "elapsed_ns": str(int(elapsed * 1e9))},
                      separators=(",", ":"))


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
    not_settings: frozenset[str] = frozenset()
    """Parameters that are neither transport nor settings (external tables' ``<name>_format``...)."""

    @classmethod
    def from_target(cls, target: str) -> "QueryRequest":
        """Parse a request target ("/?query=...&max_threads=1"); the last value of a name wins."""
        url = urlsplit(target)
        params = {name: value for name, value in parse_qsl(url.query, keep_blank_values=True, errors="surrogateescape")}
        params = {decode_param(name.encode("utf-8", "surrogateescape"), "replace"):
                  decode_param(value.encode("utf-8", "surrogateescape"),
                               "backslashreplace" if name.startswith("param_") else "replace")
                  for name, value in params.items()}
        _check_ids(params)
        return cls(url.path, params, params.get("query_id") or str(uuid.uuid4()))

    def with_form(self, fields: Mapping[str, str], not_settings: set[str]) -> "QueryRequest":
        """This request with the fields of its form body as parameters (a field wins over the URL)."""
        params = {**self.params, **fields}
        _check_ids(params)
        query_id = fields.get("query_id") or self.query_id
        return QueryRequest(self.path, params, query_id, frozenset(not_settings))

    def refuse_native_compression(self) -> None:
        """``compress=1`` / ``decompress=1`` (ClickHouse's own block framing): refused with a clear error."""
        for name in ("compress", "decompress"):
            if _flag(self.params.get(name)):
                raise HttpError(48, f"{name}=1 (ClickHouse's native compressed framing) is not supported by "
                                    f"cairn serve: use HTTP compression instead (Content-Encoding for the "
                                    f"request body; enable_http_compression=1 and Accept-Encoding for the "
                                    f"answer)", "NOT_IMPLEMENTED", status=400)

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
        settings = {k: v for k, v in self.params.items()
                    if k not in TRANSPORT_PARAMS and k not in self.not_settings and not k.startswith("param_")}
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

    def session_timeout(self, maximum: float | None = None) -> float | None:
        """The client session's idle timeout in seconds (None: the server's), at most ``maximum``.

        As ClickHouse: INVALID_SESSION_TIMEOUT (374) when not a number >= 0 or over
        ``max_session_timeout``.
        """
        value = self.params.get("session_timeout")
        if not value:
            return None
        try:
            timeout = float(value)
        except ValueError:
            timeout = float("nan")
        if not timeout >= 0 or timeout == float("inf"):
            raise HttpError(374, f"Invalid session timeout: '{value}'", "INVALID_SESSION_TIMEOUT")
        if maximum is not None and timeout > maximum:
            raise HttpError(374, f"Session timeout '{value}' is larger than max_session_timeout: {maximum:g}",
                            "INVALID_SESSION_TIMEOUT")
        return timeout

    @property
    def compress(self) -> bool:
        """``enable_http_compression``: the answer may be compressed per Accept-Encoding."""
        return _flag(self.params.get("enable_http_compression"))

    @property
    def send_progress(self) -> bool:
        """``send_progress_in_http_headers``: answers carry ``X-ClickHouse-Progress``."""
        return _flag(self.params.get("send_progress_in_http_headers"))

    @property
    def wait_end(self) -> bool:
        """``wait_end_of_query``: buffer the whole result before answering."""
        return _flag(self.params.get("wait_end_of_query"))


def decode_param(raw: bytes, errors: str) -> str:
    """A parameter's text. Query parameters (``param_x``) may be binary: ClickHouse reads them as
    escaped strings, so a byte that is not UTF-8 becomes ``\\xHH``, which the engine reads back as that byte."""
    return raw.decode("utf-8", errors)


def _check_ids(params: Mapping[str, str]) -> None:
    """query_id and session_id are echoed in headers: checked before any is written, logged in or not."""
    for name in ("query_id", "session_id"):
        value = params.get(name)
        if value and not _ID.match(value):
            raise HttpError(36, f"Invalid {name}: at most {MAX_ID_LENGTH} printable ASCII characters",
                            "BAD_ARGUMENTS")


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


_RAW_PIECE = 64 * 1024  # the most read from the socket at once


class RequestBody:
    """The request body, read lazily within size limits, decompressed per Content-Encoding.

    ``limit`` bounds the bytes sent; ``decoded_limit`` what they become once
    decompressed (checked piece by piece, before anything is buffered). The position in
    the stream is kept on the object, so that ``drain`` can finish reading a body a
    failed request left half-read and the connection stays in step.
    """

    def __init__(self, headers: Mapping[str, str], rfile: BinaryIO, limit: int, decoded_limit: int | None = None):
        self.rfile = rfile
        self.limit = limit
        self.decoded_limit = decoded_limit if decoded_limit is not None else limit
        self.limit_name = "serve.max_body_bytes"
        self.read_bytes = 0
        self.chunked = "chunked" in (headers.get("Transfer-Encoding") or "").lower()
        length = headers.get("Content-Length")
        try:
            self.remaining = int(length) if length is not None else (None if self.chunked else 0)
        except ValueError:
            raise HttpError(27, "Cannot parse Content-Length", "CANNOT_PARSE_INPUT_ASSERTION_FAILED") from None
        if self.remaining is not None and self.remaining < 0:
            raise HttpError(27, "Cannot parse Content-Length", "CANNOT_PARSE_INPUT_ASSERTION_FAILED")
        self._check_length()
        self.encoding = (headers.get("Content-Encoding") or "").strip().lower()
        self.consumed = False
        self.finished = not self.present  # everything the client sent has been read
        self.broken = False  # a framing error: where the next request starts is unknown
        self._chunk_left = 0
        self._in_chunk = False

    def _check_length(self) -> None:
        if self.remaining is not None and self.remaining > self.limit:
            raise _too_large(f"Request body is too large: {self.remaining} bytes, the limit is {self.limit} "
                             f"({self.limit_name})")

    def restrict(self, limit: int, decoded_limit: int, name: str) -> None:
        """Lower the limits (a restricted user's body is query text only); refuses a too long body now."""
        self.limit, self.decoded_limit = min(self.limit, limit), min(self.decoded_limit, decoded_limit)
        self.limit_name = name
        self._check_length()

    @property
    def present(self) -> bool:
        """Whether the client sent a body."""
        return self.chunked or bool(self.remaining)

    def raw_chunks(self) -> Iterator[bytes]:
        """The body as sent (still compressed), piece by piece."""
        self.consumed = True
        while True:
            data = self._next_raw()
            if data is None:
                return
            yield data

    def _next_raw(self) -> bytes | None:
        """The next piece of the body as sent, None at its end."""
        if self.finished:
            return None
        try:
            data = self._next_chunked() if self.chunked else self._next_sized()
        except HttpError:
            self.broken = True
            raise
        if data is None:
            self.finished = True
        return data

    def _next_sized(self) -> bytes | None:
        if not self.remaining:
            return None
        data = self.rfile.read(min(self.remaining, _RAW_PIECE))
        if not data:
            raise HttpError(33, "Unexpected end of request body", "CANNOT_READ_ALL_DATA")
        self.remaining -= len(data)
        self.read_bytes += len(data)
        return data

    def _next_chunked(self) -> bytes | None:
        rfile = self.rfile
        if not self._chunk_left:
            if self._in_chunk:
                rfile.readline(1024)  # the CRLF that ends a chunk
                self._in_chunk = False
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
                return None
            if self.read_bytes + size > self.limit:
                raise _too_large(f"Request body is too large: the limit is {self.limit} bytes ({self.limit_name})")
            self._chunk_left, self._in_chunk = size, True
        data = rfile.read(min(self._chunk_left, _RAW_PIECE))
        if not data:
            raise HttpError(33, "Unexpected end of chunked body", "CANNOT_READ_ALL_DATA")
        self._chunk_left -= len(data)
        self.read_bytes += len(data)
        if not self._chunk_left:
            rfile.readline(1024)
            self._in_chunk = False
        return data

    def chunks(self, decoded_limit: int | None = None) -> Iterator[bytes]:
        """Decompressed body pieces; refused (413) as soon as they pass ``decoded_limit``."""
        limit = self.decoded_limit if decoded_limit is None else decoded_limit
        enc = self.encoding
        if enc in ("", "identity"):
            pieces = self.raw_chunks()
        elif enc in _ENCODINGS:
            pieces = inflate(enc, self.raw_chunks())
        else:
            raise HttpError(48, f"Unknown Content-Encoding {enc!r}", "NOT_IMPLEMENTED", status=400)
        out = 0
        try:
            for piece in pieces:
                out += len(piece)
                # A small compressed body may expand enormously: bound what it becomes, piece by piece.
                if out > limit:
                    raise _too_large(f"Request body is too large once decompressed: the limit is {limit} bytes "
                                     f"({self.limit_name})")
                yield piece
        except DecodeError as exc:
            raise HttpError(271, f"Cannot decompress the request body ({enc}): {exc}", "CANNOT_DECOMPRESS",
                            status=400) from None

    def read_all(self, decoded_limit: int | None = None) -> bytes:
        """The whole decompressed body (within ``decoded_limit``, else the body's own)."""
        return b"".join(self.chunks(decoded_limit))

    def drain(self, budget: int = 16 << 20) -> bool:
        """Read what the client sent and was not used, so the connection stays in step.

        As ClickHouse does after an error. At most ``budget`` bytes are read: beyond, or
        when the body is broken, False says the connection must be closed instead.
        """
        if self.finished:
            return True
        if self.broken:
            return False
        start = self.read_bytes
        try:
            while self._next_raw() is not None:
                if self.read_bytes - start > budget:
                    return False
        except (HttpError, OSError, ValueError):
            return False
        return True


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
