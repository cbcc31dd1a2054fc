"""Answers of `cairn serve` on one connection, in ClickHouse's form.

Headers every answer carries, errors with ``X-ClickHouse-Exception-Code``, summaries of
statements without a result, and results: buffered with Content-Length when small,
sent with chunked transfer encoding (optionally compressed) when large, as ClickHouse does.
A streamed result carries ``X-ClickHouse-Exception-Tag``: an error after its first bytes
is written in ClickHouse's (24.11+) framing, ``__exception__``, the tag, the message, its
length and the tag again, and the response is left unterminated (the client sees it broken).
"""

from __future__ import annotations

import contextlib
import secrets
import string
import time
from typing import TYPE_CHECKING, Callable, Iterable, Iterator, Protocol

from cairn.errors import EngineError
from cairn.serve.wire import Compressor, content_type, error_text, status_for, summary

if TYPE_CHECKING:  # pragma: no cover
    from cairn.serve.handler import ClickHouseHandler


_TAG_ALPHABET = string.ascii_letters + string.digits
# ClickHouse's tag length (WriteBufferFromHTTP1ServerResponse::EXCEPTION_TAG_LENGTH).
EXCEPTION_TAG_LENGTH = 16
# A result still running after this long is streamed as it comes (seconds).
STREAM_AFTER = 0.25


def exception_block(tag: str, message: str) -> bytes:
    """An error written into a result already under way, in ClickHouse's framing (24.11+).

    ``\r\n__exception__\r\n<tag>\r\n<message>\n<length of message> <tag>\r\n__exception__\r\n``:
    a client that knows the tag (``X-ClickHouse-Exception-Tag``) finds it even inside binary
    data, and the length tells where the message starts when read from the end.
    """
    text = message.rstrip("\n").encode("utf-8", "replace")
    return (b"\r\n__exception__\r\n" + tag.encode() + b"\r\n" + text + b"\n"
            + b"%d " % len(text) + tag.encode() + b"\r\n__exception__\r\n")


class ResultStream(Protocol):
    """A result the engine streams: chunks of the output format, then its read counters."""

    rows_read: int
    bytes_read: int
    result_rows: int

    def __iter__(self) -> Iterator[bytes]: ...


