"""Preparing Superset: configuration, metadata, the Cairn role, the admin, the dashboards.

``initialise`` is what every start runs (fast after the first: the metadata upgrade
and ``superset init`` run again only when Superset's version changes);
``import_dashboards`` hands the dashboards-as-code to a running Superset.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from cairn.errors import CairnError
from cairn.superset.home import (admin_password, admin_password_file, database_uri, generate_admin_password,
                                 prepare_home)
from cairn.superset.settings import SupersetSettings
from cairn.superset.venv import run_script, run_superset

MARKER = ".initialised"


@dataclass
class Initialised:
    """What ``initialise`` did: the admin's password when it was created now (print it once)."""

    admin_created: bool
    new_admin_password: str | None


def superset_version(settings: SupersetSettings) -> str:
    """The installed Superset version (from its package metadata), or "" when not installed."""
    found = sorted(settings.venv.glob("lib/python*/site-packages/apache_superset-*.dist-info"))
    return found[-1].name.split("-")[1].removesuffix(".dist") if found else ""


def _marker_text(settings: SupersetSettings) -> str:
    return f"{superset_version(settings)} {settings.metadata_uri or 'sqlite'}"


def is_initialised(settings: SupersetSettings) -> bool:
    """Whether the metadata was upgraded and initialised for the installed Superset."""
    try:
        return (settings.home / MARKER).read_text() == _marker_text(settings)
    except OSError:
        return False


def initialise(settings: SupersetSettings, say: Callable[[str], None] = print) -> Initialised:
    """Render the configuration, upgrade and initialise the metadata, ensure the Cairn role and the admin."""
    prepare_home(settings)
    if not is_initialised(settings):
        if not _from_template(settings):
            say(f"Superset: preparing its metadata ({settings.metadata_uri.split('://')[0] or 'SQLite'}), "
                f"a minute or two...")
            run_superset(settings, ["db", "upgrade"], "upgrade its metadata database")
            run_superset(settings, ["init"], "initialise its roles and permissions")
            _save_template(settings)
        (settings.home / MARKER).write_text(_marker_text(settings))
    password = admin_password(settings)
    generated = None
    if password is None:
        generated = password = generate_admin_password(settings)
    answer = run_script(settings, "logins", {"action": "setup", "admin": {
        "username": settings.admin_user, "email": settings.admin_email, "password": password,
        "first_name": "Superset", "last_name": "Admin"}})
    if generated and not answer["admin_created"]:
        # The admin existed already (its password set elsewhere): keep no stale copy.
        admin_password_file(settings).unlink(missing_ok=True)
        generated = None
    return Initialised(bool(answer["admin_created"]), generated if answer["admin_created"] else None)


def _template(settings: SupersetSettings) -> Path:
    """A freshly initialised SQLite metadata database, kept beside the Superset it was made by."""
    return settings.venv / f"cairn-metadata-{superset_version(settings)}.db"


def _sqlite_metadata(settings: SupersetSettings) -> Path | None:
    return None if settings.metadata_uri else settings.home / "superset.db"


def _from_template(settings: SupersetSettings) -> bool:
    """Start a new SQLite metadata database from the template (same Superset version): it holds
    only the schema, roles and permissions, no user and no secret. False when there is none."""
    target = _sqlite_metadata(settings)
    template = _template(settings)
    if target is None or target.exists() or not template.exists():
        return False
    shutil.copyfile(template, target)
    os.chmod(target, 0o600)
    return True


def _save_template(settings: SupersetSettings) -> None:
    """Keep the just-initialised metadata (before any user exists) for the next new data directory."""
    source = _sqlite_metadata(settings)
    if source is None or not source.exists():
        return
    partial = _template(settings).with_suffix(f".{os.getpid()}.tmp")
    try:
        shutil.copyfile(source, partial)
        os.replace(partial, _template(settings))
    except OSError:  # a read-only environment: every new data directory initialises on its own
        partial.unlink(missing_ok=True)


def import_dashboards(settings: SupersetSettings, base_url: str | None = None, username: str | None = None,
                      password: str | None = None) -> dict | None:
    """Import the dashboards-as-code into the running Superset at ``base_url``.

    Returns what the importer reports, or None when this Cairn has no dashboards module.
    """
    try:
        from cairn.superset import dashboards
    except ImportError:
        return None
    username = username or settings.admin_user
    password = password or admin_password(settings)
    if not password:
        raise CairnError("no admin password to import the dashboards with: set superset.admin_password "
                         "(or give --password)")
    return dashboards.import_dashboards(base_url or settings.url, username, password, database_uri(settings))


def summary(report: dict) -> str:
    """What an import reported, in words: "5 dashboards, 53 charts, ..."."""
    parts = [f"{value:,} {key.replace('_', ' ')}" if isinstance(value, int) else f"{key} {value}"
             for key, value in report.items() if isinstance(value, (int, str)) and key != "url"]
    return ", ".join(parts) or "done"
