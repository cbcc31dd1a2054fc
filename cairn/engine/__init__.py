"""One interface over two ClickHouse engines.

* ``EmbeddedEngine``: chDB inside this process, data in ``<data_dir>/clickhouse``.
* ``RemoteEngine``: a ClickHouse server (or ``cairn serve``) over HTTP(S).

Both are driven through clickhouse-connect, which speaks to chDB in-process as
well as to a server, so query semantics and result types are the same. Bulk
inserts of raw bytes on the embedded engine use chDB's streaming inserter
directly, because that is the fast path there. This is the only module that
imports chDB or clickhouse-connect.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Sequence

from cairn.engine.served import read_serve_file
from cairn.errors import CairnError, EngineError, EngineUnavailable

if TYPE_CHECKING:  # pragma: no cover
    import pandas

    from cairn.config import Config

_CODE_RE = re.compile(r"Code: (\d+)\.")


@dataclass
class QueryResult:
    """Rows of a query with their column names and ClickHouse types."""

    column_names: list[str]
    column_types: list[str]
    rows: list[tuple]

    def dicts(self) -> list[dict[str, Any]]:
        return [dict(zip(self.column_names, row)) for row in self.rows]


def _clean_error(exc: Exception) -> EngineError:
    """Turn a driver exception into an EngineError carrying ClickHouse's own message."""
    text = str(exc).strip()
    # clickhouse-connect prefixes server errors with the HTTP context; keep ClickHouse's text.
    start = text.find("Code: ")
    if start > 0:
        text = text[start:]
    text = re.sub(r"\s*\(version [\d.]+(?: \(official build\))?\)", "", text)
    text = text.replace("\n", " ").strip()
    match = _CODE_RE.search(text)
    return EngineError(text, int(match.group(1)) if match else None)


class Engine:
    """What every Cairn module uses to talk to ClickHouse.

    ``parameters`` use ClickHouse server-side binding (``{name:Type}`` in the SQL),
    so values are never spliced into SQL text.
    """

    kind: str = ""
    database: str = ""

    def __init__(self, client: Any, database: str):
        self._client = client
        self.database = database

    # -- reads -----------------------------------------------------------
    def query(self, sql: str, parameters: dict | None = None, settings: dict | None = None) -> QueryResult:
        """Run a query and return all its rows."""
        with self._errors():
            result = self._client.query(sql, parameters=parameters, settings=settings)
            return QueryResult(list(result.column_names), [t.name for t in result.column_types],
                               list(result.result_rows))

    def query_rows(self, sql: str, parameters: dict | None = None, settings: dict | None = None) -> list[tuple]:
        """Rows of a query as tuples."""
        return self.query(sql, parameters, settings).rows

    def query_value(self, sql: str, parameters: dict | None = None, settings: dict | None = None) -> Any:
        """The first column of the first row, or None when there is no row."""
        rows = self.query_rows(sql, parameters, settings)
        return rows[0][0] if rows else None

    def query_df(self, sql: str, parameters: dict | None = None, settings: dict | None = None) -> "pandas.DataFrame":
        """Result as a pandas DataFrame."""
        with self._errors():
            return self._client.query_df(sql, parameters=parameters, settings=settings)

    def raw_query(self, sql: str, fmt: str | None = None, parameters: dict | None = None,
                  settings: dict | None = None) -> bytes:
        """Result bytes in ClickHouse output format ``fmt`` (what `cairn client` prints).

        With ``fmt=None`` the statement's own FORMAT clause applies, else TabSeparated.
        """
        with self._errors():
            return self._client.raw_query(sql, parameters=parameters, settings=settings, fmt=fmt)

    @contextlib.contextmanager
    def stream(self, sql: str, parameters: dict | None = None,
               settings: dict | None = None) -> Iterator[Iterator[list[tuple]]]:
        """Stream a large result as blocks of rows: ``with engine.stream(q) as blocks: for rows in blocks``."""
        with self._errors():
            with self._client.query_row_block_stream(sql, parameters=parameters, settings=settings) as blocks:
                yield (list(block) for block in blocks)

    def tables(self, database: str | None = None) -> list[str]:
        """Names of the tables and views of ``database`` (this engine's database by default), sorted."""
        return [row[0] for row in self.query_rows(
            "SELECT name FROM system.tables WHERE database = {db:String} ORDER BY name",
            {"db": database or self.database})]

    # -- writes ----------------------------------------------------------
    def command(self, sql: str, parameters: dict | None = None, settings: dict | None = None) -> Any:
        """Run a statement (DDL, INSERT ... SELECT, ...) and return its summary or scalar result."""
        with self._errors():
            return self._client.command(sql, parameters=parameters, settings=settings)

    def insert(self, table: str, rows: Sequence[Sequence[Any]], column_names: Sequence[str],
               settings: dict | None = None) -> None:
        """Insert Python rows (native types) into a table."""
        if not rows:
            return
        with self._errors():
            self._client.insert(table, list(rows), column_names=list(column_names), settings=settings)

    def insert_raw(self, table: str, data: bytes | Iterable[bytes], fmt: str,
                   column_names: Sequence[str] | None = None, settings: dict | None = None) -> None:
        """Insert bytes already encoded in ClickHouse input format ``fmt``.

        ``data`` may be one buffer or an iterable of buffers streamed in order.
        """
        with self._errors():
            self._client.raw_insert(table, list(column_names) if column_names else None,
                                    insert_block=data, settings=settings, fmt=fmt)

    # -- lifecycle -------------------------------------------------------
    def ping(self) -> bool:
        """True when the engine answers."""
        try:
            return self.query_value("SELECT 1") == 1
        except EngineError:
            return False

    def server_version(self) -> str:
        return str(self._client.server_version)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._client.close()

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except CairnError:
            raise
        except Exception as exc:  # driver errors: keep ClickHouse's message, drop the traceback
            raise self._translate(exc) from exc

    def _translate(self, exc: Exception) -> EngineError:
        return _clean_error(exc)

    def describe(self) -> str:
        """Where this engine's data lives, for messages and `cairn status`."""
        raise NotImplementedError