class Responder:
    """Writes the answer of one request through its handler (status line, headers, body)."""

    def __init__(self, handler: "ClickHouseHandler"):
        self.handler = handler
        self.progress = False
        """``send_progress_in_http_headers=1``: results carry ``X-ClickHouse-Progress``."""
        self.on_finish: Callable[[], None] | None = None
        """Called just before the last write of an answer (a client session may then be taken)."""
        self.error_filter: Callable[[str], str] = lambda text: text
        """What an error in the middle of a stream shows (restricted users: no MySQL details)."""
        self.failure: EngineError | None = None
        """The error that ended a stream after its first bytes (the answer was 200 all the same)."""

    def _finishing(self) -> None:
        if self.on_finish is not None:
            self.on_finish()

    def base_headers(self, query_id: str | None) -> dict[str, str]:
        """Headers of every answer: server name, timezone, query id, keep-alive or close."""
        server = self.handler.server
        headers = {"X-ClickHouse-Server-Display-Name": server.options.display_name,
                   "X-ClickHouse-Timezone": server.backend.timezone}
        if query_id:
            headers["X-ClickHouse-Query-Id"] = query_id
        if server.stopping:
            headers["Connection"] = "close"
        else:
            headers["Connection"] = "Keep-Alive"
            headers["Keep-Alive"] = f"timeout={self.handler.timeout}"
        return headers

    def send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        """A whole answer with Content-Length (no body for HEAD)."""
        handler = self.handler
        handler.send_response(status)
        for key, value in headers.items():
            handler.send_header(key, value)
        handler.send_header("Content-Length", str(len(body)))
        self._finishing()
        handler.end_headers()
        if handler.command != "HEAD":
            handler.wfile.write(body)
        if headers.get("Connection") == "close":
            handler.close_connection = True

    def send_ok(self) -> None:
        """ClickHouse's "Ok." of /ping and of a GET without a query."""
        self.send(200, b"Ok.\n", {"Content-Type": "text/html; charset=UTF-8", **self.base_headers(None)})

    def send_error(self, code: int | None, text: str, query_id: str | None, status: int | None = None) -> None:
        """An error in ClickHouse's format; its status follows the code unless given."""
        code, body = error_text(code, text)
        headers = self.base_headers(query_id)
        headers["Content-Type"] = "text/plain; charset=UTF-8"
        headers["X-ClickHouse-Exception-Code"] = str(code)
        if status == 413:
            # The body was not read: the connection cannot carry another request.
            headers["Connection"] = "close"
            headers.pop("Keep-Alive", None)
        self.send(status or status_for(code), body, headers)

    def send_summary(self, written_rows: int, written_bytes: int, query_id: str, read_rows: int = 0,
                     read_bytes: int = 0) -> None:
        """The empty answer of a statement without a result, with its counters."""
        headers = self.base_headers(query_id)
        headers["Content-Type"] = "text/plain; charset=UTF-8"
        self._add_summary(headers, summary(read_rows, read_bytes, written_rows, written_bytes, 0, 0, 0))
        self.send(200, b"", headers)

    def _add_summary(self, headers: dict[str, str], value: str) -> None:
        """The summary header, after a progress header with the same figures when asked for."""
        if self.progress:
            headers["X-ClickHouse-Progress"] = value
        headers["X-ClickHouse-Summary"] = value

    def result_headers(self, fmt: str, query_id: str) -> dict[str, str]:
        """Headers of a result in output format ``fmt``."""
        headers = self.base_headers(query_id)
        headers["X-ClickHouse-Format"] = fmt
        headers["Content-Type"] = content_type(fmt)
        return headers

    def send_result(self, data: bytes, fmt: str, query_id: str, summary_header: str | None = None) -> None:
        """A result the engine ran whole."""
        headers = self.result_headers(fmt, query_id)
        if summary_header is not None:
            self._add_summary(headers, summary_header)
        self.send(200, data, headers)

    def send_stream(self, stream: ResultStream, fmt: str, query_id: str, started: float, encoding: str | None,
                    limit: int, wait_end: bool) -> None:
        """A streamed result: buffered up to ``limit`` bytes (all with ``wait_end``), then chunked.

        A result still coming after ``STREAM_AFTER`` seconds is sent as it comes even when
        small, as ClickHouse sends each block of a slow query: the client sees the rows
        so far, and an error after them arrives in the tagged framing of a stream.
        """
        chunks = iter(stream)
        buffered: list[bytes] = []
        size = 0
        for chunk in chunks:
            buffered.append(chunk)
            size += len(chunk)
            if not wait_end and (size > limit or time.monotonic() - started > STREAM_AFTER):
                break
        else:
            headers = self.result_headers(fmt, query_id)
            self._add_summary(headers, summary(stream.rows_read, stream.bytes_read, 0, 0, 0, size,
                                               time.monotonic() - started, stream.result_rows))
            data = b"".join(buffered)
            if encoding:
                comp = Compressor(encoding)
                data = comp.feed(data) + comp.end()
                headers["Content-Encoding"] = encoding
            self.send(200, data, headers)
            return
        headers = self.result_headers(fmt, query_id)
        if self.progress:
            # What was read before the first bytes go out; the summary comes with no
            # trailer in HTTP/1.1 chunked answers of ClickHouse either.
            headers["X-ClickHouse-Progress"] = summary(stream.rows_read, stream.bytes_read, 0, 0, 0, size,
                                                       time.monotonic() - started, stream.result_rows)
        self._send_chunked(headers, encoding, buffered, chunks)

    def _send_chunked(self, headers: dict[str, str], encoding: str | None, buffered: list[bytes],
                      rest: Iterable[bytes]) -> None:
        """A large result with chunked transfer encoding, as ClickHouse sends it."""
        handler = self.handler
        tag = "".join(secrets.choice(_TAG_ALPHABET) for _ in range(EXCEPTION_TAG_LENGTH))
        handler.send_response(200)
        for key, value in headers.items():
            handler.send_header(key, value)
        if encoding:
            handler.send_header("Content-Encoding", encoding)
        handler.send_header("X-ClickHouse-Exception-Tag", tag)
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        comp = Compressor(encoding) if encoding else None
        wfile = handler.wfile

        def write(data: bytes) -> None:
            if comp:
                data = comp.feed(data)
            if data:
                wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

        try:
            for chunk in buffered:
                write(chunk)
            for chunk in rest:
                write(chunk)
            if comp:
                tail = comp.end()
                if tail:
                    wfile.write(b"%x\r\n%s\r\n" % (len(tail), tail))
            self._finishing()
            wfile.write(b"0\r\n\r\n")
        except EngineError as exc:
            # Headers are gone: as ClickHouse, the error goes into the body in the tagged
            # framing, and the response is left without its last chunk (broken on purpose).
            self.failure = exc
            text = self.error_filter(error_text(exc.code, str(exc))[1].decode("utf-8", "replace"))
            with contextlib.suppress(Exception):
                write(exception_block(tag, text))
                if comp:
                    tail = comp.end()
                    if tail:
                        wfile.write(b"%x\r\n%s\r\n" % (len(tail), tail))
                wfile.flush()
            handler.close_connection = True
