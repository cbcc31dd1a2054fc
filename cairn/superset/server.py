"""Superset's web server: gunicorn from Superset's environment, and waiting for it to answer."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from typing import Callable

import httpx

from cairn.superset.home import open_log
from cairn.superset.settings import SupersetSettings
from cairn.superset.venv import PRIVATE_UMASK, environment, executable


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on now (asked from the system)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def gunicorn_command(settings: SupersetSettings) -> list[str]:
    """The command line of Superset's web server (threads: one slow chart must not hold a worker)."""
    return [str(executable(settings, "gunicorn")), "--workers", str(settings.workers),
            "--worker-class", "gthread", "--threads", str(settings.threads), "--timeout", "120",
            "--graceful-timeout", "10", "--bind", f"{settings.host}:{settings.port}",
            "--limit-request-line", "0", "--limit-request-field_size", "0",
            "--access-logfile", "-", "--error-logfile", "-", "superset.app:create_app()"]


def start_server(settings: SupersetSettings, preexec: Callable[[], None] | None = None) -> subprocess.Popen:
    """Start gunicorn in its own session, logging (appending) to ``superset.log``."""
    log = open_log(settings)
    try:
        return subprocess.Popen(gunicorn_command(settings), env=environment(settings), cwd=settings.home,
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, preexec_fn=preexec, umask=PRIVATE_UMASK)
    finally:
        log.close()


def exec_server(settings: SupersetSettings) -> None:
    """Replace this process with gunicorn in the foreground (`cairn superset run`, containers)."""
    command = gunicorn_command(settings)
    os.chdir(settings.home)
    os.umask(PRIVATE_UMASK)
    os.execve(command[0], command, environment(settings))


def answers(url: str, timeout: float = 2.0) -> bool:
    """Whether Superset at ``url`` answers its health check."""
    try:
        return httpx.get(f"{url}/health", timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


def wait_until_answering(url: str, seconds: float, alive: Callable[[], bool] = lambda: True,
                         stop: Callable[[], bool] = lambda: False) -> bool:
    """Poll the health check until it answers (True), the process dies, ``stop`` or the time runs out."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and alive() and not stop():
        if answers(url):
            return True
        time.sleep(0.5)
    return False
