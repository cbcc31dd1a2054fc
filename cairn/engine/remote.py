"""A ClickHouse server, or a local `cairn serve`, reached over the HTTP interface."""

from __future__ import annotations

from cairn.engine.contract import Capabilities
from cairn.engine.driver import ClientEngine
from cairn.engine.errors import unreachable

# A real ClickHouse server: its own users and row policies; the loader keeps to one
# connection (parallel inserts have only been wanted on the embedded engine).
SERVER = Capabilities(in_process=False, over_http=True, via_serve=False, has_rbac=True,
                      parallel_inserts=False)
# `cairn serve`: Cairn's own users and access rules instead of ClickHouse RBAC.
SERVE = Capabilities(in_process=False, over_http=True, via_serve=True, has_rbac=False,
                     parallel_inserts=False)


class RemoteEngine(ClientEngine):
    """A ClickHouse server, or a local `cairn serve` (``via_serve=True``), over HTTP(S)."""


    def __init__(self, host: str, port: int, user: str, password: str, database: str,
                 secure: bool = False, connect_timeout: float = 10.0, settings: dict | None = None,
                 via_serve: bool = False):
        import clickhouse_connect

        self.host, self.port, self.secure = host, port, secure
        self._endpoint = f"{host}:{port}"
        # Kept to open parallel_writer() connections the same way.
        self._connect = dict(host=host, port=port, user=user, password=password, secure=secure,
                             connect_timeout=connect_timeout, settings=settings, via_serve=via_serve)
        self.capabilities = SERVE if via_serve else SERVER
        try:
            # The database may not exist yet (before `cairn migrate`): connect to default.
            client = clickhouse_connect.get_client(
                host=host, port=port, username=user, password=password, secure=secure,
                connect_timeout=connect_timeout, send_receive_timeout=3600,
                settings=settings or {}, autogenerate_session_id=False)
        except Exception as exc:
            raise unreachable(exc, self._endpoint) from None
        super().__init__(client, database)

    def describe(self) -> str:
        """Where the data lives: ``ClickHouse server at http(s)://host:port``."""
        scheme = "https" if self.secure else "http"
        return f"ClickHouse server at {scheme}://{self.host}:{self.port}"

    def parallel_writer(self) -> "RemoteEngine":
        """A new connection to the same endpoint with the same credential and settings."""
        return RemoteEngine(database=self.database, **self._connect)

