"""Sessions of the embedded engine for `cairn serve`, per principal.

Admins share one pool of chDB sessions; each restricted user has pools whose sessions
carry that user's row filters and ``readonly = 1`` (``cairn.serve.access.session_setup``),
so the engine itself enforces them. A client that sends ``session_id`` gets a named
session kept between its requests. ``FairSlots`` bounds how many statements compute in
the engine at once, first come, first served: every session holds a slot only while
the engine computes (``EmbeddedSession.gate``), never while a result is written to a
slow client, so that slow readers do not keep anyone else waiting (issue 12, finding 7).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Iterator

from cairn.engine import EmbeddedEngine, EmbeddedSession
from cairn.engine.sql import sql_identifier
from cairn.errors import EngineError
from cairn.serve.access import Scope, session_setup
from cairn.serve.options import ServeOptions
from cairn.serve.wire import HttpError

log = logging.getLogger("cairn.serve")

# /ping runs its engine check at most this often (seconds).
HEALTH_TTL = 1.0
# How long a request for a client session waits for the request finishing in it.
FINISH_WAIT = 5.0
_UTC_NAMES = frozenset({"UTC", "Etc/UTC", "Etc/UCT", "Etc/Universal", "Etc/Zulu", "UCT", "Universal", "Zulu"})


@dataclass(frozen=True)
class Principal:
    """Who a request runs as."""

    name: str
    admin: bool
    scope: Scope = Scope()


class FairSlots:
    """A counting semaphore that serves waiters first come, first served.

    threading.Semaphore lets a newly arriving thread take a released slot before the
    threads already waiting: under a steady load of dashboard clients some requests then
    wait for tens of seconds. Here a released slot is handed to the oldest waiter.
    """

    def __init__(self, size: int):
        self._free = size
        self._lock = threading.Lock()
        self._waiters: deque[threading.Event] = deque()

    def __enter__(self) -> None:
        with self._lock:
            if self._free > 0 and not self._waiters:
                self._free -= 1
                return
            ticket = threading.Event()
            self._waiters.append(ticket)
        ticket.wait()

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            if self._waiters:
                self._waiters.popleft().set()  # the slot passes straight to the oldest waiter
            else:
                self._free += 1


class SessionPool:
    """At most ``size`` chDB sessions built by ``factory``; a request borrows one."""

    def __init__(self, factory: Callable[[], EmbeddedSession], size: int):
        self._factory = factory
        self._idle: list[EmbeddedSession] = []
        self._slots = threading.BoundedSemaphore(size)
        self._lock = threading.Lock()
        self.closed = False

    @contextlib.contextmanager
    def acquire(self) -> Iterator[EmbeddedSession]:
        """Borrow an idle session (or make one), waiting while ``size`` are lent out."""
        self._slots.acquire()
        session = None
        try:
            with self._lock:
                session = self._idle.pop() if self._idle else None
            if session is None:
                session = self._factory()
            yield session
        except BaseException:
            # A failed statement leaves the session usable, but a cancelled or broken one
            # may not be: drop it rather than hand it to the next request.
            if session is not None:
                session.close()
                session = None
            raise
        finally:
            if session is not None and getattr(session, "discard", False):
                # The request changed it in a way that cannot be undone (restricted
                # settings on a read-only session): the next request gets a fresh one.
                session.close()
                session = None
            if session is not None:
                with self._lock:
                    if self.closed:
                        session.close()
                    else:
                        self._idle.append(session)
            self._slots.release()

    def close(self) -> None:
        """Close the idle sessions; sessions still lent out are closed when returned."""
        with self._lock:
            self.closed = True
            idle, self._idle = self._idle, []
        for session in idle:
            session.close()


@dataclass
class NamedSession:
    """A client session (``session_id``): one chDB session kept between requests.

    One request at a time, as in ClickHouse: another request while one runs fails
    with code 373 (SESSION_IS_LOCKED) at once. The request in flight marks the session
    ``finishing`` just before it writes the end of its answer; a request that comes
    then (the client read the answer and sent its next one before the server's thread
    let go of the session) waits for the release instead of failing.
    """

    session: EmbeddedSession
    owner: str
    timeout: float
    lock: threading.Lock = field(default_factory=threading.Lock)
    last_used: float = field(default_factory=time.monotonic)
    state: tuple = ()  # (scope, tables) the session's filters were built from
    finishing: bool = False
    released: threading.Condition = field(default_factory=threading.Condition)

    def take(self, session_id: str) -> None:
        """Take the session for one request: 373 when a request is running in it."""
        with self.released:
            if not self.lock.acquire(blocking=False):
                if not self.finishing or not self.released.wait_for(lambda: not self.lock.locked(), FINISH_WAIT):
                    raise HttpError(373, f"Session {session_id} is locked by a concurrent client",
                                    "SESSION_IS_LOCKED")
                self.lock.acquire()
            self.finishing = False

    def finish(self) -> None:
        """The request's answer is complete but for its last write: a next request may wait."""
        self.finishing = True

    def release(self) -> None:
        """Let the next request in."""
        with self.released:
            self.finishing = False
            self.lock.release()
            self.released.notify_all()


