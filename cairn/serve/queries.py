"""The queries `cairn serve` is running, by the client's ``query_id``.

chDB gives each statement a ``query_id`` of its own and has no way to take the
client's, so ``system.processes`` never shows the id a client sent. The server keeps
the mapping itself, as ClickHouse's process list does for its HTTP clients:

* a second query with the id of a running one fails with code 216
  (QUERY_WITH_SAME_ID_IS_ALREADY_RUNNING), unless ``replace_running_query=1`` and the
  same user sent it: the running one is then killed and the new one starts;
* ``KILL QUERY WHERE query_id = '...'`` (SYNC, ASYNC or TEST) sent through `cairn serve`
  kills the query the client started with that id: each statement carries a marker
  (``EmbeddedSession.execute/stream(tag=...)``) the killer session's KILL QUERY finds.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from cairn.engine.session import new_query_tag
from cairn.serve.wire import HttpError

# How long replace_running_query and KILL ... SYNC wait for the old query to end.
REPLACE_WAIT = 10.0

# ClickHouse's single-line form of the KILL QUERY clients send for one id
# (formatQuerySingleLine: upper-case keywords, single-quoted string, one space).
_KILL_BY_ID = re.compile(r"^KILL QUERY WHERE query_id = '((?:[^'\\]|\\.)*)'(?: (SYNC|ASYNC|TEST))?$")
_UNESCAPE = re.compile(r"\\(.)")


@dataclass
class RunningQuery:
    """One query in flight: who runs it, and how to stop it."""

    query_id: str
    user: str
    tag: str = field(default_factory=new_query_tag)
    """The marker its statement carries in the engine (``EmbeddedSession.kill``)."""
    started: float = field(default_factory=time.monotonic)
    cancelled: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)
    stream: Any = None
    """Its ``RawStream`` while a result is being streamed (interrupted rather than killed)."""


@dataclass(frozen=True)
class KillRequest:
    """A ``KILL QUERY WHERE query_id = '...'`` statement, parsed."""

    query_id: str
    mode: str  # SYNC, ASYNC or TEST


def parse_kill(normalised: str) -> KillRequest | None:
    """The KILL QUERY of one ``query_id`` in ClickHouse's normalised text, else None."""
    match = _KILL_BY_ID.match(normalised)
    if match is None:
        return None
    return KillRequest(_UNESCAPE.sub(r"\1", match.group(1)), match.group(2) or "ASYNC")


class RunningQueries:
    """The server's list of running queries by ``query_id`` (thread-safe)."""

    def __init__(self, kill_tag: Callable[[str], None]):
        self._kill_tag = kill_tag
        self._lock = threading.Lock()
        self._running: dict[str, RunningQuery] = {}

    def get(self, query_id: str) -> RunningQuery | None:
        """The running query with this id, if any."""
        with self._lock:
            return self._running.get(query_id)

    def __len__(self) -> int:
        with self._lock:
            return len(self._running)

    @contextlib.contextmanager
    def running(self, query_id: str, user: str, replace: bool = False) -> Iterator[RunningQuery]:
        """Hold ``query_id`` for the duration of one query; 216 when another holds it.

        With ``replace`` (``replace_running_query=1``) a query of the same user holding
        the id is killed first, and this one waits (at most ``REPLACE_WAIT``) for it to end.
        """
        entry = RunningQuery(query_id, user)
        deadline = time.monotonic() + REPLACE_WAIT
        while True:
            with self._lock:
                current = self._running.get(query_id)
                if current is None:
                    self._running[query_id] = entry
                    break
            if not replace or current.user != user:
                raise HttpError(216, f"Query with id = {query_id} is already running",
                                "QUERY_WITH_SAME_ID_IS_ALREADY_RUNNING")
            self.kill(current)
            if not current.done.wait(max(0.0, deadline - time.monotonic())):
                raise HttpError(216, f"Query with id = {query_id} is already running and could not be "
                                     f"replaced within {REPLACE_WAIT:g} s", "QUERY_WITH_SAME_ID_IS_ALREADY_RUNNING")
        try:
            yield entry
        finally:
            with self._lock:
                if self._running.get(query_id) is entry:
                    del self._running[query_id]
            entry.done.set()

    def kill(self, entry: RunningQuery) -> None:
        """Stop a running query from any thread (its own thread answers 394)."""
        entry.cancelled.set()
        stream = entry.stream
        if stream is not None:
            stream.interrupt()  # never touches the chDB stream (issue 12, finding 1)
            return
        with contextlib.suppress(Exception):
            self._kill_tag(entry.tag)

    def kill_by_id(self, request: KillRequest) -> tuple[str, RunningQuery] | None:
        """Carry out a KILL QUERY of one id: (kill_status, query), or None when no such query runs."""
        entry = self.get(request.query_id)
        if entry is None:
            return None
        if request.mode == "TEST":
            return "waiting", entry
        self.kill(entry)
        if request.mode == "SYNC":
            return ("finished" if entry.done.wait(REPLACE_WAIT) else "waiting"), entry
        return "waiting", entry
