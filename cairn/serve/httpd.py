"""The listening HTTP server of `cairn serve`, and the monitor of its running queries."""

from __future__ import annotations

import contextlib
import logging
import secrets
import select
import socket
import threading
import time
from http.server import ThreadingHTTPServer
from typing import Any

from cairn.engine.served import ADMIN_USER
from cairn.serve.handler import ClickHouseHandler
from cairn.serve.options import ServeOptions
from cairn.serve.pipeline import StatementCache
from cairn.serve.query_log import QueryLog
from cairn.serve.queries import RunningQueries
from cairn.serve.sessions import Backend, Principal
from cairn.serve.throttle import LoginThrottle, retry_header
from cairn.serve.users import Authenticator, User, hash_password, verify_password
from cairn.serve.wire import HttpError

log = logging.getLogger("cairn.serve")


class QueryMonitor(threading.Thread):
    """Cancels the queries of clients that went away; expires idle client sessions."""

    def __init__(self, server: "CairnHTTPServer"):
        super().__init__(name="cairn-serve-monitor", daemon=True)
        self.server = server
        self._watched: dict[int, tuple[socket.socket, Any]] = {}
        self._lock = threading.Lock()
        self.stop = threading.Event()

    def watch(self, sock: socket.socket, stream: Any) -> int:
        """Cancel ``stream`` if the client on ``sock`` goes away; returns a token for ``unwatch``."""
        token = id(stream)
        with self._lock:
            self._watched[token] = (sock, stream)
        return token

    def unwatch(self, token: int) -> None:
        """Stop watching (the query ended)."""
        with self._lock:
            self._watched.pop(token, None)

    def cancel_all(self) -> None:
        """Interrupt every watched query (shutdown after the grace period).

        Only ``interrupt()``: the chDB stream belongs to the request's thread, which
        cancels it itself before releasing its session (``RawStream``).
        """
        with self._lock:
            streams = [s for _, s in self._watched.values()]
        for stream in streams:
            stream.interrupt()

    def run(self) -> None:
        """Poll the watched connections ten times a second; expire client sessions every second."""
        last_expiry = time.monotonic()
        while not self.stop.wait(0.1):
            with self._lock:
                items = list(self._watched.items())
            for token, (sock, stream) in items:
                if peer_closed(sock):
                    # interrupt, never cancel: the request thread may have released (and
                    # the pool closed) the session by now, and chDB crashes on a stream of
                    # a closed connection (issue 12, finding 1).
                    log.info("client went away: interrupting its query")
                    stream.interrupt()
                    self.unwatch(token)
            if time.monotonic() - last_expiry > 1.0:
                last_expiry = time.monotonic()
                with contextlib.suppress(Exception):
                    self.server.backend.expire_sessions()


def peer_closed(sock: socket.socket) -> bool:
    """True when the client closed its side (readable with nothing to read)."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
        if not readable:
            return False
        return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except (OSError, ValueError):
        return True


class CairnHTTPServer(ThreadingHTTPServer):
    """The listening server of `cairn serve`: a thread per connection (HTTP/1.1 keep-alive)."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], backend: Backend, authenticator: Authenticator,
                 admin_password: str, options: ServeOptions):
        self.backend = backend
        self.authenticator = authenticator
        self.admin_password = admin_password
        self.options = options
        self.statements = StatementCache()
        self.queries = RunningQueries(backend.killer.kill)
        self.stopping = False
        self.active = 0
        self.active_lock = threading.Condition()
        self.monitor = QueryMonitor(self)
        self.query_log: "QueryLog | None" = None
        """Where finished statements go (``cairn.serve.query_log``); None when ``serve.query_log`` is off."""
        self.throttle = LoginThrottle(options.failed_logins_per_user, options.failed_logins_per_address,
                                      options.failed_login_window)
        self._dummy: str | None = None
        self._dummy_lock = threading.Lock()
        self._dummy_hash()  # made now: the first unknown user must not pay for it (timing)
        super().__init__(address, ClickHouseHandler)

    def authenticate(self, user: str, password: str, address: str = "", given: bool = True) -> Principal:
        """The principal of these credentials, or the error ClickHouse gives (516).

        403 for a wrong password or an unknown user, 401 when no credential came at all
        (as ClickHouse). Unknown users cost the same argon2 verification as a wrong
        password, so that names cannot be told apart by timing; failures are throttled
        per name and per address (``cairn.serve.throttle``).
        """
        wait = self.throttle.retry_after(user, address)
        if wait > 0:
            raise HttpError(516, f"{user}: Authentication failed: too many failed logins, retry in "
                                 f"{retry_header(wait)} s", "AUTHENTICATION_FAILED", status=429,
                            headers={"Retry-After": retry_header(wait)})
        if user == ADMIN_USER:
            if secrets.compare_digest(password.encode("utf-8", "surrogatepass"),
                                      self.admin_password.encode()):
                return Principal(ADMIN_USER, True)
            verify_password(self._dummy_hash(), password)  # the time of any other failure
        elif self.authenticator.known(user):
            account: User | None = self.authenticator.authenticate(user, password)
            if account is not None:
                return Principal(account.name, account.admin, account.scope)
        else:
            verify_password(self._dummy_hash(), password)
        if given:
            self.throttle.failed(user, address)
        raise HttpError(516, f"{user}: Authentication failed: password is incorrect, or there is no user "
                             f"with such name", "AUTHENTICATION_FAILED", status=403 if given else 401,
                        headers=None if given else {"WWW-Authenticate": 'Basic realm="ClickHouse server HTTP API"'})

    def _dummy_hash(self) -> str:
        """An argon2 hash of a random password, made once (verifying against it costs what a real one does)."""
        with self._dummy_lock:
            if self._dummy is None:
                self._dummy = hash_password(secrets.token_urlsafe(16))
            return self._dummy
