"""Superset's part of `cairn up`: initialise it while the datalake is prepared, then run,
watch and restart its web server, import the dashboards and print where to log in."""

from __future__ import annotations

import threading
from dataclasses import replace
from typing import TYPE_CHECKING, Callable

from cairn.errors import CairnError
from cairn.superset.home import admin_password_file, log_path
from cairn.superset.settings import SupersetSettings, superset_settings
from cairn.superset.setup import Initialised, import_dashboards, initialise, summary
from cairn.superset.server import free_port, start_server, wait_until_answering

if TYPE_CHECKING:  # pragma: no cover
    from cairn.config import Config
    from cairn.stack import Supervised

START_TIMEOUT = 600.0  # seconds for gunicorn's workers to load Superset (slow on a busy 2-core machine)


class SupersetPart:
    """Superset beside `cairn serve`: one supervised gunicorn, its set-up and its dashboards."""

    def __init__(self, settings: SupersetSettings, say: Callable[[str], None]):
        self.settings = settings
        self.say = say
        self.child: "Supervised | None" = None
        self._initialised: Initialised | None = None
        self._error: str | None = None
        self._thread: threading.Thread | None = None

    @classmethod
    def for_config(cls, config: "Config", say: Callable[[str], None]) -> "SupersetPart | None":
        """The part for ``config`` (serve.port already known), or None when Superset is off or not installed."""
        settings = superset_settings(config)
        if not settings.enabled:
            return None
        if not (settings.venv / "bin" / "gunicorn").exists():
            say(f"note: Superset is not installed in {settings.venv}: running the datalake only "
                "(`make setup-superset` installs it; superset.venv says where; --no-superset hides this note)")
            return None
        if settings.port == 0:
            settings = replace(settings, port=free_port(settings.host))
        return cls(settings, say)

    def initialise_in_background(self) -> None:
        """Start the metadata upgrade, roles and admin (they take a while) while the datalake is prepared."""
        def work() -> None:
            try:
                self._initialised = initialise(self.settings, say=self.say)
            except CairnError as exc:
                self._error = str(exc)
            except Exception as exc:  # noqa: BLE001 - Superset must never take the datalake down
                self._error = f"{type(exc).__name__}: {exc}"

        self._thread = threading.Thread(target=work, name="cairn-superset-setup", daemon=True)
        self._thread.start()

    def start(self, stop: threading.Event) -> None:
        """Once initialised: start gunicorn, wait for it, import the dashboards, print the URL."""
        from cairn.stack import Supervised, _die_with_parent

        while self._thread is not None and self._thread.is_alive():
            if stop.wait(0.3):
                return
        if self._error:
            self.say(f"note: Superset not started: {self._error}")
            return
        settings = self.settings
        self.child = Supervised("superset", lambda: start_server(settings, _die_with_parent), self.say,
                                lambda code: f"status {code}; log: {log_path(settings)}")
        self.child.start()
        self.say(f"Superset starting ({settings.workers} workers x {settings.threads} threads), "
                 f"log in {log_path(settings)}")
        if not wait_until_answering(settings.url, START_TIMEOUT, self.child.alive, stop.is_set):
            if not stop.is_set():
                self.say(f"note: Superset does not answer at {settings.url} yet; see {log_path(settings)}")
            return
        self._import()
        self._announce()

    def _import(self) -> None:
        try:
            report = import_dashboards(self.settings)
        except CairnError as exc:
            self.say(f"note: dashboards not imported: {exc}")
            return
        except Exception as exc:  # noqa: BLE001 - the importer's bugs must not stop the stack
            self.say(f"note: dashboards not imported: {type(exc).__name__}: {exc}")
            return
        if report is None:
            self.say("note: this Cairn has no dashboards to import yet")
        else:
            self.say(f"dashboards imported: {summary(report)}")

    def _announce(self) -> None:
        settings = self.settings
        self.say(f"Superset: {settings.url} (admin login: {settings.admin_user})")
        if self._initialised is not None and self._initialised.new_admin_password:
            self.say(f"  admin password (shown once; Cairn keeps it in {admin_password_file(settings)} "
                     f"for its dashboard imports): {self._initialised.new_admin_password}")

