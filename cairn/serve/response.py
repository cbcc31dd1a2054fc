"""Answers of `cairn serve` on one connection, in ClickHouse's form.

Headers every answer carries, errors with ``X-ClickHouse-Exception-Code``, summaries of
statements without a result, and results: buffered with Content-Length when small,
sent with chunked transfer encoding (optionally compressed) when large, as ClickHouse does.
"""

from __future__ import annotations

import contextlib
import time
from typing import TYPE_CHECKING, Iterable, Iterator, Protocol

from cairn.errors import EngineError
from cairn.serve.wire import Compressor, content_type, error_text, status_for, summary

if TYPE_CHECKING:  # pragma: no cover
    from cairn.serve.handler import ClickHouseHandler


class ResultStream(Protocol):
    """A result the engine streams: chunks of the output format, then its read counters."""

    rows_read: int
    bytes_read: int

    def __iter__(self) -> Iterator[bytes]: ...


class Responder:
    """Writes the answer of one request through its handler (status line, headers, body)."""

    def __init__(self, handler: "ClickHouseHandler"):
        self.handler = handler

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
        headers["X-ClickHouse-Summary"] = summary(read_rows, read_bytes, written_rows, written_bytes, 0, 0, 0)
        self.send(200, b"", headers)

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
            headers["X-ClickHouse-Summary"] = summary_header
        self.send(200, data, headers)

    def send_stream(self, stream: ResultStream, fmt: str, query_id: str, started: float, encoding: str | None,
                    limit: int, wait_end: bool) -> None:
        """A streamed result: buffered up to ``limit`` bytes (all with ``wait_end``), then chunked."""
        chunks = iter(stream)
        buffered: list[bytes] = []
        size = 0
        for chunk in chunks:
            buffered.append(chunk)
            size += len(chunk)
            if size > limit and not wait_end:
                break
        else:
            headers = self.result_headers(fmt, query_id)
            headers["X-ClickHouse-Summary"] = summary(stream.rows_read, stream.bytes_read, 0, 0, 0, size,
                                                      time.monotonic() - started)
            data = b"".join(buffered)
            if encoding:
                comp = Compressor(encoding)
                data = comp.feed(data) + comp.end()
                headers["Content-Encoding"] = encoding
            self.send(200, data, headers)
            return
        self._send_chunked(self.result_headers(fmt, query_id), encoding, buffered, chunks)

    def _send_chunked(self, headers: dict[str, str], encoding: str | None, buffered: list[bytes],
                      rest: Iterable[bytes]) -> None:
        """A large result with chunked transfer encoding, as ClickHouse sends it."""
        handler = self.handler
        handler.send_response(200)
        for key, value in headers.items():
            handler.send_header(key, value)
        if encoding:
            handler.send_header("Content-Encoding", encoding)
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
            wfile.write(b"0\r\n\r\n")
        except EngineError as exc:
            # Headers are gone: ClickHouse appends the error text to the body and
            # breaks the connection so that the client sees a truncated response.
            with contextlib.suppress(Exception):
                wfile.write(b"%x\r\n%s\r\n" % (len(str(exc)) + 1, str(exc).encode() + b"\n"))
            handler.close_connection = True