class Backend:
    """Sessions on the embedded engine, per principal; also the datalake's table list and timezone."""

    def __init__(self, engine: EmbeddedEngine, options: ServeOptions):
        self.engine = engine
        self.database = engine.database
        self.options = options
        self._lock = threading.Lock()
        self._slots = FairSlots(options.workers)
        self._admin_pool = SessionPool(lambda: self._open([]), options.pool_sessions)
        self._user_pools: dict[tuple, SessionPool] = {}
        self._named: dict[tuple[str, str], NamedSession] = {}
        self._tables: tuple[str, ...] = ()
        self._tables_at = float("-inf")
        self.failed: str | None = None
        """The error of an engine that failed for good (code 236), else None."""
        self.on_failure: Callable[[str], None] | None = None
        """Called once when the engine fails (the server stops and exits for a restart)."""
        self._health: tuple[float, str | None] = (float("-inf"), None)
        probe = engine.open_session()
        try:
            zone = probe.execute("SELECT timezone()").data.decode().strip() or "UTC"
        finally:
            probe.close()
        # chDB takes the zone from /etc/localtime ("Etc/UTC"); a ClickHouse server says "UTC",
        # and clients compare a column's zone with the server's by name (timezone() and the
        # X-ClickHouse-Timezone header): sessions say "UTC" too, the same zone by its name.
        self.timezone = "UTC" if zone in _UTC_NAMES else zone
        self._zone_setup = ["SET session_timezone = 'UTC'"] if self.timezone != zone else []
        # Runs KILL QUERY for cancelled queries (client gone, shutdown, KILL by query_id);
        # neither it nor the metadata session waits for a slot.
        self.killer = self._open([])
        self.killer.gate = contextlib.nullcontext()
        self._meta = self._open([])
        self._meta.gate = contextlib.nullcontext()
        self._meta_lock = threading.Lock()

    def _open(self, setup: list[str]) -> EmbeddedSession:
        session = self.engine.open_session([f"USE {sql_identifier(self.database)}", *self._zone_setup, *setup])
        session.current_db = self.database
        session.on_fatal = self.engine_failed
        session.gate = self._slots
        return session

    def engine_failed(self, text: str) -> None:
        """The engine answered code 236: it refuses everything until the process restarts.

        chDB has no recovery in-process (a new connection gets 236 too): log it loudly
        and hand over to ``on_failure`` (the service stops and exits for its supervisor).
        """
        with self._lock:
            first = self.failed is None
            if first:
                self.failed = text
        if not first:
            return
        log.critical("the embedded engine failed and cannot recover in this process: %s", text)
        if self.on_failure is not None:
            self.on_failure(text)

    def health(self) -> str | None:
        """None when the engine answers ``SELECT 1``, else the error (checked at most once a second)."""
        if self.failed is not None:
            return self.failed
        with self._lock:
            at, problem = self._health
            if time.monotonic() - at < HEALTH_TTL:
                return problem
        problem = self._check_engine()
        with self._lock:
            self._health = (time.monotonic(), problem)
        return self.failed or problem

    def _check_engine(self) -> str | None:
        """Run ``SELECT 1`` on the metadata session: None, or the engine's error text."""
        try:
            with self._meta_lock:
                answer = self._meta.execute("SELECT 1").data
        except EngineError as exc:
            return str(exc)
        return None if answer.strip() == b"1" else f"unexpected answer to SELECT 1: {answer[:100]!r}"

    def tables(self) -> tuple[str, ...]:
        """Tables and views of the datalake database (re-read at most once a second)."""
        with self._lock:
            if time.monotonic() - self._tables_at < 1.0:
                return self._tables
        # Its own session: pooled ones carry the URL settings of their last request
        # (max_result_rows=10 would break this listing).
        with self._meta_lock:
            raw = self._meta.execute("SELECT name FROM system.tables WHERE database = {db:String} ORDER BY name",
                                     "TabSeparatedRaw", {"db": self.database}).data.decode()
        tables = tuple(line for line in raw.split("\n") if line)
        with self._lock:
            self._tables, self._tables_at = tables, time.monotonic()
        return tables

    def _restricted_setup(self, principal: Principal, tables: tuple[str, ...]) -> list[str]:
        # Before session_setup's final readonly = 1: a result run whole (JSON, Parquet...)
        # is held in memory whole, and a read-only session cannot take the cap per query.
        return [f"SET max_result_bytes = {self.options.max_result_bytes}",
                *session_setup(principal.scope, self.database, tables, self.options.query_timeout,
                               self.options.max_query_size)]

    def pool_for(self, principal: Principal, tables: tuple[str, ...]) -> SessionPool:
        """The pool of sessions that run this principal's queries."""
        if principal.admin:
            return self._admin_pool
        # The filters cover the tables that existed when the sessions were made: a new
        # table (or a changed scope) gets a new pool, never an unfiltered table.
        key = (principal.name, principal.scope, tables)
        with self._lock:
            pool = self._user_pools.get(key)
            if pool is None:
                stale = [k for k in self._user_pools if k[0] == principal.name]
                for k in stale:
                    self._user_pools.pop(k).close()
                setup = self._restricted_setup(principal, tables)
                pool = SessionPool(lambda: self._open(setup), self.options.pool_sessions)
                self._user_pools[key] = pool
            return pool

    @contextlib.contextmanager
    def session(self, principal: Principal, session_id: str | None, tables: tuple[str, ...],
                timeout: float | None, check: bool = False) -> Iterator[tuple[EmbeddedSession, bool]]:
        """A session for one request: the client's named session, or one from the pool.

        Yields (session, named).
        """
        # At most `workers` statements compute in the engine at once, whoever sends them,
        # so that a burst of dashboard clients queues instead of thrashing the cores: each
        # session's gate takes a slot around each engine call (not while answering). The
        # collector's inserts and KILL QUERY do not take a slot.
        if not session_id:
            with self.pool_for(principal, tables).acquire() as session:
                yield session, False
            return
        with self._named_session(principal, session_id, tables, timeout, check) as session:
            yield session, True

    def named(self, principal: Principal, session_id: str) -> NamedSession | None:
        """The client session ``session_id`` of ``principal``, if it exists."""
        with self._lock:
            return self._named.get((principal.name, session_id))

    @contextlib.contextmanager
    def _named_session(self, principal: Principal, session_id: str, tables: tuple[str, ...],
                       timeout: float | None, check: bool) -> Iterator[EmbeddedSession]:
        key = (principal.name, session_id)
        state = (principal.admin, principal.scope, () if principal.admin else tables)
        with self._lock:
            named = self._named.get(key)
            if named is not None and named.state != state and not named.lock.locked():
                # The user's scope or the datalake's tables changed since the session was
                # made: its filters are stale, start a fresh one (as a new login would).
                self._named.pop(key).session.close()
                named = None
            if named is None:
                if check:
                    raise HttpError(372, f"Session {session_id} not found", "SESSION_NOT_FOUND")
                self._check_session_caps(principal.name)
                setup = [] if principal.admin else self._restricted_setup(principal, tables)
                named = NamedSession(self._open(setup), principal.name,
                                     timeout or self.options.session_timeout, state=state)
                self._named[key] = named
        named.take(session_id)
        try:
            yield named.session
        finally:
            if getattr(named.session, "discard", False):
                # A restricted session holds nothing of the client's (it cannot SET or
                # create tables): a fresh one replaces a session a request left changed.
                named.session.close()
                named.session = self._open([] if principal.admin else self._restricted_setup(principal, tables))
            named.last_used = time.monotonic()
            if timeout:
                named.timeout = timeout
            named.release()

    def _check_session_caps(self, user: str) -> None:
        """Refuse a new named session over the per-user or the total cap (called with ``_lock`` held).

        Idle sessions past their timeout are dropped first, so a cap only refuses live ones.
        """
        total, per_user = self.options.max_sessions, self.options.max_sessions_per_user
        if len(self._named) >= total or sum(1 for n in self._named.values() if n.owner == user) >= per_user:
            for named in self._expire_locked(time.monotonic()):
                named.session.close()
        if len(self._named) >= total:
            raise HttpError(700, f"Too many sessions: the server keeps at most {total} (session_id); "
                                 f"close some or let them expire", "USER_SESSION_LIMIT_EXCEEDED")
        owned = sum(1 for n in self._named.values() if n.owner == user)
        if owned >= per_user:
            raise HttpError(700, f"User {user} has overflown session count {per_user} "
                                 f"(max sessions per user)", "USER_SESSION_LIMIT_EXCEEDED")

    def _expire_locked(self, now: float) -> list[NamedSession]:
        """Remove the sessions idle past their timeout (``_lock`` held); they are closed outside it."""
        expired = [k for k, s in self._named.items() if now - s.last_used > s.timeout and not s.lock.locked()]
        return [self._named.pop(k) for k in expired]

    def expire_sessions(self) -> None:
        """Close the client sessions idle for longer than their timeout."""
        with self._lock:
            gone = self._expire_locked(time.monotonic())
        for named in gone:
            named.session.close()

    def close(self) -> None:
        """Close the idle sessions: pools, client sessions, the killer and the metadata session.

        A session still in use is left open: chDB crashes (null connection) when a stream
        of a closed connection is fetched or cancelled, so only its owner may close it
        (pooled ones are closed when returned; the process exit releases the others).
        """
        with self._lock:
            pools = [self._admin_pool, *self._user_pools.values()]
            named = list(self._named.values())
            self._user_pools.clear()
            self._named.clear()
        for pool in pools:
            pool.close()
        for n in named:
            # Held for good once taken: a late request must not use a closed session.
            if n.lock.acquire(blocking=False):
                n.session.close()
            else:
                log.warning("client session still in use at shutdown: left open")
        if not self.killer.close_after_kills():
            log.warning("KILL QUERY still running at shutdown: killer session left open")
        if self._meta_lock.acquire(timeout=5):
            self._meta.close()
