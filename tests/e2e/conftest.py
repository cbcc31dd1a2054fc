"""End-to-end fixtures: one `cairn up --demo` with Superset per test session, a Superset
API client, and a logged-in page of a real headless Chromium.

API for tests (all layers of the e2e suite share one stack; keep tests read-only on it or
clean up what they create):

- ``stack`` (session): a running ``cairn up --demo`` (few learners) on free ports in a
  temporary folder. Attributes: ``superset_url``, ``serve_port``, ``admin_user``,
  ``admin_password``, ``data_dir``, ``cwd``, ``env``, ``log`` (its output), ``process``,
  ``truth`` (the demo's ground truth: courses, orgs...). Methods:
  ``cairn(*args, input=None)`` runs a `cairn` command on its data directory;
  ``api(user, password)`` a logged-in ``SupersetAPI``; ``browser_page(user, password)``
  a context manager yielding a Playwright page logged into Superset;
  ``cairn_database_id()`` the id of the shared Database named "Cairn".
- ``SupersetAPI``: ``get``/``post`` (JSON, CSRF handled), ``sql(sql)`` (SQL Lab's
  execute endpoint, rows as dicts), ``chart_data(chart_id, fmt)`` (a saved chart's data).
- ``login_in_browser(page, url, user, password)``: Superset's login form in a page.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import httpx
import pymysql
import pytest

from support.paths import PROJECT_ROOT

CHROMIUM = "/usr/bin/chromium"
SUPERSET_VENV = PROJECT_ROOT / ".venv-superset"
ADMIN_USER = "admin"
ADMIN_PASSWORD = "e2e-admin-password"
DEMO_LEARNERS = 30
# First start on a 2-core machine: metadata upgrade, roles, gunicorn workers, import.
START_TIMEOUT = 1200


def free_port() -> int:
    """A port nobody listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(predicate, seconds: float, what: str, every: float = 1.0):
    """The first truthy value of ``predicate()`` within ``seconds``, else AssertionError naming ``what``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {seconds:g} s waiting for {what}")


class SupersetAPI:
    """Superset's REST API as one logged-in user (bearer token, session cookie and CSRF token)."""

    def __init__(self, base_url: str, user: str, password: str):
        self.base_url = base_url
        self.user = user
        self.client = httpx.Client(base_url=base_url, timeout=120, follow_redirects=False)
        answer = self.client.post("/api/v1/security/login",
                                  json={"username": user, "password": password, "provider": "db", "refresh": False})
        if answer.status_code != 200:
            raise PermissionError(f"Superset refused the login {user}: {answer.status_code} {answer.text[:200]}")
        self.client.headers["Authorization"] = f"Bearer {answer.json()['access_token']}"
        csrf = self.client.get("/api/v1/security/csrf_token/")
        csrf.raise_for_status()
        self.client.headers.update({"X-CSRFToken": csrf.json()["result"], "Referer": base_url})

    def get(self, path: str, **kwargs) -> httpx.Response:
        return self.client.get(path, **kwargs)

    def post(self, path: str, body: dict, **kwargs) -> httpx.Response:
        return self.client.post(path, json=body, **kwargs)

    def delete(self, path: str) -> httpx.Response:
        return self.client.delete(path)

    def database_id(self, name: str = "Cairn") -> int | None:
        """The id of the Superset Database ``name`` (None when there is none)."""
        query = json.dumps({"filters": [{"col": "database_name", "opr": "eq", "value": name}]})
        answer = self.get("/api/v1/database/", params={"q": _rison(query)})
        answer.raise_for_status()
        found = answer.json()["result"]
        return found[0]["id"] if found else None

    def sql(self, sql: str, database_id: int, schema: str = "openedx") -> httpx.Response:
        """Run ``sql`` in SQL Lab (synchronously), as this user; the raw answer."""
        return self.post("/api/v1/sqllab/execute/", {"database_id": database_id, "sql": sql, "schema": schema,
                                                     "runAsync": False, "tab": "e2e",
                                                     "client_id": os.urandom(5).hex(), "queryLimit": 1000})

    def chart_data(self, chart_id: int, fmt: str = "json") -> httpx.Response:
        """A saved chart's data (its saved query context), as JSON or CSV."""
        return self.get(f"/api/v1/chart/{chart_id}/data/", params={"format": fmt, "type": "full"})

    def close(self) -> None:
        self.client.close()


