"""How `cairn serve` listens and behaves (the ``serve.*`` settings and flags), and its fixed limits."""

from __future__ import annotations

import re
from dataclasses import dataclass

from cairn.errors import CairnError

# Limits that have no `serve.*` setting (yet): module constants, documented in docs/serve.md.
# ClickHouse's max_session_timeout (server setting, default 3600 s).
MAX_SESSION_TIMEOUT = 3600.0
# Named sessions (session_id) alive at once: per user and in all. Each holds a chDB
# session (~150 KB); ClickHouse's max_sessions_for_user is unlimited by default, but
# clickhouse-connect opens one per client object, so a cap keeps memory bounded.
MAX_SESSIONS_PER_USER = 100
MAX_SESSIONS = 1000
# A restricted user's body is query text only (restricted users cannot insert): the
# session's max_query_size (cairn.serve.access.session_setup) bounds it, compressed or not.
MAX_QUERY_SIZE = 256 * 1024
# Failed logins in FAILED_LOGIN_WINDOW seconds before further attempts are refused
# (cairn.serve.throttle): per user name, and per client address.
FAILED_LOGINS_PER_USER = 5
FAILED_LOGINS_PER_ADDRESS = 30
FAILED_LOGIN_WINDOW = 60.0
# What an error may leave unread of a body and still keep the connection (drained);
# beyond, the connection is closed.
DRAIN_BYTES = 16 * 1024 * 1024

_HEADER_VALUE = re.compile(r"^[\x20-\x7e]{1,128}$")


@dataclass
class ServeOptions:
    """How `cairn serve` listens and behaves."""

    host: str = "127.0.0.1"
    port: int = 8123
    workers: int = 2
    pool_sessions: int = 32  # chDB sessions per pool (slow readers each hold one, not a worker)
    max_body_bytes: int = 256 * 1024 * 1024
    display_name: str = "cairn"
    buffer_bytes: int = 1024 * 1024  # results up to this size are sent with Content-Length
    shutdown_grace: float = 10.0
    session_timeout: float = 60.0
    query_timeout: float = 300.0

    def __post_init__(self) -> None:
        # The display name is sent in X-ClickHouse-Server-Display-Name: printable ASCII only.
        if not _HEADER_VALUE.match(self.display_name or ""):
            raise CairnError(f"serve.display_name {self.display_name!r}: 1 to 128 printable ASCII characters")
