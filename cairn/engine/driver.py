"""The :class:`~cairn.engine.contract.Engine` methods both engines share, on clickhouse-connect.

clickhouse-connect speaks to chDB in-process as well as to a server over HTTP, so
query semantics and result types are the same for both; the subclasses only say how
the client is made, where the data is, and (embedded) how raw bytes go in fastest.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Sequence

from cairn.engine.contract import Capabilities, Engine, QueryResult
from cairn.engine.errors import engine_error
from cairn.errors import CairnError, EngineError

if TYPE_CHECKING:  # pragma: no cover
    import pandas


class ClientEngine:
    """An :class:`Engine` driven through a clickhouse-connect client."""

    database: str = ""
    capabilities: Capabilities
    # ``host:port`` of an HTTP engine: lets the error translator tell "unreachable" apart.
    _endpoint: str | None = None

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

    def parallel_writer(self) -> Engine:
        """Another, independent connection to the same data (each engine says how)."""
        raise NotImplementedError

    # -- lifecycle -------------------------------------------------------
    def ping(self) -> bool:
        """True when the engine answers."""
        try:
            return self.query_value("SELECT 1") == 1
        except EngineError:
            return False

    def server_version(self) -> str:
        """The ClickHouse version behind this engine."""
        return str(self._client.server_version)

    def describe(self) -> str:
        """Where this engine's data lives, for messages and `cairn status`."""
        raise NotImplementedError

    def close(self) -> None:
        """Release the client (idempotent)."""
        with contextlib.suppress(Exception):
            self._client.close()

    def __enter__(self) -> "ClientEngine":
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
            raise engine_error(exc, self._endpoint) from exc
