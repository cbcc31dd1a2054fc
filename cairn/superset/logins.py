"""Superset logins of datalake users: one login per user, same name, same password.

A login's rights in Superset are those every datalake user gets (the dashboards,
SQL Lab, CSV export on the one shared Database); what rows it sees is decided by
`cairn serve` for the datalake user of the same name (cairn/serve/delegation.py).
Admins (``--admin``) get Superset's Admin role, and query as the datalake admin.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from cairn.errors import CairnError
from cairn.superset.home import ensure_home
from cairn.superset.settings import superset_settings
from cairn.superset.venv import run_script

if TYPE_CHECKING:  # pragma: no cover
    from cairn.config import Config

EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def validate_email(email: str) -> str:
    """``email`` when it looks like an address, else one clear error."""
    if not EMAIL_RE.match(email or ""):
        raise CairnError(f"{email!r} is not an email address (name@domain.tld)")
    return email


def create_login(config: "Config", username: str, email: str, password: str | None, admin: bool = False) -> bool:
    """Create or update the Superset login ``username``; True when it was created.

    ``password`` None keeps an existing login's password.
    """
    settings = superset_settings(config)
    ensure_home(settings)
    answer = run_script(settings, "logins", {"action": "upsert", "username": username,
                                             "email": validate_email(email), "password": password,
                                             "admin": admin})
    return bool(answer["created"])


def delete_login(config: "Config", username: str) -> bool:
    """Remove the Superset login ``username``; False when there was none."""
    settings = superset_settings(config)
    ensure_home(settings)
    return bool(run_script(settings, "logins", {"action": "delete", "username": username})["deleted"])


def list_logins(config: "Config") -> list[dict]:
    """Every Superset login with its email, roles and whether it is active."""
    settings = superset_settings(config)
    ensure_home(settings)
    return run_script(settings, "logins", {"action": "list"})["logins"]


def superset_installed(config: "Config") -> bool:
    """Whether Superset's environment exists (its metadata may still be missing)."""
    return (superset_settings(config).venv / "bin" / "superset").exists()


def superset_initialised(config: "Config") -> bool:
    """Whether `cairn superset setup` (or `cairn up`) has prepared Superset's metadata."""
    from cairn.superset.setup import is_initialised

    return is_initialised(superset_settings(config))
