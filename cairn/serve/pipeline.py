"""One query of `cairn serve`: statement, authorise, execute, respond.

``QueryPipeline.run`` takes an authenticated request through four steps, each once:

1. the statement: its text (URL ``query`` and/or body, an inline ``INSERT ... FORMAT``
   split from its data), normalised by ClickHouse and classified
   (``cairn.serve.statement``);
2. authorise: admins run anything; a restricted user's query is cleared by
   ``cairn.serve.query_check`` on the user's own read-only, filtered session;
3. execute on the principal's pooled or named session (``cairn.serve.sessions``), with
   the request's database and settings;
4. respond (``cairn.serve.response``): rows buffered or streamed, or a summary.

Around them, as a ClickHouse server: the client's ``query_id`` is held in
``cairn.serve.queries`` (216 for a duplicate, ``replace_running_query``, KILL QUERY by
id), ``currentUser()`` answers the datalake user (``cairn.serve.current_user``), a GET
may only read (164), and external data tables of a form body are made for the query
(``cairn.serve.external``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
import socket
import threading
import time
from collections import OrderedDict
from typing import TYPE_CHECKING, Any, Callable

from cairn.engine.sql import sql_identifier, sql_string
from cairn.errors import EngineError
from cairn.serve import formats
from cairn.serve.access import READONLY, AccessDenied, param_value
from cairn.serve.current_user import with_current_user
from cairn.serve.external import ExternalTable, create_tables, drop_tables
from cairn.serve.queries import RunningQuery, parse_kill
from cairn.serve.query_check import CheckedQuery, check_query
from cairn.serve.statement import DEFAULT_FORMAT, Statement, split_inline_insert
from cairn.serve.wire import BytesBody, HttpError, QueryRequest, RequestBody, choose_encoding, summary

# What a GET may run: ClickHouse runs GET requests with readonly = 2 (read, and change settings).
_GET_KINDS = frozenset({"select", "show", "describe", "exists", "explain", "check", "values", "set", "use"})

if TYPE_CHECKING:  # pragma: no cover
    from cairn.engine import EmbeddedSession
    from cairn.serve.httpd import CairnHTTPServer
    from cairn.serve.query_log import QueryRecord
    from cairn.serve.response import Responder
    from cairn.serve.sessions import Principal

_CACHE_SIZE = 2048


class StatementCache:
    """ClickHouse's normalised texts and the access decisions of restricted users, remembered.

    Dashboards send the same queries again and again: each costs one engine round trip
    (normalising) or three (checking) the first time only.
    """

    def __init__(self, size: int = _CACHE_SIZE):
        self._size = size
        self._lock = threading.Lock()
        self._normalised: "OrderedDict[str, str]" = OrderedDict()
        self._checks: "OrderedDict[tuple, CheckedQuery]" = OrderedDict()

    def _get(self, cache: OrderedDict, key: Any) -> Any:
        with self._lock:
            hit = cache.get(key)
            if hit is not None:
                cache.move_to_end(key)
            return hit

    def _put(self, cache: OrderedDict, key: Any, value: Any) -> None:
        with self._lock:
            cache[key] = value
            while len(cache) > self._size:
                cache.popitem(last=False)

    def normalised(self, session: "EmbeddedSession", sql: str) -> str:
        """ClickHouse's single-line form of ``sql`` ("" when it does not parse), remembered."""
        hit = self._get(self._normalised, sql)
        if hit is not None:
            return hit
        try:
            text = session.execute("SELECT formatQuerySingleLine({q:String})", "TabSeparatedRaw",
                                   {"q": param_value(sql)}).data.decode("utf-8").rstrip("\n")
        except EngineError:
            return ""  # the engine reports its own error when it runs the text
        if len(sql) < 65536:
            self._put(self._normalised, sql, text)
        return text

    def checked(self, principal: "Principal", tables: tuple[str, ...], sql: str, default_format: str | None,
                params: dict, check: Callable[[], CheckedQuery]) -> CheckedQuery:
        """The access check of a query, remembered.

        The key holds everything the decision depends on (user scope, the datalake's
        tables, the text, the parameters, the format); refusals are not cached.
        """
        key = (principal.name, principal.scope, tables, sql, default_format, tuple(sorted(params.items())))
        hit = self._get(self._checks, key)
        if hit is not None:
            return hit
        result = check()
        self._put(self._checks, key, result)
        return result


