"""One HTTP connection of `cairn serve`: routing and error answers; the query itself is the pipeline's."""

from __future__ import annotations

import contextlib
import logging
import time
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any

from cairn.engine.errors import error_message
from cairn.engine.session import ENGINE_FAILED
from cairn.errors import EngineError
from cairn.serve.delegation import is_token
from cairn.serve.external import external_param_names, external_tables, is_form, parse_form
from cairn.serve.pipeline import QueryPipeline
from cairn.serve.query_log import QueryRecord, client_name
from cairn.serve.response import Responder
from cairn.serve.wire import VERSION, HttpError, QueryRequest, RequestBody, credentials, error_text, status_for

if TYPE_CHECKING:  # pragma: no cover
    from cairn.serve.httpd import CairnHTTPServer
    from cairn.serve.sessions import Principal

log = logging.getLogger("cairn.serve")

# A compressed query text may be a little larger than the text itself.
_COMPRESSION_SLACK = 64 * 1024


class ClickHouseHandler(BaseHTTPRequestHandler):
    """One HTTP connection speaking ClickHouse's HTTP interface."""

    protocol_version = "HTTP/1.1"
    server_version = "cairn"
    sys_version = ""
    timeout = 120  # idle keep-alive connections are closed after this
    # Headers and body go out in separate writes: without TCP_NODELAY, Nagle's algorithm
    # and the client's delayed ACK add ~40 ms to every response.
    disable_nagle_algorithm = True
    server: "CairnHTTPServer"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """Access log lines go to the debug log."""
        log.debug("%s " + format, self.address_string(), *args)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Malformed HTTP (bad request line, headers): a plain ClickHouse-style error, then close."""
        self.request_version = "HTTP/1.1"  # answer with a status line even to garbage
        self.close_connection = True
        text = f"{error_message(1000, message or 'Bad request', 'BAD_REQUEST')} (version {VERSION})\n"
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
        """A query in the URL, or a liveness probe."""
        self._handle()

    def do_POST(self) -> None:  # noqa: N802
        """A query in the URL and/or the body."""
        self._handle()

    def do_HEAD(self) -> None:  # noqa: N802
        """As GET, without the body."""
        self._handle()

    def do_OPTIONS(self) -> None:  # noqa: N802
        """CORS preflight: nothing to say."""
        Responder(self).send(204, b"", {})

    def send_header(self, keyword: str, value: str) -> None:
        """A response header; a CR or LF in it would start a header of the client's choosing."""
        if "\r" in value or "\n" in value or "\r" in keyword or "\n" in keyword:
            raise ValueError(f"refusing a header with a line break: {keyword}")
        super().send_header(keyword, value)

    def _handle(self) -> None:
        server = self.server
        respond = Responder(self)
        with server.active_lock:
            server.active += 1
        query_id: str | None = None
        body: RequestBody | None = None
        record: QueryRecord | None = None
        failure: BaseException | None = None
        try:
            request = QueryRequest.from_target(self.path)
            query_id = request.query_id
            if server.stopping:
                raise HttpError(202, "The server is shutting down", "ABORTED", status=503)
            if request.is_ping:
                self._ping(respond)
                return
            if not request.is_query:
                raise HttpError(1000, f"There is no handle {request.path}", "BAD_REQUEST", status=404)
            limit = server.options.max_body_bytes
            # Buffered bodies (query text) are bounded by the limit once decompressed; a
            # streamed insert may expand to 4 times it.
            body = RequestBody(self.headers, self.rfile, limit, decoded_limit=4 * limit)
            if request.query is None and not body.present:
                respond.send_ok()  # GET / with no query: ClickHouse's "Ok." (a liveness probe)
                return
            principal, record = self._login(request)
            if not principal.admin:
                # Query text only: refused before it is read when over max_query_size.
                size = server.options.max_query_size
                body.restrict(size + _COMPRESSION_SLACK, size, "max_query_size")
            external = None
            if is_form(self.headers.get("Content-Type")) and body.present:
                # An HTML form: its fields are parameters, its files external tables.
                form = parse_form(self.headers.get("Content-Type", ""), body.read_all(server.options.max_body_bytes))
                request = request.with_form(form.fields, external_param_names(form.files))
                query_id = request.query_id
                external = external_tables(form.files, request.params)
            pipeline = QueryPipeline(server, respond, self.connection, self.headers.get("Accept-Encoding", ""),
                                     record)
            pipeline.run(principal, request, body, self.command, external)
            failure = respond.failure
        except (HttpError, EngineError) as exc:
            failure = exc
            try:
                self._send_error(respond, exc, query_id, body)
            except OSError:
                self.close_connection = True  # the client is gone (its query was interrupted)
        except (BrokenPipeError, ConnectionResetError) as exc:
            failure = exc
            self.close_connection = True
        except Exception as exc:  # never let one request take the server down
            failure = exc
            log.exception("internal error")
            with contextlib.suppress(Exception):
                text = error_message(1001, f"{type(exc).__name__}: {exc}", "STD_EXCEPTION")
                self._send_error(respond, HttpError(1001, "", "STD_EXCEPTION"), query_id, None, text, close=True)
            self.close_connection = True
        finally:
            if record is not None:
                # Before the request stops counting as active: a shutdown flushes it.
                self._log(record, query_id, failure)
            with server.active_lock:
                server.active -= 1
                server.active_lock.notify_all()

    def _log(self, record: QueryRecord, query_id: str | None, failure: BaseException | None) -> None:
        """Hand the finished statement to the query log (nothing it does can fail the request)."""
        query_log = self.server.query_log
        if query_log is None:
            return
        try:
            record.query_id = query_id or record.query_id
            record.end(failure)
            query_log.submit(record)
        except Exception:  # noqa: BLE001 - a query log must never fail a query
            log.debug("query log: record lost", exc_info=True)

    def _ping(self, respond: Responder) -> None:
        """/ping: "Ok." while the engine answers ``SELECT 1``, else 503 with its error.

        A supervisor (systemd, docker, Tutor) probes this; an engine that answers every
        query with code 236 must not look alive.
        """
        problem = self.server.backend.health()
        if problem is None:
            respond.send_ok()
        else:
            respond.send_error(ENGINE_FAILED, problem, None, status=503)

    def _login(self, request: QueryRequest) -> tuple["Principal", QueryRecord | None]:
        """The principal of the request's credentials (throttled, see ``CairnHTTPServer.authenticate``),
        and the query log's record of its statement (None when the log is off)."""
        started_at, started = time.time(), time.monotonic()
        headers = self.headers
        given = any(headers.get(h) is not None for h in ("X-ClickHouse-User", "X-ClickHouse-Key", "Authorization")) \
            or "user" in request.params or "password" in request.params
        user, password = credentials(headers, request.params)
        principal = self.server.authenticate(user, password, self.client_address[0], given)
        record = None
        if self.server.query_log is not None:
            try:
                # A delegated login (Superset) runs as the person: their name is the principal's.
                record = QueryRecord(principal.name, client_name(headers.get("User-Agent"), is_token(password)),
                                     str(self.client_address[0]), request.query_id, started_at, started)
            except Exception:  # noqa: BLE001 - a query log must never fail a query
                log.debug("query log: no record for this request", exc_info=True)
        return principal, record

    def _send_error(self, respond: Responder, exc: Exception, query_id: str | None, body: RequestBody | None,
                    text: str | None = None, close: bool = False) -> None:
        """An error answer; the rest of the body is read first (bounded), else the connection closes.

        A body left half-read (a failed decompression, an early refusal) would otherwise be
        read as the next request on this keep-alive connection.
        """
        code = exc.code
        status = exc.status if isinstance(exc, HttpError) else None
        if body is not None and status != 413 and not body.drain(self.server.options.drain_bytes):
            close = True
        code, payload = error_text(code, text or str(exc))
        headers = respond.base_headers(query_id)
        headers["Content-Type"] = "text/plain; charset=UTF-8"
        headers["X-ClickHouse-Exception-Code"] = str(code)
        headers.update(getattr(exc, "headers", None) or {})
        if close or status == 413 or (body is not None and not body.finished):
            headers["Connection"] = "close"
            headers.pop("Keep-Alive", None)
        respond.send(status or status_for(code), payload, headers)
