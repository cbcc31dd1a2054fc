"""The query log of `cairn serve`: every finished statement, written to ``_query_log`` in batches.

chDB has no ``system.query_log``, so the server keeps its own (migration
``0080_query_log.sql``). Each request that got past the login becomes one
``QueryRecord``: who ran it (a Superset user as that person: delegated logins carry
the person's datalake user), the statement's kind and text (secrets masked, at most
4 KiB), what it read (the figures of ``X-ClickHouse-Summary``), how long it took and
how it ended (ok, error with its code, cancelled, killed).

Records never touch the engine on the request's thread: ``QueryLog.submit`` appends to
a buffer bounded in bytes (the oldest records go when the engine cannot keep up), and a
background thread writes them every ``serve.query_log_flush_interval`` seconds, or
sooner once ``FLUSH_ROWS`` are waiting, on a chDB session of its own. A failed write is
logged (at most once a minute) and retried with the next batch; nothing a query log does
can fail or slow a query. ``close()`` writes what is left when the server stops.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from cairn.engine.sql import sql_identifier

if TYPE_CHECKING:  # pragma: no cover
    from cairn.engine import EmbeddedEngine, EmbeddedSession

log = logging.getLogger("cairn.serve")

TABLE = "_query_log"
QUERY_BYTES = 4096
ERROR_BYTES = 1024
# A batch is written as soon as this many records wait, whatever the interval.
FLUSH_ROWS = 1000
# Records waiting to be written, in (estimated) bytes: beyond, the oldest are dropped.
MAX_PENDING_BYTES = 16 * 1024 * 1024
# A record's size beyond its texts (numbers, names, JSON punctuation).
_RECORD_OVERHEAD = 256
# Failures are logged at most this often (seconds).
_WARN_EVERY = 60.0

COLUMNS = ("started_at", "duration_ms", "user", "client", "address", "query_id", "kind", "query", "rows_read",
           "bytes_read", "result_rows", "written_rows", "outcome", "error_code", "error")

# ClickHouse codes of a query stopped before its end (QUERY_WAS_CANCELLED, ABORTED).
_CANCELLED_CODES = frozenset({394, 202})

# Statements that may carry credentials in their string literals: table functions and
# engines that connect somewhere, and account statements. Their literals are all hidden
# (ClickHouse's formatQuery keeps them, so the masking is ours).
_SECRET_HINT = re.compile(
    r"\b(?:IDENTIFIED|PASSWORD|SECRET|SECRET_ACCESS_KEY|ACCESS_KEY_ID|CREDENTIALS?|NAMED\s+COLLECTION)\b"
    r"|\b(?:mysql|postgresql|mongodb|remote|remoteSecure|s3|s3Cluster|gcs|azureBlobStorage|azureBlobStorageCluster"
    r"|url|urlCluster|redis|odbc|jdbc|hdfs|hdfsCluster|iceberg\w*|deltaLake\w*|hudi\w*|sqlite|dictionary)\s*\(",
    re.IGNORECASE)
_STRING_LITERAL = re.compile(r"'(?:[^'\\]|\\.|'')*'", re.DOTALL)
_HIDDEN = "'[HIDDEN]'"


def mask_secrets(sql: str) -> str:
    """``sql`` with every string literal hidden when the statement may carry credentials.

    ``CREATE TABLE ... ENGINE = MySQL('host', 'db', 't', 'user', 'password')``,
    ``mysql(...)``/``s3(...)``/``url(...)`` and ``CREATE USER ... IDENTIFIED BY '...'``
    keep their shape, not their values; other statements are kept as they are.
    """
    if not _SECRET_HINT.search(sql):
        return sql
    return _STRING_LITERAL.sub(_HIDDEN, sql)


def head(text: str, limit: int) -> str:
    """At most ``limit`` UTF-8 bytes of ``text``, cut on a character boundary.

    Bytes that were not UTF-8 (kept as surrogates, ``pipeline.query_text``) become U+FFFD.
    """
    data = text[:limit].encode("utf-8", "replace")  # a character is at least one byte
    if len(data) <= limit:
        return data.decode("utf-8", "replace")
    return data[:limit].decode("utf-8", "ignore")


def client_name(user_agent: str | None, delegated: bool) -> str:
    """Who sent it: ``superset`` for a delegated login, else the User-Agent's first product (e.g. ``curl/8.5.0``)."""
    if delegated:
        return "superset"
    product = (user_agent or "").strip().split(" ", 1)[0]
    return head(product, 64) if product else ""