# ---------------------------------------------------------------------------
# Embedded engine (chDB)
# ---------------------------------------------------------------------------

_process_locks: dict[Path, Any] = {}
_process_locks_guard = threading.Lock()


def _lock_data_dir(data_dir: Path) -> None:
    """Own ``data_dir`` for this process: chDB allows one process per data directory."""
    with _process_locks_guard:
        if data_dir in _process_locks:
            return
        data_dir.mkdir(parents=True, exist_ok=True)
        handle = open(data_dir / "cairn.lock", "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            owner = handle.read().strip() or "another process"
            handle.close()
            raise EngineUnavailable(
                f"data directory {data_dir} is in use by {owner}; stop it, or point "
                f"this command at its server (see `cairn serve`)") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"cairn pid {os.getpid()}")
        handle.flush()
        _process_locks[data_dir] = handle


def data_dir_owner(data_dir: Path) -> str | None:
    """Who holds the data directory lock, or None when it is free (or held by us)."""
    data_dir = Path(data_dir).resolve()
    if data_dir in _process_locks:
        return None
    lock_file = data_dir / "cairn.lock"
    if not lock_file.exists():
        return None
    with open(lock_file, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            return handle.read().strip() or "another process"
        fcntl.flock(handle, fcntl.LOCK_UN)
    return None


class EmbeddedEngine(Engine):
    """ClickHouse embedded in this process by chDB, persisted in ``<data_dir>/clickhouse``."""

    kind = "embedded"

    def __init__(self, data_dir: Path, database: str, settings: dict | None = None):
        import clickhouse_connect

        self.data_dir = Path(data_dir).resolve()
        _lock_data_dir(self.data_dir)
        self.path = self.data_dir / "clickhouse"
        self.path.mkdir(parents=True, exist_ok=True)
        try:
            client = clickhouse_connect.get_client(dsn=f"chdb://{self.path}", settings=settings or {})
        except Exception as exc:
            raise EngineUnavailable(f"cannot open the embedded engine in {self.path}: {exc}") from None
        super().__init__(client, database)
        self._inserter = None
        self._inserter_lock = threading.Lock()

    def describe(self) -> str:
        return f"embedded chDB in {self.path}"

    def open_session(self, setup: Sequence[str] = ()) -> EmbeddedSession:
        """A separate chDB connection on this engine's data, after running ``setup`` statements."""
        return EmbeddedSession(self.path, setup)

    def insert_raw(self, table: str, data: bytes | Iterable[bytes], fmt: str,
                   column_names: Sequence[str] | None = None, settings: dict | None = None) -> None:
        import chdb

        columns = f" ({', '.join(column_names)})" if column_names else ""
        clause = ""
        if settings:
            clause = " SETTINGS " + ", ".join(f"{key} = {_setting_literal(value)}"
                                              for key, value in settings.items())
        chunks = [data] if isinstance(data, (bytes, bytearray, memoryview)) else data
        with self._inserter_lock, self._errors():
            if self._inserter is None:
                self._inserter = chdb.connect(str(self.path))
            with self._inserter.send_insert(f"INSERT INTO {table}{columns}{clause}", fmt) as insert:
                for chunk in chunks:
                    if chunk:
                        insert.append(bytes(chunk))
                insert.finish()

    def close(self) -> None:
        with self._inserter_lock:
            if self._inserter is not None:
                with contextlib.suppress(Exception):
                    self._inserter.close()
                self._inserter = None
        super().close()


# ---------------------------------------------------------------------------
# Low-level embedded sessions (what `cairn serve` runs queries on)
# ---------------------------------------------------------------------------

_DUP_PREFIX_RE = re.compile(r"^(?:Code: (\d+)\. DB::Exception: )+")
_VERSION_RE = re.compile(r"\s*\(version [\w.]+(?: \(official build\))?\)")


def engine_error(exc: BaseException) -> EngineError:
    """An EngineError with ClickHouse's own text (one line, no version, no repeated prefix)."""
    if isinstance(exc, EngineError):
        return exc
    text = str(exc).strip()
    for noise in ("Streaming query failed: ", "Streaming insert append failed: ",
                  "Streaming insert finish failed: "):
        text = text.replace(noise, "")
    start = text.find("Code: ")
    if start > 0:
        text = text[start:]
    text = _VERSION_RE.sub("", text)
    text = _DUP_PREFIX_RE.sub(lambda m: f"Code: {m.group(1)}. DB::Exception: ", text)
    # chDB sometimes appends the error name twice: "... (READONLY). (READONLY)".
    text = re.sub(r"(\([A-Z_]+\))\.? \1$", r"\1", text.replace("\n", " ").strip())
    match = _CODE_RE.search(text)
    return EngineError(text, int(match.group(1)) if match else None)


@dataclass
class RawResult:
    """Bytes of one statement's result and what it read and wrote."""

    data: bytes
    rows_read: int = 0
    bytes_read: int = 0
    rows_written: int = 0
    bytes_written: int = 0
    elapsed: float = 0.0


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
        self.cancel()


class EmbeddedSession:
    """One chDB connection on an embedded data directory.

    Settings changed with ``SET`` stay for the life of the session, which is what
    restricted sessions rely on: their row filters and ``readonly = 1`` are set once
    at creation and the engine itself refuses any later change. One statement at a
    time per session; the caller serialises (the server keeps pools of sessions).
    """

    def __init__(self, path: Path, setup: Sequence[str] = ()):
        import chdb

        try:
            self._conn = chdb.connect(str(path))
        except Exception as exc:
            raise EngineUnavailable(f"cannot open the embedded engine in {path}: {exc}") from None
        self.created = time.monotonic()
        self.current_db: str | None = None
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
            # At the end, so that error positions ClickHouse reports stay those of the text.
            sql = f"{sql}\n/* cairn-query:{tag} */"
            kill = lambda: killer.kill(tag)  # noqa: E731
        try:
            return RawStream(self._conn.send_query(sql, fmt, params=params or None), kill)
        except Exception as exc:
            raise engine_error(exc) from None

    def kill(self, tag: str) -> None:
        """KILL the query that ``stream(..., killer=self)`` started with ``tag``."""
        if not re.fullmatch(r"[0-9a-f]{32}", tag):
            raise ValueError("bad query tag")
        with self._kill_lock:
            self.execute(f"KILL QUERY WHERE position(query, '/* cairn-query:{tag} */') > 0 "
                         f"AND NOT startsWith(query, 'KILL') ASYNC")

    def insert(self, statement: str, fmt: str, chunks: Iterable[bytes]) -> RawResult:
        """Stream ``chunks`` (encoded in ``fmt``) into ``statement`` (``INSERT INTO t (cols)``)."""
        try:
            inserter = self._conn.send_insert(statement, fmt)
        except Exception as exc:
            raise engine_error(exc) from None
        try:
            for chunk in chunks:
                if chunk:
                    inserter.append(bytes(chunk))
            res = inserter.finish()
        except BaseException as exc:
            with contextlib.suppress(Exception):
                inserter.cancel()
            if isinstance(exc, Exception):
                raise engine_error(exc) from None
            raise
        return RawResult(b"", rows_written=int(res.rows_written), bytes_written=int(res.bytes_written),
                         elapsed=float(res.elapsed))

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._conn.close()


def sql_string(value: object) -> str:
    """A ClickHouse string literal for ``value`` (backslash and quote escaped)."""
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


def sql_identifier(name: str) -> str:
    """A back-quoted ClickHouse identifier."""
    return "`" + str(name).replace("\\", "\\\\").replace("`", "\\`") + "`"


def _setting_literal(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, (int, float)):
        return str(value)
    return sql_string(value)


# ---------------------------------------------------------------------------
# Server engine (ClickHouse over HTTP)
# ---------------------------------------------------------------------------

class RemoteEngine(Engine):
    """A ClickHouse server, or a local `cairn serve`, reached over the HTTP interface."""

    kind = "server"

    def __init__(self, host: str, port: int, user: str, password: str, database: str,
                 secure: bool = False, connect_timeout: float = 10.0, settings: dict | None = None):
        import clickhouse_connect

        self.host, self.port, self.secure = host, port, secure
        try:
            # The database may not exist yet (before `cairn migrate`): connect to default.
            client = clickhouse_connect.get_client(
                host=host, port=port, username=user, password=password, secure=secure,
                connect_timeout=connect_timeout, send_receive_timeout=3600,
                settings=settings or {}, autogenerate_session_id=False)
        except Exception as exc:
            raise EngineUnavailable(self._unreachable(exc)) from None
        super().__init__(client, database)

    def describe(self) -> str:
        scheme = "https" if self.secure else "http"
        return f"ClickHouse server at {scheme}://{self.host}:{self.port}"

    def _unreachable(self, exc: Exception) -> str:
        text = str(exc)
        cause = text
        for needle, label in (("Connection refused", "connection refused"),
                              ("Name or service not known", "unknown host"),
                              ("timed out", "timed out"),
                              ("Authentication failed", "authentication failed"),
                              ("AUTHENTICATION_FAILED", "authentication failed"),
                              ("REQUIRED_PASSWORD", "authentication failed")):
            if needle in text:
                cause = label
                break
        else:
            cause = _clean_error(exc).args[0][:300]
        return f"cannot reach ClickHouse at {self.host}:{self.port}: {cause}"

    def _translate(self, exc: Exception) -> EngineError:
        text = str(exc)
        if "Code: " not in text and any(s in text for s in ("Connection refused", "Max retries", "timed out",
                                                           "RemoteDisconnected", "Connection reset")):
            return EngineUnavailable(self._unreachable(exc))
        return _clean_error(exc)


# ---------------------------------------------------------------------------

def open_engine(config: "Config", settings: dict | None = None) -> Engine:
    """Open the engine the configuration asks for.

    With the embedded engine, when another process (``cairn serve``) owns the data
    directory and has published where it listens, connect to it over HTTP instead:
    the user's commands work the same while the server runs.
    """
    if config.engine == "server":
        ch = config.section("clickhouse")
        return RemoteEngine(ch["host"], ch["port"], ch["user"], ch["password"], config.database,
                            secure=ch["secure"], connect_timeout=ch["connect_timeout"], settings=settings)
    data_dir = config.data_dir
    owner = data_dir_owner(data_dir)
    if owner is not None:
        served = read_serve_file(data_dir)
        if served is not None:
            return RemoteEngine(served.host, served.port, served.user, served.password,
                                config.database, settings=settings)
    return EmbeddedEngine(data_dir, config.database, settings=settings)
