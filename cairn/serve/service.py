"""`cairn serve`: the embedded datalake over the ClickHouse HTTP interface.

One process owns the embedded data directory and answers ClickHouse HTTP clients
(clickhouse-connect, its SQLAlchemy dialect / Superset, curl). ``CairnService`` opens the
engine, applies migrations, starts the HTTP server (``cairn.serve.httpd``) and the
configured collectors, and publishes an admin credential in ``<data_dir>/serve.json``
(mode 0600, ``cairn.engine.served``) through which the other `cairn` commands on the
same data directory keep working.

A query's path: ``handler`` (routing) -> ``wire`` (the request) -> ``pipeline``
(``statement``, authorise with ``query_check``, execute on ``sessions``) -> ``response``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import secrets
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from cairn.engine import EmbeddedEngine
from cairn.engine.served import connect_host, write_serve_file
from cairn.errors import CairnError
from cairn.serve.delegation import key_path
from cairn.serve.httpd import CairnHTTPServer
from cairn.serve.options import ServeOptions
from cairn.serve.query_log import QueryLog, SessionWriter, apply_ttl
from cairn.serve.sessions import Backend
from cairn.serve.users import Authenticator, list_users

if TYPE_CHECKING:  # pragma: no cover
    from cairn.config import Config

__all__ = ["CairnService", "ServeOptions"]

# Exit status when the engine failed for good (EX_SOFTWARE): the supervisor restarts us.
ENGINE_FAILED_EXIT = 70
# Time given to the answers in flight (the failing query's error) before exiting.
_FAILURE_GRACE = 1.0


class CairnService:
    """Everything `cairn serve` runs: engine, migrations, HTTP server, collectors."""

    def __init__(self, config: "Config", options: ServeOptions, log_line: Callable[[str], None] = print):
        self.config = config
        self.options = options
        self.say = log_line
        self.engine: EmbeddedEngine | None = None
        self.httpd: CairnHTTPServer | None = None
        self.collectors: list[Any] = []
        self._serve_file: Path | None = None
        self._stopped = threading.Event()

    def start(self) -> tuple[str, int]:
        """Open the engine, migrate, start listening (and the collectors); returns the address."""
        from cairn.schema.migrator import Migrator

        if self.config.engine != "embedded":
            raise CairnError("`cairn serve` serves the embedded engine; with engine = server use ClickHouse itself")
        self.engine = EmbeddedEngine(self.config.data_dir, self.config.database)
        report = Migrator(self.engine, self.config).run()
        applied = sum(1 for status, _ in report.steps if status == "APPLY")
        if applied:
            self.say(f"applied {applied} pending migration(s)")
        backend = Backend(self.engine, self.options)
        backend.on_failure = self._engine_failed
        database = self.config.database
        authenticator = Authenticator(lambda: list_users(self.engine) if self.engine else [],
                                      delegation_key_file=key_path(self.config.data_dir))
        admin_password = secrets.token_urlsafe(32)
        try:
            self.httpd = CairnHTTPServer((self.options.host, self.options.port), backend, authenticator,
                                         admin_password, self.options)
        except OSError as exc:
            backend.close()
            raise CairnError(f"cannot listen on {self.options.host}:{self.options.port}: {exc.strerror}") from None
        self.httpd.query_log = self._start_query_log()
        host, port = self.httpd.server_address[:2]
        self._serve_file = write_serve_file(self.config.data_dir, self.options.host, port, admin_password)
        self.httpd.monitor.start()
        self._start_collectors()
        self.say(f"serving {database} ({self.engine.describe()}) on http://{connect_host(host)}:{port}")
        return host, port

    def _start_query_log(self) -> QueryLog | None:
        """The query log's flusher (``serve.query_log``), with the table's TTL set to the setting.

        A TTL that cannot be set is reported and the log runs all the same.
        """
        if not self.options.query_log:
            return None
        try:
            if apply_ttl(self.engine, self.config.database, self.options.query_log_ttl_days):
                self.say(f"query log: keeping {self.options.query_log_ttl_days} day(s)")
        except CairnError as exc:
            self.say(f"warning: query log: cannot set its retention: {str(exc).splitlines()[0]}")
        writer = SessionWriter(self.engine, self.config.database)
        query_log = QueryLog(writer, interval=self.options.query_log_flush_interval, on_close=writer.close)
        query_log.start()
        return query_log

    def _start_collectors(self) -> None:
        """Follow the configured tracking logs in this process (cairn/ingest/collector.py).

        The collector writes through this process's embedded engine, exactly as
        `cairn collect` does on its own; it stops (committing its positions) with the server.
        """
        sources = [s for s in self.config["collector.sources"] if s != "-"]  # no stdin for a server
        if not sources:
            return
        from cairn.ingest.collector import collector_for

        # With the reserve, like `cairn collect`: an embedded engine's disk is this machine's.
        collector = collector_for(self.engine, self.config, sources, echo=self.say)
        thread = threading.Thread(target=collector.run, name="cairn-collector", daemon=True)
        thread.start()
        self.collectors.append((collector, thread))
        self.say(f"collecting {', '.join(sources)}")

    def _engine_failed(self, text: str) -> None:
        """The engine answers code 236 to everything: stop accepting, then exit for a restart.

        chDB cannot recover in-process (a new connection gets 236 too) and its crashed
        thread takes the process down minutes later anyway; exiting now with status 70
        lets `cairn up`, systemd or Tutor start a fresh `cairn serve` at once.
        """
        self.say(f"FATAL: the embedded engine failed ({text}); exiting with status {ENGINE_FAILED_EXIT} "
                 f"so that the supervisor restarts cairn serve")
        if self.httpd is not None:
            self.httpd.stopping = True  # new requests get 503 meanwhile
        threading.Thread(target=self._exit_after_failure, name="cairn-engine-failed", daemon=True).start()

    def _exit_after_failure(self) -> None:
        """Let the answers in flight go out, remove serve.json, exit without running cleanups."""
        time.sleep(_FAILURE_GRACE)
        if self._serve_file is not None:
            with contextlib.suppress(OSError):
                self._serve_file.unlink()
        logging.shutdown()
        # os._exit: a normal exit would close sessions and join threads on a crashed
        # engine (and hang or segfault there).
        os._exit(ENGINE_FAILED_EXIT)

    def serve_forever(self) -> None:
        """Serve until ``stop()`` (SIGTERM / Ctrl-C call it)."""
        assert self.httpd is not None
        try:
            self.httpd.serve_forever(poll_interval=0.2)
        finally:
            self._stopped.set()

    def stop(self) -> None:
        """Stop accepting, finish (then cancel) running queries, stop collectors, release the data."""
        httpd = self.httpd
        if httpd is not None and not httpd.stopping:
            httpd.stopping = True
            threading.Thread(target=httpd.shutdown, daemon=True).start()
            deadline = time.monotonic() + self.options.shutdown_grace
            with httpd.active_lock:
                while httpd.active and time.monotonic() < deadline:
                    httpd.active_lock.wait(0.1)
            if httpd.active:
                httpd.monitor.cancel_all()
                with httpd.active_lock:
                    end = time.monotonic() + 5
                    while httpd.active and time.monotonic() < end:
                        httpd.active_lock.wait(0.1)
            httpd.monitor.stop.set()
            self._stopped.wait(5)
            httpd.server_close()
            if httpd.query_log is not None:
                httpd.query_log.close()  # the statements of the last seconds, written before the engine closes
        for collector, thread in self.collectors:
            collector.stop.set()
        for collector, thread in self.collectors:
            thread.join(30)  # the collector commits its positions on the way out
        self.collectors.clear()
        if httpd is not None:
            httpd.backend.close()
        if self._serve_file is not None:
            with contextlib.suppress(OSError):
                self._serve_file.unlink()
            self._serve_file = None
        if self.engine is not None:
            self.engine.close()
            self.engine = None


def serve_until_stopped(config: "Config", say: Callable[[str], None] = print) -> None:
    """Run `cairn serve` for ``config`` until SIGTERM or Ctrl-C, then stop cleanly."""
    from cairn.serve.settings import options_from

    service = CairnService(config, options_from(config), log_line=say)
    service.start()
    stopper: list[threading.Thread] = []

    def on_signal(signum, frame):  # noqa: ARG001 - signal handler signature
        if not stopper:
            say("stopping: finishing running queries...")
            # stop() waits for running queries: not in the signal handler, which runs on
            # the thread that serves.
            stopper.append(threading.Thread(target=service.stop, daemon=True))
            stopper[0].start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        service.serve_forever()
    finally:
        if stopper:
            stopper[0].join()
        else:
            service.stop()
    say("stopped.")
