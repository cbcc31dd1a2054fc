"""ClickHouse embedded in this process by chDB, and the lock that makes it the directory's only owner.

chDB allows one process per data directory; a second one would fail deep inside
ClickHouse or corrupt it. So opening an :class:`EmbeddedEngine` takes an exclusive
lock on ``<data_dir>/cairn.lock`` first, and another process gets a clear message
naming the owner (usually `cairn serve`, which other commands then reach over HTTP).
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
from cairn.engine.session import EmbeddedSession
from cairn.engine.sql import column_list, settings_clause
from cairn.errors import EngineUnavailable

# Locks this process holds, by resolved data directory: held until the process ends,
# so that engines opened and closed in turn (and parallel writers) never let go of it.
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


class EmbeddedEngine(ClientEngine):
    """ClickHouse embedded in this process by chDB, persisted in ``<data_dir>/clickhouse``."""

    # Concurrent inserts on separate chDB connections use more cores of this process.
    capabilities = Capabilities(in_process=True, over_http=False, via_serve=False, has_rbac=False,
                                parallel_inserts=True)

    def __init__(self, data_dir: Path, database: str, settings: dict | None = None):
        import clickhouse_connect

        self.data_dir = Path(data_dir).resolve()
        _lock_data_dir(self.data_dir)
        self.path = self.data_dir / "clickhouse"
        self.path.mkdir(parents=True, exist_ok=True)
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
        """Insert bytes encoded in ``fmt`` through chDB's streaming inserter.

        That is the fast path on chDB, so raw bulk inserts skip clickhouse-connect here.
        The inserter is its own connection, opened on first use; one insert at a time.
        """
        import chdb

        statement = f"INSERT INTO {table}{column_list(column_names)}{settings_clause(settings)}"
        chunks = [data] if isinstance(data, (bytes, bytearray, memoryview)) else data
        with self._inserter_lock, self._errors():
            if self._inserter is None:
                self._inserter = chdb.connect(str(self.path))
            with self._inserter.send_insert(statement, fmt) as insert:
                for chunk in chunks:
                    if chunk:
                        insert.append(bytes(chunk))
                insert.finish()

    def close(self) -> None:
        """Close the raw inserter and the client; the directory lock stays with the process."""
        with self._inserter_lock:
            if self._inserter is not None:
                with contextlib.suppress(Exception):
                    self._inserter.close()
                self._inserter = None
        super().close()