def outcome_of(error: BaseException | None, killed: bool) -> tuple[str, int, str]:
    """(outcome, error code, error text) of a statement that ended with ``error`` (None: it succeeded).

    ``killed``: KILL QUERY or ``replace_running_query`` reached it. A client that went away
    (a broken connection, or code 394 once the server interrupted its stream) and a
    shutdown (code 202) count as ``cancelled``.
    """
    if error is None:
        return "ok", 0, ""  # a kill that came too late: the client got the whole answer
    code = int(getattr(error, "code", 0) or 0)
    text = head(str(error).strip().split("\n", 1)[0], ERROR_BYTES)
    if killed:
        return "killed", code or 394, text
    if isinstance(error, (BrokenPipeError, ConnectionResetError)):
        return "cancelled", code or 394, text or "the client went away"
    if code in _CANCELLED_CODES:
        return "cancelled", code, text
    return "error", code or 1001, text


@dataclass
class QueryRecord:
    """One statement of `cairn serve`, filled in as the request goes; ``row()`` when it ended."""

    user: str
    client: str = ""
    address: str = ""
    query_id: str = ""
    started_at: float = field(default_factory=time.time)
    started: float = field(default_factory=time.monotonic)
    kind: str = ""
    query: str = ""
    rows_read: int = 0
    bytes_read: int = 0
    result_rows: int = 0
    written_rows: int = 0
    outcome: str = "ok"
    error_code: int = 0
    error: str = ""
    duration_ms: int = 0
    running: Any = None
    """The query's ``RunningQuery`` (``cairn.serve.queries``): its ``cancelled`` says it was killed."""

    def statement(self, sql: str, kind: str | None = None) -> None:
        """The statement's text (masked, cut to ``QUERY_BYTES``) and its kind.

        Without ``kind`` (the request failed before its statement was classified) the
        text is classified when the row is written, on the flusher's thread: the request
        does not parse it twice.
        """
        text = head(sql, QUERY_BYTES + 1024)  # room for what masking shortens
        self.query = head(mask_secrets(text), QUERY_BYTES)
        self.kind = kind or ""

    def read(self, rows_read: int = 0, bytes_read: int = 0, result_rows: int = 0, written_rows: int = 0) -> None:
        """The statement's counters, as its ``X-ClickHouse-Summary`` reports them."""
        self.rows_read, self.bytes_read = int(rows_read or 0), int(bytes_read or 0)
        self.result_rows, self.written_rows = int(result_rows or 0), int(written_rows or 0)

    def end(self, error: BaseException | None) -> None:
        """The statement ended (``error``: why it failed, None when it did not): duration and outcome."""
        self.duration_ms = max(0, min(int((time.monotonic() - self.started) * 1000), 2**32 - 1))
        killed = self.running is not None and self.running.cancelled.is_set()
        self.outcome, self.error_code, self.error = outcome_of(error, killed)

    def size(self) -> int:
        """Roughly what the record weighs in the buffer (bytes)."""
        return len(self.query) + len(self.error) + len(self.query_id) + _RECORD_OVERHEAD

    def row(self) -> dict[str, Any]:
        """The record as one ``_query_log`` row (JSONEachRow)."""
        if not self.kind and self.query:
            from cairn.serve.statement import Statement

            self.kind = Statement.parse(self.query).kind
        seconds = int(self.started_at)
        millis = int((self.started_at - seconds) * 1000)
        return {
            "started_at": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}",
            "duration_ms": self.duration_ms, "user": head(self.user, 256), "client": self.client,
            "address": self.address, "query_id": head(self.query_id, 256), "kind": self.kind, "query": self.query,
            "rows_read": self.rows_read, "bytes_read": self.bytes_read, "result_rows": self.result_rows,
            "written_rows": self.written_rows, "outcome": self.outcome, "error_code": self.error_code,
            "error": self.error}


def encode(records: list[QueryRecord]) -> bytes:
    """Records as JSONEachRow data for ``_query_log``."""
    return b"".join(json.dumps(r.row(), ensure_ascii=False).encode("utf-8", "replace") + b"\n" for r in records)