class QueryPipeline:
    """One authenticated query request, from its statement to its answer."""

    def __init__(self, server: "CairnHTTPServer", respond: "Responder", connection: socket.socket,
                 accept_encoding: str, record: "QueryRecord | None" = None):
        self.server = server
        self.record = record
        """The query log's record of this statement (None when the log is off): text, kind, counters."""
        self.backend = server.backend
        self.respond = respond
        self.connection = connection
        self.accept_encoding = accept_encoding
        self.method = "POST"
        self.entry = RunningQuery("", "")

    def run(self, principal: "Principal", request: QueryRequest, body: RequestBody, method: str = "POST",
            external: list[ExternalTable] | None = None) -> None:
        """Statement, authorise, execute, respond (errors propagate to the handler).

        ``method`` is the HTTP method (a GET may only read); ``external`` the external
        data tables of a form body.
        """
        request.refuse_native_compression()
        self.method = method
        settings = request.settings()
        replace = settings.pop("replace_running_query", "0").lower() in ("1", "true")
        self.respond.progress = request.send_progress
        if not principal.admin:
            self.respond.error_filter = mask_connection_details
            if external:
                raise AccessDenied(f"{principal.name}: external data tables need temporary tables, which a "
                                   f"read-only user cannot create", READONLY)
        with self.server.queries.running(request.query_id, principal.name, replace) as entry:
            self.entry = entry
            if self.record is not None:
                self.record.running = entry
            self._run(principal, request, body, settings, external or [])

    def _run(self, principal: "Principal", request: QueryRequest, body: RequestBody, settings: dict[str, str],
             external: list[ExternalTable]) -> None:
        backend = self.backend
        timeout = request.session_timeout(self.server.options.max_session_timeout)
        sql, data = self._statement_text(principal, request, body)
        self._note(sql)
        tables = backend.tables()
        if not principal.admin and request.database not in (None, backend.database):
            raise AccessDenied(f"{principal.name}: Not enough privileges to use database {request.database}")
        if not principal.admin and Statement.parse(sql).kind == "insert":
            # Refused on its first word: an INSERT ... VALUES with its data does not
            # normalise (a syntax error), ClickHouse answers a read-only user 164.
            raise AccessDenied(f"{principal.name}: Cannot execute query in readonly mode", READONLY)
        with backend.session(principal, request.session_id, tables, timeout,
                             check=request.session_check) as (session, named):
            client_session = backend.named(principal, request.session_id) if named else None
            if client_session is not None:
                self.respond.on_finish = client_session.finish
            if principal.admin:
                self._prepare(session, named, principal, request.database, settings)
                made = create_tables(session, external) if external else []
                try:
                    self._run_admin(session, named, principal, sql, data, request)
                finally:
                    if made:
                        try:
                            drop_tables(session, made)
                        except EngineError:
                            session.discard = True  # never hand out a session with the client's tables
                return
            self._prepare(session, named, principal, request.database, {})
            try:
                self._run_restricted(session, principal, tables, sql, data, request, settings)
            except EngineError as exc:
                masked = mask_connection_details(str(exc))
                if masked == str(exc):
                    raise
                raise EngineError(masked, exc.code) from None

    # -- 1. the statement ------------------------------------------------
    @staticmethod
    def _statement_text(principal: "Principal", request: QueryRequest,
                        body: RequestBody) -> tuple[str, RequestBody | BytesBody | None]:
        """(SQL text, data that came with it): ClickHouse appends a body to the URL's query."""
        text = request.query
        if text is not None:
            return _non_empty(text), (body if body.present and not body.consumed else None)
        raw = body.read_all()
        split = split_inline_insert(raw) if principal.admin else None
        if split is not None:
            sql, data = split
            return _non_empty(sql), BytesBody(data)
        return _non_empty(query_text(raw)), None

    def _admin_statement(self, session: "EmbeddedSession", sql: str,
                         data: RequestBody | BytesBody | None) -> tuple[Statement, str]:
        """The admin's statement classified on ClickHouse's normalised text, and the text to run.

        Data that is not the rows of an INSERT is part of the query text (as in ClickHouse).
        """
        normalised = self.server.statements.normalised(session, sql)
        statement = Statement.parse(normalised, normalised=True, has_body=data is not None) if normalised else None
        # An inline split is only a guess: it holds when ClickHouse sees INSERT ... FORMAT.
        if statement is not None and statement.inserts_body and (statement.format or not isinstance(data, BytesBody)):
            return statement, sql
        if data is not None:
            sql = sql + "\n" + query_text(data.read_all())
        if statement is None:
            return Statement.unparsed(sql), sql
        return dataclasses.replace(statement, has_body=False), sql  # the data is in the text now

    # -- 2. the session --------------------------------------------------
    def _prepare(self, session: "EmbeddedSession", named: bool, principal: "Principal", database: str | None,
                 settings: dict[str, str]) -> None:
        """The request's database and settings on the session it runs on.

        As in ClickHouse, ``database=`` holds for its request only: a pooled session goes
        back to the datalake, a client session to its own database (the datalake, or what
        the client's ``USE`` chose).
        """
        wanted = database or (getattr(session, "session_db", None) if named else None) or self.backend.database
        if session.current_db != wanted:
            session.execute(f"USE {sql_identifier(wanted)}")
            session.current_db = wanted
        self._apply_settings(session, principal, settings)

    @staticmethod
    def _apply_settings(session: "EmbeddedSession", principal: "Principal", settings: dict[str, str]) -> None:
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
        applied = session.url_settings
        changes = [f"{name} = DEFAULT" for name in applied if name not in settings]
        changes += [f"{name} = {sql_string(value)}" for name, value in settings.items() if applied.get(name) != value]
        if changes:
            session.url_settings = {}  # unknown state until the SET succeeds
            session.execute("SET " + ", ".join(changes))
        session.url_settings = dict(settings)

    # -- 3. authorise and execute ----------------------------------------
    def _run_admin(self, session: "EmbeddedSession", named: bool, principal: "Principal", sql: str,
                   data: RequestBody | BytesBody | None, request: QueryRequest) -> None:
        """An admin's statement: insert, session change, result or command."""
        statement, sql = self._admin_statement(session, sql, data)
        self._note(statement.core if statement.inserts_body else sql, statement.kind)
        if self.method == "GET" and (statement.kind not in _GET_KINDS and statement.parsed):
            raise AccessDenied("Cannot execute query in readonly mode. For queries over HTTP, method GET implies "
                               "readonly. You should use method POST for modifying queries", READONLY)
        kill = parse_kill(statement.core) if statement.keyword == "KILL" else None
        if kill is not None and self._kill_by_id(session, kill, statement, request):
            return
        if not statement.inserts_body:
            sql = with_current_user(sql, principal.name)
        if statement.inserts_body and data is not None:
            result = session.insert(statement.core, statement.format or "Values", data.chunks())
            self._counted(result)
            self.respond.send_summary(result.rows_written, result.bytes_written, request.query_id)
        elif statement.changes_session and not named:
            # Outside a session these change nothing lasting (as in ClickHouse): check them
            # on a throwaway session so the pooled one keeps its state.
            throwaway = self.backend.engine.open_session()
            try:
                throwaway.execute(sql, params=request.query_params)
            finally:
                throwaway.close()
            self.respond.send_summary(0, 0, request.query_id)
        elif statement.returns_rows:
            self._run_result(session, principal, sql, statement.output_format(request.default_format),
                             statement.streams, request)
        else:
            self._run_command(session, sql, statement, request)

    def _run_restricted(self, session: "EmbeddedSession", principal: "Principal", tables: tuple[str, ...],
                        sql: str, data: RequestBody | BytesBody | None, request: QueryRequest,
                        settings: dict[str, str] | None = None) -> None:
        """A restricted user's query, cleared by ``check_query`` first (what is checked is what runs).

        The check runs before the request's settings reach the session (an output format
        setting would change the checker's own answers), and a session that took settings
        is not reused: read-only sessions cannot set them back (``discard``).
        """
        if data is not None:
            # ClickHouse appends the body to the query text; for a read-only user that can
            # only be a SELECT, checked like any other.
            sql = sql + "\n" + query_text(data.read_all())
        sql = with_current_user(sql, principal.name)
        default_format, params = request.default_format, request.query_params
        checked = self.server.statements.checked(
            principal, tables, sql, default_format, params,
            lambda: check_query(session, sql, self.backend.database, tables, default_format, params))
        statement = checked.statement
        self._note(sql, statement.kind)
        if settings:
            session.discard = True
            self._apply_settings(session, principal, settings)
        self._run_result(session, principal, statement.core, statement.output_format(default_format),
                         statement.streams, request)

    def _run_command(self, session: "EmbeddedSession", sql: str, statement: Statement,
                     request: QueryRequest) -> None:
        """A statement without a result set (DDL, INSERT ... VALUES, SYSTEM...): a summary, or its text."""
        fmt = request.default_format or DEFAULT_FORMAT
        self._check_cancelled()
        # No marker on an INSERT: a comment after VALUES would be read as data.
        tag = None if statement.kind == "insert" else self.entry.tag
        result = session.execute_marked(sql, fmt, request.query_params, tag=tag)
        if statement.kind == "use":
            # A client session's USE lasts (the pooled sessions run it on a throwaway one).
            session.current_db = session.execute("SELECT currentDatabase()", "TabSeparatedRaw").data.decode().strip()
            session.session_db = session.current_db
        self._counted(result)
        if statement.kind == "insert" or not result.data:
            self.respond.send_summary(result.rows_written, result.bytes_written, request.query_id,
                                      result.rows_read, result.bytes_read)
        else:
            self.respond.send_result(result.data, fmt, request.query_id)

    # -- 4. respond ------------------------------------------------------
    def _run_result(self, session: "EmbeddedSession", principal: "Principal", sql: str, fmt: str, streams: bool,
                    request: QueryRequest) -> None:
        """Run a statement with a result and send it: buffered when small, streamed otherwise.

        chDB streams SELECTs only (not DESCRIBE, SHOW, EXISTS, EXPLAIN), and formats each
        streamed chunk as a whole document: only the formats of ``cairn.serve.formats``
        that can be joined stream; the others run whole, under ``serve.max_result_bytes``.
        """
        started = time.monotonic()
        settings = request.settings()
        if streams and not formats.streams(fmt, sql, settings) and principal.admin:
            # The cap comes and goes with the request's URL settings (the next request on
            # this session sets it back); restricted sessions carry it from their setup.
            settings = {"max_result_bytes": str(self.server.options.max_result_bytes), **settings}
            self._apply_settings(session, principal, settings)
        self._check_cancelled()
        if not streams or not formats.streams(fmt, sql, settings):
            result = session.execute_marked(sql, fmt, request.query_params, tag=self.entry.tag)
            self._counted(result)
            self.respond.send_result(result.data, fmt, request.query_id,
                                     summary(result.rows_read, result.bytes_read, 0, 0, 0, len(result.data),
                                             time.monotonic() - started, getattr(result, "result_rows", 0)))
            return
        stream = session.stream_marked(sql, fmt, request.query_params, killer=self.backend.killer,
                                       tag=self.entry.tag)
        self.entry.stream = stream
        if self.entry.cancelled.is_set():
            stream.interrupt()  # killed between the check and the start
        monitor = self.server.monitor
        token = monitor.watch(self.connection, stream)
        encoding = choose_encoding(self.accept_encoding) if request.compress else None
        try:
            self.respond.send_stream(formats.DocumentStream(stream, fmt), fmt, request.query_id, started, encoding,
                                     self.server.options.buffer_bytes, request.wait_end)
        except (BrokenPipeError, ConnectionResetError):
            stream.cancel()
            raise
        finally:
            monitor.unwatch(token)
            self.entry.stream = None
            self._counted(stream)
            stream.close()

    def _note(self, sql: str, kind: str | None = None) -> None:
        """The statement as the query log keeps it (its text, its kind)."""
        if self.record is not None:
            with contextlib.suppress(Exception):  # a query log must never fail a query
                self.record.statement(sql, kind)

    def _counted(self, result: Any) -> None:
        """What the statement read and returned (or wrote), from its result or stream, for the query log."""
        if self.record is not None:
            with contextlib.suppress(Exception):  # a query log must never fail a query
                self.record.read(*(getattr(result, name, 0) for name in ("rows_read", "bytes_read", "result_rows",
                                                                         "rows_written")))

    def _check_cancelled(self) -> None:
        """394 when KILL QUERY (or replace_running_query) reached this query before it ran."""
        if self.entry.cancelled.is_set():
            raise HttpError(394, "Query was cancelled", "QUERY_WAS_CANCELLED")

    def _kill_by_id(self, session: "EmbeddedSession", kill, statement: Statement, request: QueryRequest) -> bool:
        """KILL QUERY WHERE query_id = '...' of a query this server runs; False when none has that id.

        The answer is ClickHouse's: one row (kill_status, query_id, user, query) in the
        request's format.
        """
        done = self.server.queries.kill_by_id(kill)
        if done is None:
            return False
        status, entry = done
        fmt = statement.output_format(request.default_format)
        result = session.execute("SELECT {s:String} AS kill_status, {q:String} AS query_id, {u:String} AS user, "
                                 "'' AS query", fmt, {"s": status, "q": entry.query_id, "u": entry.user})
        self.respond.send_result(result.data, fmt, request.query_id)
        return True


