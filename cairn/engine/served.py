"""How local commands find a running `cairn serve`: the ``serve.json`` protocol, in one place.

`cairn serve` owns the embedded data directory (chDB allows one process per
directory). It publishes where it listens, and the credential of its local admin
account, in ``<data_dir>/serve.json`` (mode 0600); every other local command reads
it to reach the same datalake over HTTP instead of opening the directory.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:  # pragma: no cover
    from cairn.config import Config
    from cairn.engine import Engine

SERVE_FILE = "serve.json"
ADMIN_USER = "cairn"  # the local commands' account; reserved (cairn/serve/users.py)


@dataclass(frozen=True)
class ServedEndpoint:
    """Where a running `cairn serve` listens and the admin credential to reach it."""

    host: str
    port: int
    user: str
    password: str


def connect_host(host: str) -> str:
    """The address a local client should dial for a server bound to ``host``."""
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "::1"
    return host


def write_serve_file(data_dir: Path, host: str, port: int, password: str) -> Path:
    """Publish the endpoint and admin credential for the local commands (owner-only file)."""
    path = Path(data_dir) / SERVE_FILE
    tmp = Path(data_dir) / f".{SERVE_FILE}.{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump({"host": connect_host(host), "port": port, "user": ADMIN_USER, "password": password,
                   "pid": os.getpid()}, handle)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
    return path


def read_serve_file(data_dir: Path) -> ServedEndpoint | None:
    """The endpoint a running `cairn serve` published, or None when there is none (or it is unreadable)."""
    try:
        info = json.loads((Path(data_dir) / SERVE_FILE).read_text())
        return ServedEndpoint(str(info["host"]), int(info["port"]), str(info["user"]), str(info["password"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def served_engine(config: "Config") -> Callable[[], "Engine | None"]:
    """Reconnect function for a collector talking to `cairn serve` through ``serve.json``.

    Never opens the data directory itself (that would stop the server from coming
    back): it only follows where, and with which credential, the server listens now.
    """

    def reconnect() -> "Engine | None":
        from cairn.engine import RemoteEngine
        from cairn.engine.served import read_serve_file

        served = read_serve_file(config.data_dir)
        if served is None:
            return None
        return RemoteEngine(served.host, served.port, served.user, served.password, config.database,
                            connect_timeout=2, via_serve=True)

    return reconnect