def _rison(json_text: str) -> str:
    """Superset's ``q`` parameter accepts rison; this subset (dicts, lists, strings) maps simply."""
    value = json.loads(json_text)

    def encode(item) -> str:
        if isinstance(item, dict):
            return "(" + ",".join(f"{k}:{encode(v)}" for k, v in item.items()) + ")"
        if isinstance(item, list):
            return "!(" + ",".join(encode(v) for v in item) + ")"
        if isinstance(item, bool):
            return "!t" if item else "!f"
        if isinstance(item, (int, float)):
            return str(item)
        return "'" + str(item).replace("!", "!!").replace("'", "!'") + "'"

    return encode(value)


def login_in_browser(page, base_url: str, user: str, password: str, attempts: int = 3) -> None:
    """Fill in Superset's login form and wait to be let in.

    The form is filled again when the page stays on /login: on a loaded machine a
    CI run once saw the submit go nowhere for 60 s (a form filled while it was still
    being drawn is submitted empty). The last failure says what the page shows.
    """
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    for attempt in range(1, attempts + 1):
        page.goto(f"{base_url}/login/", wait_until="networkidle", timeout=120_000)
        page.fill("[data-test=username-input]", user)
        page.fill("[data-test=password-input]", password)
        page.click("[data-test=login-button]")
        try:
            page.wait_for_url(lambda url: "/login" not in url, timeout=60_000)
            return
        except PlaywrightTimeout:
            if attempt == attempts:
                shown = " ".join(page.inner_text("body").split())[:400]
                raise AssertionError(f"still on {page.url} after {attempts} logins as {user}: {shown!r}") from None


@dataclass
class Stack:
    """A running `cairn up --demo` with Superset (see the module docstring)."""

    cwd: Path
    env: dict
    serve_port: int
    superset_port: int
    log: Path
    process: subprocess.Popen | None = None
    admin_user: str = ADMIN_USER
    admin_password: str = ADMIN_PASSWORD
    _browser: object = None
    _playwright: object = None
    _apis: list = field(default_factory=list)

    @property
    def superset_url(self) -> str:
        return f"http://127.0.0.1:{self.superset_port}"

    @property
    def data_dir(self) -> Path:
        return self.cwd / ".cairn"

    @property
    def truth(self) -> dict:
        return json.loads((self.data_dir / "demo" / "ground_truth.json").read_text())

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def cairn(self, *args: str, input: str | None = None, check: bool = True,
              timeout: float = 300) -> subprocess.CompletedProcess:
        """Run ``cairn ARGS`` on the stack's data directory (through its `cairn serve`)."""
        done = subprocess.run([sys.executable, "-m", "cairn", *args], cwd=self.cwd, env=self.env, input=input,
                              capture_output=True, text=True, timeout=timeout)
        if check:
            assert done.returncode == 0, f"cairn {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
        return done

    def api(self, user: str | None = None, password: str | None = None) -> SupersetAPI:
        """A Superset API client logged in as ``user`` (default: the admin)."""
        api = SupersetAPI(self.superset_url, user or self.admin_user, password or self.admin_password)
        self._apis.append(api)
        return api

    def cairn_database_id(self) -> int:
        """The shared Database "Cairn" (imported with the dashboards)."""
        found = self.api().database_id("Cairn")
        assert found is not None, "no Superset Database named Cairn: the dashboards were not imported"
        return found

    def browser(self):
        """The session's headless Chromium (Debian's, driven by Playwright; started on first use)."""
        if self._browser is None:
            from playwright.sync_api import sync_playwright

            self._playwright = sync_playwright().start()
            self._browser = self._playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                                             args=["--no-sandbox", "--disable-dev-shm-usage"])
        return self._browser

    @contextlib.contextmanager
    def browser_page(self, user: str | None = None, password: str | None = None,
                     width: int = 1400, height: int = 1000) -> Iterator[object]:
        """A new browser context and page, logged into Superset as ``user`` (default: the admin)."""
        context = self.browser().new_context(viewport={"width": width, "height": height}, accept_downloads=True)
        try:
            page = context.new_page()
            login_in_browser(page, self.superset_url, user or self.admin_user, password or self.admin_password)
            yield page
        finally:
            context.close()

    def close(self) -> None:
        for api in self._apis:
            api.close()
        if self._browser is not None:
            self._browser.close()
            self._playwright.stop()