# What a MySQL connection error tells about the Open edX database: "db@host:port as user x",
# "on 'host:port'", "((nullptr):3306)". Restricted users get the error without them.
_MYSQL_DETAILS = [
    (re.compile(r"[^\s,;()']+@[^\s,;()']+:\d+"), "<mysql>"),
    (re.compile(r"\bas user [^\s,;]+"), "as user <hidden>"),
    (re.compile(r"'[^'\s]+:\d+'"), "'<hidden>'"),
    (re.compile(r"\((?:\([^()\s]*\)|[^()\s]*):\d+\)"), "(<hidden>)"),
    (re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}(?::\d+)?"), "<hidden>"),
    (re.compile(r"Unknown database '[^']*'"), "Unknown database '<hidden>'"),
]


def mask_connection_details(text: str) -> str:
    """``text`` without the MySQL host, port and user of a live table's connection error."""
    if "mysql" not in text.lower():
        return text
    for pattern, replacement in _MYSQL_DETAILS:
        text = pattern.sub(replacement, text)
    return text


def query_text(raw: bytes) -> str:
    """A query body as text. Bytes that are not UTF-8 (a binary value bound into a ``$x$...$x$``
    string, as clickhouse-connect sends them) are kept as surrogates: the engine gets them back
    as the same bytes (``EmbeddedSession`` sends such a text as bytes)."""
    return raw.decode("utf-8", "surrogateescape")


def _non_empty(sql: str) -> str:
    if not sql.strip():
        raise HttpError(62, "Empty query", "SYNTAX_ERROR")
    return sql
