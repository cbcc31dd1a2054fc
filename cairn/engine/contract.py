"""The engine contract: what every Cairn module may ask of a ClickHouse engine.

Two implementations satisfy it: :class:`~cairn.engine.embedded.EmbeddedEngine`
(chDB in this process) and :class:`~cairn.engine.remote.RemoteEngine` (a ClickHouse
server, or a local `cairn serve`, over HTTP). Callers type against :class:`Engine`
and decide by :class:`Capabilities`, never by the concrete class.
``tests/support/engine_contract.py`` checks every implementation against it.

``parameters`` use ClickHouse server-side binding (``{name:Type}`` in the SQL), so
values are never spliced into SQL text. Every method raises
:class:`~cairn.errors.EngineError` (built by :func:`cairn.engine.errors.engine_error`)
with ClickHouse's one-line message when the engine refuses a statement, and
:class:`~cairn.errors.EngineUnavailable` when it cannot be reached.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Protocol, Sequence, runtime_checkable

if TYPE_CHECKING:  # pragma: no cover
    import pandas

    from cairn.engine.session import RawStream


@dataclass(frozen=True)
class Capabilities:
    """What an engine can do, for callers that must choose (instead of testing its class)."""

    in_process: bool
    """chDB runs in this process, which owns the data directory (one process per directory)."""
    over_http: bool
    """Reached over ClickHouse's HTTP interface."""
    via_serve: bool
    """A local `cairn serve` found through ``serve.json``: when it restarts, reconnect
    with :func:`cairn.engine.served.read_serve_file` (never by opening the directory)."""
    has_rbac: bool
    """``CREATE USER``, ``GRANT`` and ``ROW POLICY`` work: a real ClickHouse server."""
    parallel_inserts: bool
    """Loading gains from concurrent inserts on :meth:`Engine.parallel_writer` connections."""


@dataclass
class QueryResult:
    """Rows of a query with their column names and ClickHouse types."""

    column_names: list[str]
    column_types: list[str]
    rows: list[tuple]

    def dicts(self) -> list[dict[str, Any]]:
        """The rows as dictionaries keyed by column name."""
        return [dict(zip(self.column_names, row)) for row in self.rows]


@dataclass
class RawResult:
    """Bytes of one statement's result and what it read and wrote."""

    data: bytes
    rows_read: int = 0
    bytes_read: int = 0
    rows_written: int = 0
    bytes_written: int = 0
    elapsed: float = 0.0


@runtime_checkable
class Engine(Protocol):
    """A connection to one ClickHouse datalake; ``database`` is where Cairn's tables live."""

    database: str
    capabilities: Capabilities

    # -- reads -----------------------------------------------------------
    def query(self, sql: str, parameters: dict | None = None, settings: dict | None = None) -> QueryResult:
        """Run a query and return all its rows."""
        ...

    def query_rows(self, sql: str, parameters: dict | None = None, settings: dict | None = None) -> list[tuple]:
        """Rows of a query as tuples."""
        ...

    def query_value(self, sql: str, parameters: dict | None = None, settings: dict | None = None) -> Any:
        """The first column of the first row, or None when there is no row."""
        ...

    def query_df(self, sql: str, parameters: dict | None = None, settings: dict | None = None) -> "pandas.DataFrame":
        """Result as a pandas DataFrame."""
        ...

    def raw_query(self, sql: str, fmt: str | None = None, parameters: dict | None = None,
                  settings: dict | None = None) -> bytes:
        """Result bytes in output format ``fmt`` (the statement's FORMAT, else TabSeparated, when None)."""
        ...

    def stream(self, sql: str, parameters: dict | None = None,
               settings: dict | None = None) -> contextlib.AbstractContextManager[Iterator[list[tuple]]]:
        """Stream a large result as blocks of rows: ``with engine.stream(q) as blocks: for rows in blocks``."""
        ...

    def tables(self, database: str | None = None) -> list[str]:
        """Names of the tables and views of ``database`` (this engine's database by default), sorted."""
        ...

    # -- writes ----------------------------------------------------------
    def command(self, sql: str, parameters: dict | None = None, settings: dict | None = None) -> Any:
        """Run a statement (DDL, INSERT ... SELECT, ...) and return its summary or scalar result."""
        ...

    def insert(self, table: str, rows: Sequence[Sequence[Any]], column_names: Sequence[str],
               settings: dict | None = None) -> None:
        """Insert Python rows (native types) into a table."""
        ...

    def insert_raw(self, table: str, data: bytes | Iterable[bytes], fmt: str,
                   column_names: Sequence[str] | None = None, settings: dict | None = None) -> None:
        """Insert bytes already encoded in input format ``fmt``; ``data`` is one buffer or an iterable of them."""
        ...

    def parallel_writer(self) -> "Engine":
        """Another, independent connection to the same data, for inserts running concurrently.

        The caller closes it. Open it only when ``capabilities.parallel_inserts``.
        """
        ...

    # -- lifecycle -------------------------------------------------------
    def ping(self) -> bool:
        """True when the engine answers."""
        ...

    def server_version(self) -> str:
        """The ClickHouse version behind this engine."""
        ...

    def describe(self) -> str:
        """Where this engine's data lives, for messages and `cairn status`."""
        ...

    def close(self) -> None:
        """Release the connection (idempotent)."""
        ...

    def __enter__(self) -> "Engine": ...

    def __exit__(self, *exc: object) -> None: ...


@runtime_checkable
class Session(Protocol):
    """One low-level connection that keeps state between statements (what `cairn serve` runs on).

    Unlike :class:`Engine`, a session runs SQL text exactly as given and returns raw
    bytes; ``SET`` and ``USE`` stay in effect for its life. One statement at a time.
    """

    created: float
    """``time.monotonic()`` when the session was opened (for idle and age limits)."""
    current_db: str | None
    """The database its last ``USE`` selected, or None when unknown."""
    url_settings: dict[str, str]
    """The request settings its last ``SET`` applied (cleared while a ``SET`` is in flight)."""

    def execute(self, sql: str, fmt: str = "TabSeparated", params: dict | None = None) -> RawResult:
        """Run one statement to completion and return its bytes."""
        ...

    def stream(self, sql: str, fmt: str = "TabSeparated", params: dict | None = None,
               killer: "Session | None" = None) -> "RawStream":
        """Start a query whose result is read chunk by chunk; ``killer`` can interrupt it."""
        ...

    def kill(self, tag: str) -> None:
        """Stop the query that ``stream(..., killer=self)`` started with ``tag``."""
        ...

    def insert(self, statement: str, fmt: str, chunks: Iterable[bytes]) -> RawResult:
        """Stream ``chunks`` (encoded in ``fmt``) into ``statement`` (``INSERT INTO t (cols)``)."""
        ...

    def close(self) -> None:
        """Release the connection."""
        ...
