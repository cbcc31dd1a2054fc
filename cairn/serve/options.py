"""How `cairn serve` listens and behaves: the ``serve.*`` settings and flags (``cairn.serve.settings``)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from cairn.errors import CairnError

_HEADER_VALUE = re.compile(r"^[\x20-\x7e]{1,128}$")


@dataclass
class ServeOptions:
    """How `cairn serve` listens and behaves; each field is the ``serve.<field>`` setting (docs/serve.md)."""

    host: str = "127.0.0.1"
    port: int = 8123
    workers: int = 2
    # chDB sessions per pool: a slow reader holds a session, never a worker.
    pool_sessions: int = 32
    max_body_bytes: int = 256 * 1024 * 1024
    display_name: str = "cairn"
    # Results up to this size are sent with Content-Length (and a full summary).
    buffer_bytes: int = 1024 * 1024
    shutdown_grace: float = 10.0
    # Client sessions (session_id): idle timeout, ClickHouse's max_session_timeout, and
    # caps in all and per user. Each holds a chDB session (~150 KB); clickhouse-connect
    # opens one per client object, so the caps keep memory bounded.
    session_timeout: float = 60.0
    max_session_timeout: float = 3600.0
    max_sessions: int = 1000
    max_sessions_per_user: int = 100
    # A restricted user's body is query text only (restricted users cannot insert):
    # bounded by their sessions' max_query_size, compressed or not.
    max_query_size: int = 256 * 1024
    # max_result_bytes of a result run whole (held in memory) and of restricted sessions.
    max_result_bytes: int = 256 * 1024 * 1024
    query_timeout: float = 300.0
    # Failed logins in failed_login_window seconds before further attempts are refused
    # (cairn.serve.throttle): per user name, and per client address.
    failed_logins_per_user: int = 5
    failed_logins_per_address: int = 30
    failed_login_window: float = 60.0
    # What an error may leave unread of a body and still keep the connection (drained).
    drain_bytes: int = 16 * 1024 * 1024
    # The query log (cairn.serve.query_log): on or off, its retention, how often it is written.
    query_log: bool = True
    query_log_ttl_days: int = 30
    query_log_flush_interval: float = 5.0

    def __post_init__(self) -> None:
        # The display name is sent in X-ClickHouse-Server-Display-Name: printable ASCII only.
        if not _HEADER_VALUE.match(self.display_name or ""):
            raise CairnError(f"serve.display_name {self.display_name!r}: 1 to 128 printable ASCII characters")
