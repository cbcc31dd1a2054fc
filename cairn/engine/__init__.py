"""One contract over two ClickHouse engines; the only package that imports chDB or clickhouse-connect.

=================  ==========================================================
``contract``       the :class:`Engine` and :class:`Session` protocols, :class:`Capabilities`,
                   result types: what the rest of Cairn may ask of an engine
``errors``         :func:`engine_error`, the one driver-exception translator
``sql``            quoting of identifiers, string literals and settings
``driver``         the Engine methods both engines share on clickhouse-connect
``embedded``       :class:`EmbeddedEngine` (chDB in this process) and the data-directory lock
``infile``         embedded inserts that raise on failure (``INSERT ... FROM INFILE`` a FIFO)
``datadir``        the data directory as files: free space, private modes
``session``        :class:`EmbeddedSession`, :class:`RawStream`: raw chDB connections for `cairn serve`
``remote``         :class:`RemoteEngine`: a ClickHouse server or a local `cairn serve` over HTTP
``served``         the ``serve.json`` protocol: how local commands find a running `cairn serve`
=================  ==========================================================

:func:`open_engine` picks the engine a configuration asks for.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cairn.engine.contract import Capabilities, Engine, QueryResult, RawResult, Session
from cairn.engine.embedded import EmbeddedEngine, data_dir_owner
from cairn.engine.errors import engine_error
from cairn.engine.remote import RemoteEngine
from cairn.engine.served import read_serve_file
from cairn.engine.session import EmbeddedSession, RawStream
from cairn.engine.sql import setting_literal, sql_identifier, sql_string

if TYPE_CHECKING:  # pragma: no cover
    from cairn.config import Config

__all__ = [
    "Capabilities", "EmbeddedEngine", "EmbeddedSession", "Engine", "QueryResult", "RawResult",
    "RawStream", "RemoteEngine", "Session", "data_dir_owner", "engine_error", "open_engine",
    "setting_literal", "sql_identifier", "sql_string",
]


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
                                config.database, settings=settings, via_serve=True)
    return EmbeddedEngine(data_dir, config.database, settings=settings)
