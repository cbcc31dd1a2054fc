"""What the `cairn superset ...` commands do (the CLI only parses their arguments)."""

from __future__ import annotations

import subprocess
from dataclasses import replace
from typing import TYPE_CHECKING, Callable

from cairn.errors import CairnError
from cairn.superset.home import admin_password_file, log_path
from cairn.superset.logins import create_login
from cairn.superset.server import answers, exec_server, free_port, start_server, wait_until_answering
from cairn.superset.settings import SupersetSettings, superset_settings
from cairn.superset.setup import Initialised, import_dashboards, initialise, summary
from cairn.superset.venv import executable

if TYPE_CHECKING:  # pragma: no cover
    from cairn.config import Config
    from cairn.engine import Engine


def _installed(config: "Config") -> SupersetSettings:
    settings = superset_settings(config)
    executable(settings, "gunicorn")  # one clear line when Superset is not installed
    return settings


def _print_admin(settings: SupersetSettings, done: Initialised, say: Callable[[str], None]) -> None:
    if done.new_admin_password:
        say(f"Superset admin {settings.admin_user} created; password (shown once, kept for Cairn's imports in "
            f"{admin_password_file(settings)}): {done.new_admin_password}")


def setup(config: "Config", import_assets: bool = True, say: Callable[[str], None] = print) -> None:
    """Prepare Superset, then import the dashboards into it (a temporary web server when none runs)."""
    settings = _installed(config)
    _print_admin(settings, initialise(settings, say), say)
    if not import_assets:
        say("Superset is ready (dashboards not imported: --no-import)")
        return
    if answers(settings.url):
        report = import_dashboards(settings)
    else:
        report = _import_with_temporary_server(settings, say)
    say("this Cairn has no dashboards to import yet" if report is None else f"dashboards imported: {summary(report)}")


def _import_with_temporary_server(settings: SupersetSettings, say: Callable[[str], None]) -> dict | None:
    """Start a one-worker Superset on a free local port, import into it, stop it."""
    temporary = replace(settings, host="127.0.0.1", port=free_port(), workers=1)
    say(f"starting a temporary Superset on {temporary.url} to import the dashboards...")
    process = start_server(temporary)
    try:
        if not wait_until_answering(temporary.url, 600, lambda: process.poll() is None):
            raise CairnError(f"the temporary Superset did not start; see {log_path(settings)}")
        return import_dashboards(temporary)
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def run_foreground(config: "Config", say: Callable[[str], None] = print) -> None:
    """Prepare Superset, then become its web server (gunicorn in the foreground)."""
    settings = _installed(config)
    _print_admin(settings, initialise(settings, say), say)
    say(f"Superset on {settings.url} (import the dashboards with `cairn superset import-dashboards`)")
    exec_server(settings)


def import_into_running(config: "Config", url: str | None = None, user: str | None = None,
                        password: str | None = None) -> dict:
    """Import the dashboards into the Superset answering at ``url`` (default: the configured one)."""
    settings = superset_settings(config)
    url = (url or settings.url).rstrip("/")
    if not answers(url):
        raise CairnError(f"no Superset answers at {url}: start it (`cairn up` or `cairn superset run`), or give --url")
    report = import_dashboards(settings, url, user, password)
    if report is None:
        raise CairnError("this Cairn has no dashboards module (cairn.superset.dashboards) to import")
    return report


def login_for_user(engine: "Engine", config: "Config", username: str, email: str, password: str | None) -> bool:
    """Create or update the Superset login of the datalake user ``username`` (same password, same admin-ness)."""
    from cairn.serve.users import get_user, verify_password

    user = get_user(engine, username)
    if user is None:
        raise CairnError(f"no datalake user {username!r}: `cairn createuser {username} --email EMAIL` creates both")
    if not password:
        raise CairnError("give the datalake user's password (--password-stdin): the login uses the same one")
    if user.password_hash and not verify_password(user.password_hash, password):
        raise CairnError(f"that is not {username}'s datalake password: the Superset login uses the same one")
    return create_login(config, username, email, password, admin=user.admin)


def superset_status(config: "Config", with_logins: bool = False) -> dict:
    """Installed where, prepared or not, metadata and caches, URL and whether it answers (and the logins)."""
    from cairn.superset.logins import list_logins
    from cairn.superset.setup import is_initialised, superset_version

    settings = superset_settings(config)
    version = superset_version(settings)
    rows = [{"item": "installed", "value": f"Superset {version} in {settings.venv}" if version
             else f"no (expected in {settings.venv}; `make setup-superset`)"}]
    if version:
        rows += [
            {"item": "prepared", "value": "yes" if is_initialised(settings) else "no (`cairn superset setup`)"},
            {"item": "metadata", "value": "PostgreSQL" if settings.metadata_uri.startswith("postgres")
             else str(settings.home / "superset.db")},
            {"item": "cache", "value": ("Redis" if settings.redis_url else f"on disk in {settings.home / 'cache'}")
             + f", chart data {settings.data_cache_seconds} s, per user"},
            {"item": "url", "value": f"{settings.url} ({'answering' if answers(settings.url) else 'not answering'})"},
            {"item": "log", "value": str(log_path(settings))},
        ]
    info = {"title": "superset", "rows": rows}
    if with_logins and version:
        info["logins"] = [{"login": login["username"], "email": login["email"], "roles": ", ".join(login["roles"]),
                           "active": "yes" if login["active"] else "no"} for login in list_logins(config)]
    return info
