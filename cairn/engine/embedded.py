"""ClickHouse embedded in this process by chDB, and the lock that makes it the directory's only owner.

chDB allows one process per data directory; a second one would fail deep inside
ClickHouse or corrupt it. So opening an :class:`EmbeddedEngine` takes an exclusive
lock on ``<data_dir>/cairn.lock`` first, and another process gets a clear message
naming the owner (usually `cairn serve`, which other commands then reach over HTTP).

The data directory is private to its owner: opening it sets the process umask to
0o077, so every directory (0700) and file (0600) Cairn or chDB creates in it is
unreadable by group and others. Inserts go through :mod:`cairn.engine.infile`, so
a failed write raises instead of being reported as written.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
from pathlib import Path
from typing import Any, Iterable, Sequence

from cairn.engine.contract import Capabilities
from cairn.engine.driver import ClientEngine
from cairn.engine.errors import engine_error
from cairn.engine.infile import infile_insert, remove_stale_dirs, statement_batches
from cairn.engine.session import EmbeddedSession
from cairn.engine.sql import column_list, settings_list
from cairn.errors import EngineUnavailable

# Locks this process holds, by resolved data directory: held until the process ends,
# so that engines opened and closed in turn (and parallel writers) never let go of it.
_process_locks: dict[Path, Any] = {}
_process_locks_guard = threading.Lock()

PRIVATE_UMASK = 0o077
"""Files 0600 and directories 0700: the datalake holds events, password hashes, credentials."""


def _make_private_by_default() -> None:
    """Set the process umask to 0o077 (idempotent).

    Process-wide on purpose: chDB writes its files from its own threads with the
    process umask, and there is no per-thread umask. A process that opens an
    embedded engine owns that data directory, and what else it writes (serve.json,
    checkpoints, exports) is better private too; nothing Cairn writes needs to be
    readable by other local users.
    """
    os.umask(PRIVATE_UMASK)


def _lock_data_dir(data_dir: Path) -> None:
    """Own ``data_dir`` for this process: chDB allows one process per data directory."""
    with _process_locks_guard:
        if data_dir in _process_locks:
            return
        _make_private_by_default()
        data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        handle = open(os.open(data_dir / "cairn.lock", os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600), "a+")
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


class EmbeddedEngine(ClientEngine):
    """ClickHouse embedded in this process by chDB, persisted in ``<data_dir>/clickhouse``."""

    # Concurrent inserts on separate chDB connections use more cores of this process.
    capabilities = Capabilities(in_process=True, over_http=False, via_serve=False, has_rbac=False,
                                parallel_inserts=True)

    def __init__(self, data_dir: Path, database: str, settings: dict | None = None):
        import clickhouse_connect

        self.data_dir = Path(data_dir).resolve()
        _lock_data_dir(self.data_dir)
        remove_stale_dirs()  # FIFO directories of inserting processes that were killed
        self.path = self.data_dir / "clickhouse"
        self.path.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._settings = settings
        try:
            client = clickhouse_connect.get_client(dsn=f"chdb://{self.path}", settings=settings or {})
        except Exception as exc:
            raise EngineUnavailable(f"cannot open the embedded engine in {self.path}: {exc}") from None
        super().__init__(client, database)
        self._inserter = None
        self._inserter_lock = threading.Lock()

    def describe(self) -> str:
        """Where the data lives: ``embedded chDB in <data_dir>/clickhouse``."""
        return f"embedded chDB in {self.path}"

    def parallel_writer(self) -> "EmbeddedEngine":
        """A new engine on the same data directory in this process (the lock is already ours)."""
        return EmbeddedEngine(self.data_dir, self.database, settings=self._settings)

    def open_session(self, setup: Sequence[str] = ()) -> EmbeddedSession:
        """A separate chDB connection on this engine's data, after running ``setup`` statements."""
        return EmbeddedSession(self.path, setup)

    def insert_raw(self, table: str, data: bytes | Iterable[bytes], fmt: str,
                   column_names: Sequence[str] | None = None, settings: dict | None = None) -> None:
        """Insert bytes encoded in ``fmt``; raises :class:`EngineError` unless the engine stored them.

        The data is materialised first (a producer failing half-way then fails
        before anything is sent), then sent by :func:`cairn.engine.infile.infile_insert`
        on the inserter's own connection, opened on first use; one insert at a time.
        TabSeparated data larger than one insert block goes as several statements,
        each stored all or nothing; with ``insert_deduplication_token`` each gets the
        token suffixed ``:<n>`` (the same data always splits the same way, so a retry
        stores exactly the statements that failed).
        """
        import chdb

        head = f"INSERT INTO {table}{column_list(column_names)}"
        chunks = [data] if isinstance(data, (bytes, bytearray, memoryview)) else data
        batches = statement_batches(chunks, fmt)
        token = (settings or {}).get("insert_deduplication_token")
        with self._inserter_lock, self._errors():
            if self._inserter is None:
                self._inserter = chdb.connect(str(self.path))
            for n, batch in enumerate(batches):
                statement_settings = dict(settings or {})
                if token is not None and len(batches) > 1:
                    statement_settings["insert_deduplication_token"] = f"{token}:{n}"
                infile_insert(self._run_insert, head, fmt, batch, settings_list(statement_settings))

    def _run_insert(self, sql: str) -> Any:
        try:
            return self._inserter.query(sql, "TabSeparated")
        except Exception as exc:
            raise engine_error(exc) from None

    def close(self) -> None:
        """Close the raw inserter and the client; the directory lock stays with the process."""
        with self._inserter_lock:
            if self._inserter is not None:
                with contextlib.suppress(Exception):
                    self._inserter.close()
                self._inserter = None
        super().close()