class QueryLog:
    """The buffer of finished statements and the thread that writes them (see the module's docstring).

    ``write(data)`` stores one batch of JSONEachRow rows or raises; it only ever runs on
    the flusher's thread.
    """

    def __init__(self, write: Callable[[bytes], None], interval: float = 5.0, flush_rows: int = FLUSH_ROWS,
                 max_pending_bytes: int = MAX_PENDING_BYTES, on_close: Callable[[], None] | None = None):
        self._write = write
        self._on_close = on_close
        self.interval = interval
        self.flush_rows = flush_rows
        self.max_pending_bytes = max_pending_bytes
        self._pending: deque[QueryRecord] = deque()
        self._pending_bytes = 0
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cairn-query-log", daemon=True)
        self._warned_at = float("-inf")
        self.written = 0
        self.dropped = 0
        self.failures = 0

    def start(self) -> None:
        """Start the flusher thread."""
        self._thread.start()

    def submit(self, record: QueryRecord) -> None:
        """Queue a finished statement (never blocks on the engine, never raises)."""
        try:
            size = record.size()
            with self._lock:
                if self._stop.is_set() and not self._thread.is_alive():
                    self.dropped += 1
                    return
                self._pending.append(record)
                self._pending_bytes += size
                while self._pending_bytes > self.max_pending_bytes and len(self._pending) > 1:
                    self._pending_bytes -= self._pending.popleft().size()
                    self.dropped += 1
                full = len(self._pending) >= self.flush_rows
            if full:
                self._wake.set()
        except Exception:  # noqa: BLE001 - a query log must never fail a query
            log.debug("query log: a record was lost", exc_info=True)

    def pending(self) -> int:
        """Records waiting to be written."""
        with self._lock:
            return len(self._pending)

    def _take(self) -> list[QueryRecord]:
        with self._lock:
            batch = list(self._pending)
            self._pending.clear()
            self._pending_bytes = 0
        return batch

    def _put_back(self, batch: list[QueryRecord]) -> None:
        """A batch that failed goes back in front of newer records, within the byte bound."""
        with self._lock:
            for record in reversed(batch):
                if self._pending_bytes + record.size() > self.max_pending_bytes:
                    self.dropped += 1
                    continue
                self._pending.appendleft(record)
                self._pending_bytes += record.size()

    def flush(self) -> bool:
        """Write what is waiting (on the flusher's thread, or once it has stopped); False when it failed."""
        batch = self._take()
        if not batch:
            return True
        try:
            self._write(encode(batch))
        except Exception as exc:  # noqa: BLE001 - logged; the batch is retried with the next one
            self.failures += 1
            self._put_back(batch)
            now = time.monotonic()
            if now - self._warned_at >= _WARN_EVERY:
                self._warned_at = now
                log.warning("query log: could not write %d record(s), will retry: %s", len(batch),
                            str(exc).split("\n", 1)[0])
            return False
        self.written += len(batch)
        return True

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self._wake.wait(self.interval)
                self._wake.clear()
                if not self._stop.is_set():
                    self.flush()
            self.flush()  # what the last requests left
        finally:
            if self._on_close is not None:
                try:
                    self._on_close()
                except Exception:  # noqa: BLE001
                    log.debug("query log: closing its session failed", exc_info=True)

    def close(self, timeout: float = 10.0) -> None:
        """Stop the flusher after it wrote what is waiting (at most ``timeout`` seconds)."""
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        if self.dropped:
            log.warning("query log: %d record(s) were dropped (the engine could not keep up)", self.dropped)


class SessionWriter:
    """Writes batches into ``<database>._query_log`` on a chDB session of its own (opened on first use).

    Its own session: a batch never waits for the server's query slots, and a failure
    (the session is then reopened) touches no session a query runs on.
    """

    def __init__(self, engine: "EmbeddedEngine", database: str):
        self.engine = engine
        self.statement = (f"INSERT INTO {sql_identifier(database)}.{sql_identifier(TABLE)} "
                          f"({', '.join(sql_identifier(c) for c in COLUMNS)})")
        self._session: "EmbeddedSession | None" = None

    def __call__(self, data: bytes) -> None:
        if self._session is None:
            self._session = self.engine.open_session()
        try:
            self._session.insert(self.statement, "JSONEachRow", [data])
        except Exception:
            self.close()
            raise

    def close(self) -> None:
        """Close the session (the flusher's thread, when it ends)."""
        session, self._session = self._session, None
        if session is not None:
            session.close()


def apply_ttl(engine: "EmbeddedEngine", database: str, days: int) -> bool:
    """Make ``_query_log`` keep ``days`` days (``serve.query_log_ttl_days``); True when it changed.

    The migration creates it with 30 days; only a different setting alters the table.
    """
    table = f"{sql_identifier(database)}.{sql_identifier(TABLE)}"
    current = engine.query_value("SELECT create_table_query FROM system.tables WHERE database = {db:String} "
                                 "AND name = {t:String}", {"db": database, "t": TABLE})
    if current is None:
        return False
    if f"toIntervalDay({int(days)})" in str(current):
        return False
    engine.command(f"ALTER TABLE {table} MODIFY TTL toDateTime(started_at) + toIntervalDay({int(days)})")
    return True