def start_up(cwd: Path, env: dict, serve_port: int, superset_port: int, log: Path,
             extra: tuple[str, ...] = ()) -> subprocess.Popen:
    """Start ``cairn up --demo`` (small demo) in ``cwd``, output to ``log``."""
    handle = open(log, "ab")
    try:
        return subprocess.Popen([sys.executable, "-m", "cairn", "up", "--demo", "--learners", str(DEMO_LEARNERS),
                                 "--live-rate", "5", "--port", str(serve_port), "--superset-port",
                                 str(superset_port), *extra],
                                cwd=cwd, env=env, stdout=handle, stderr=subprocess.STDOUT)
    finally:
        handle.close()


def stop_up(process: subprocess.Popen, timeout: float = 180) -> int:
    """SIGTERM, then the exit status (killed after ``timeout``)."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise AssertionError(f"cairn up did not stop within {timeout:g} s of SIGTERM")


def stack_env(mysql_database: str) -> dict:
    """The environment of a test stack: none of the developer's CAIRN_* settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAIRN_")}
    env.update({"CAIRN_MYSQL_DATABASE": mysql_database, "CAIRN_SUPERSET_ADMIN_PASSWORD": ADMIN_PASSWORD,
                "CAIRN_SUPERSET_VENV": str(SUPERSET_VENV), "CAIRN_SUPERSET_WORKERS": "2"})
    return env


def drop_mysql_database(name: str) -> None:
    with contextlib.suppress(pymysql.MySQLError):
        connection = pymysql.connect(host="127.0.0.1", port=3306, user="root", password="")
        with connection.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
        connection.close()


@pytest.fixture(scope="session")
def stack(tmp_path_factory) -> Iterator[Stack]:
    """One `cairn up --demo` with Superset for the whole session (see the module docstring)."""
    if not (SUPERSET_VENV / "bin" / "gunicorn").exists():
        pytest.fail(f"Superset is not installed in {SUPERSET_VENV}: run `make setup-superset`")
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make browser`")
    cwd = tmp_path_factory.mktemp("e2e-stack")
    mysql_database = f"cairn_e2e_{os.getpid()}"
    stack = Stack(cwd, stack_env(mysql_database), free_port(), free_port(), cwd / "up.log")
    # Every `cairn` command of the tests sees the stack's ports (status, logins, superset run).
    stack.env.update({"CAIRN_SERVE_PORT": str(stack.serve_port), "CAIRN_SUPERSET_PORT": str(stack.superset_port)})
    stack.process = start_up(cwd, stack.env, stack.serve_port, stack.superset_port, stack.log)
    try:
        wait_for(lambda: stack.process.poll() is not None or "Superset: http" in stack.output(), START_TIMEOUT,
                 "cairn up to announce Superset", every=2)
        assert stack.process.poll() is None, f"cairn up ended:\n{stack.output()}"
        yield stack
    finally:
        stack.close()
        if stack.process.poll() is None:
            stop_up(stack.process)
        drop_mysql_database(mysql_database)
