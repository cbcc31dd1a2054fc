"""Datalake users: accounts, argon2 password hashes and course/org scopes.

Accounts live in the internal ``_users`` table of the datalake (migration 0300), so
they work the same whether the command talks to chDB directly or through a running
``cairn serve``. With the server engine (a real ClickHouse server), ``create_user``
also creates the ClickHouse user, its GRANTs and its row policies from the access
model (cairn/serve/access.py); ClickHouse then checks the password itself.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

from cairn import hooks
from cairn.engine import sql_identifier
from cairn.errors import CairnError
from cairn.serve.access import Scope, drop_statements, scope_of, server_statements
from cairn.serve.delegation import DELEGATED_ADMIN, DelegationKey, is_token

if TYPE_CHECKING:  # pragma: no cover
    from cairn.config import Config
    from cairn.engine import Engine

USERNAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_.@-]{0,63}$")
# Names a datalake user may not take: ClickHouse's built-in user, Cairn's own, and the
# principal of Superset's admins (cairn/serve/delegation.py).
RESERVED_NAMES = frozenset({"default", "cairn", "admin_cairn", DELEGATED_ADMIN})
MIN_PASSWORD_LENGTH = 8


@dataclass(frozen=True)
class User:
    """A datalake account as stored (the hash never leaves the server)."""

    name: str
    password_hash: str
    admin: bool
    course_ids: tuple[str, ...]
    org_ids: tuple[str, ...]

    @property
    def scope(self) -> Scope:
        return Scope(self.course_ids, self.org_ids)

    def describe_scope(self) -> str:
        if self.admin:
            return "admin (everything)"
        parts = [f"course {c}" for c in self.course_ids] + [f"org {o}" for o in self.org_ids]
        return ", ".join(parts) or "nothing"


def _hasher():
    from argon2 import PasswordHasher

    return PasswordHasher()


def hash_password(password: str) -> str:
    """An argon2id hash (PHC string) of ``password``."""
    return _hasher().hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """True when ``password`` matches the argon2 hash."""
    from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

    if not password_hash:
        return False
    try:
        return _hasher().verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def validate_username(name: str) -> str:
    """``name`` when usable as a datalake login, else CairnError."""
    if not USERNAME_RE.match(name or ""):
        raise CairnError(f"{name!r} is not a valid user name (a letter, then letters, digits, '_', '.', '@', '-'; "
                         "at most 64)")
    if name.lower() in RESERVED_NAMES:
        raise CairnError(f"{name!r} is reserved")
    return name


USERS_TABLE = "_users"


def _table(engine: "Engine") -> str:
    return f"{sql_identifier(engine.database)}.{USERS_TABLE}"


def _has_table(engine: "Engine") -> bool:
    return USERS_TABLE in engine.tables(engine.database)


def _ensure_table(engine: "Engine") -> None:
    if not _has_table(engine):
        raise CairnError("the datalake has no user table yet; run `cairn migrate` first")


def list_users(engine: "Engine") -> list[User]:
    """Current accounts, by name."""
    _ensure_table(engine)
    rows = engine.query_rows(
        f"SELECT name, argMax(password_hash, version), argMax(admin, version), argMax(course_ids, version), "
        f"argMax(org_ids, version), argMax(deleted, version) AS gone FROM {_table(engine)} "
        f"GROUP BY name HAVING NOT gone ORDER BY name")
    return [User(name, pw, bool(admin), tuple(courses), tuple(orgs)) for name, pw, admin, courses, orgs, _ in rows]


def get_user(engine: "Engine", name: str) -> User | None:
    """One account, or None."""
    for user in list_users(engine):
        if user.name == name:
            return user
    return None


def create_user(engine: "Engine", config: "Config", name: str, password: str, course_ids: Iterable[str] = (),
                org_ids: Iterable[str] = (), admin: bool = False, replace: bool = False) -> User:
    """Create (or with ``replace`` update) an account; validates everything first."""
    validate_username(name)
    if len(password) < MIN_PASSWORD_LENGTH:
        raise CairnError(f"the password must have at least {MIN_PASSWORD_LENGTH} characters")
    scope = scope_of(course_ids, org_ids)
    if admin and (scope.course_ids or scope.org_ids):
        raise CairnError("an admin sees everything: do not combine --admin with --course-id/--org-id")
    if not admin and not (scope.course_ids or scope.org_ids):
        raise CairnError("give at least one --course-id or --org-id (or --admin)")
    existing = get_user(engine, name)
    if existing is not None and not replace:
        raise CairnError(f"user {name!r} already exists (delete it first, or use --replace)")
    on_server = config.engine == "server"
    if on_server:
        tables = engine.tables(engine.database)
        if existing is not None:
            for statement in drop_statements(name, engine.database, tables, config["clickhouse.cluster"]):
                engine.command(statement)
        for statement in server_statements(name, password, None if admin else scope, engine.database, tables,
                                           config["clickhouse.cluster"]):
            engine.command(statement)
    user = User(name, "" if on_server else hash_password(password), admin, scope.course_ids, scope.org_ids)
    _write(engine, user, deleted=False)
    return user


def delete_user(engine: "Engine", config: "Config", name: str) -> None:
    """Remove an account (and on a ClickHouse server its user and row policies)."""
    if get_user(engine, name) is None:
        raise CairnError(f"no user {name!r}")
    if config.engine == "server":
        for statement in drop_statements(name, engine.database, engine.tables(engine.database),
                                         config["clickhouse.cluster"]):
            engine.command(statement)
    _write(engine, User(name, "", False, (), ()), deleted=True)


def _write(engine: "Engine", user: User, deleted: bool) -> None:
    version = time.time_ns() // 1000
    engine.insert(_table(engine),
                  [[user.name, user.password_hash, user.admin, list(user.course_ids), list(user.org_ids),
                    deleted, version]],
                  ["name", "password_hash", "admin", "course_ids", "org_ids", "deleted", "version"])


class Authenticator:
    """Checks credentials for `cairn serve`, with a short cache.

    argon2 is deliberately slow (tens of ms); a dashboard sends many requests with the
    same credentials, so a verified (user, password) pair is remembered until the
    account changes (re-read at most every ``ttl`` seconds).

    Delegated logins (cairn/serve/delegation.py): a password of the form
    ``cairn-delegated-v1:<hmac>`` logs in as that account when it is the HMAC of the
    name under the data directory's delegation key, and ``DELEGATED_ADMIN`` (Superset's
    admins) logs in as an admin only that way. Without ``delegation_key_file`` (a
    ClickHouse server) there are no delegated logins.
    """

    RECHECK = 0.1  # seconds between re-reads for names not known yet

    def __init__(self, load: "callable", ttl: float = 1.0, delegation_key_file: Path | None = None):
        self._load = load
        self._ttl = ttl
        self._users: dict[str, User] = {}
        self._loaded_at = float("-inf")
        self._verified: dict[tuple[str, str], str] = {}
        self._lock = threading.Lock()
        self._delegation = DelegationKey(delegation_key_file) if delegation_key_file else None

    def _reload(self) -> None:
        """Re-read the accounts (with the lock held)."""
        self._users = {u.name: u for u in self._load()}
        self._loaded_at = time.monotonic()

    def users(self) -> dict[str, User]:
        with self._lock:
            if time.monotonic() - self._loaded_at > self._ttl:
                self._reload()
            return self._users

    def delegation_enabled(self) -> bool:
        """Whether delegated logins are possible now (a delegation key exists)."""
        self.users()
        return self._delegation is not None and self._delegation.current() is not None

    def known(self, name: str) -> bool:
        """Whether ``name`` is an account; an unknown name re-reads the accounts first.

        An account created a moment ago (``cairn createuser`` from another process) logs
        in at once; a name still unknown costs at most one re-read per ``RECHECK`` seconds.
        ``DELEGATED_ADMIN`` is known while a delegation key exists.
        """
        if name in self.users():
            return True
        if name == DELEGATED_ADMIN:
            return self.delegation_enabled()
        with self._lock:
            if time.monotonic() - self._loaded_at > self.RECHECK:
                self._reload()
            return name in self._users

    def invalidate(self) -> None:
        with self._lock:
            self._loaded_at = float("-inf")

    def authenticate(self, name: str, password: str) -> User | None:
        """The account when the password (or delegation token) is right, else None."""
        if name == DELEGATED_ADMIN:
            if self._delegation is not None and self._delegation.verify(name, password):
                return User(DELEGATED_ADMIN, "", True, (), ())
            return None
        user = self.users().get(name)
        if user is None:
            return None
        if is_token(password) and self._delegation is not None and self._delegation.verify(name, password):
            return user
        key = (name, hashlib.sha256(password.encode("utf-8", "surrogatepass")).hexdigest())
        if self._verified.get(key) == user.password_hash:
            return user
        if verify_password(user.password_hash, password):
            self._verified[key] = user.password_hash
            return user
        return None


def users_status(engine: "Engine", config: "Config") -> dict:
    """`cairn status` section: the datalake accounts and their scopes (no hashes)."""
    users = list_users(engine) if _has_table(engine) else []
    return {"title": "datalake users",
            "rows": [{"user": u.name, "scope": u.describe_scope()} for u in users]}


# This module's section of `cairn status` (extension point declared in cairn.hooks).
hooks.STATUS_SECTIONS.add(users_status)
