"""Delegated logins: Superset runs each person's queries as that person's datalake user.

Superset keeps one shared connection to `cairn serve` and never knows anyone's
datalake password. Instead, a delegation key, generated once in the data directory
(``<data_dir>/delegation.key``, mode 0600), is read by both sides: Superset's
connection mutator (cairn/superset/superset_config.py.jinja) logs in as the Superset
user with the password ``token(key, user)``, and `cairn serve` accepts that token for
that one user only. A token read in a log or a network capture therefore lets its
reader act as no one else; the key itself never travels.

Superset admins are mapped to one reserved datalake principal, ``DELEGATED_ADMIN``,
whose token is only ever minted for users holding Superset's Admin role.

The token format is duplicated in the Superset configuration template (Superset's
environment cannot import Cairn); tests check that both compute the same token.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import threading
from pathlib import Path

KEY_FILE = "delegation.key"
TOKEN_PREFIX = "cairn-delegated-v1:"
# The datalake principal of Superset's admins: reserved, sees everything.
DELEGATED_ADMIN = "superset_admin"
_KEY_BYTES = 32


def key_path(data_dir: Path) -> Path:
    """Where the delegation key of the datalake in ``data_dir`` lives."""
    return Path(data_dir) / KEY_FILE


def ensure_key(data_dir: Path) -> Path:
    """Create the delegation key once (owner-only file); returns its path. An existing key is kept."""
    path = key_path(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_hex(_KEY_BYTES) + "\n")
    return path


def read_key(path: Path) -> bytes | None:
    """The key in ``path`` as bytes, or None when there is none (delegation is then off)."""
    try:
        text = Path(path).read_text().strip()
    except OSError:
        return None
    return text.encode() if len(text) >= 2 * 16 else None


def token(key: bytes, username: str) -> str:
    """The password Superset presents to log in as ``username`` (HMAC-SHA256 of the name)."""
    digest = hmac.new(key, b"cairn-delegation\0" + username.encode("utf-8", "surrogatepass"), hashlib.sha256)
    return TOKEN_PREFIX + digest.hexdigest()


def is_token(password: str) -> bool:
    """Whether ``password`` has the form of a delegation token (checked by ``DelegationKey.verify``)."""
    return password.startswith(TOKEN_PREFIX)


class DelegationKey:
    """The key as `cairn serve` sees it: read from its file, re-read when the file changes."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._key: bytes | None = None

    def current(self) -> bytes | None:
        """The key now (None while the file is missing: no delegated login is accepted)."""
        try:
            stat = self.path.stat()
            stamp = (stat.st_mtime_ns, stat.st_size)
        except OSError:
            stamp = None
        with self._lock:
            if stamp != self._stamp:
                self._key = read_key(self.path) if stamp else None
                self._stamp = stamp
            return self._key

    def verify(self, username: str, password: str) -> bool:
        """True when ``password`` is the delegation token of ``username`` (constant-time)."""
        key = self.current()
        if key is None or not is_token(password):
            return False
        return hmac.compare_digest(token(key, username).encode(), password.encode("utf-8", "surrogatepass"))
