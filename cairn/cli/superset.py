"""`cairn superset ...`: Superset beside the datalake (set-up, server, dashboards, logins)."""

from __future__ import annotations

import json
import sys
from typing import Optional

import typer
from rich.markup import escape

import cairn.superset.settings  # noqa: F401 - the superset.* settings exist before any configuration is read
from cairn.cli import console, state
from cairn.errors import CairnError

superset_app = typer.Typer(name="superset", help="Apache Superset beside the datalake: set-up, web server, "
                                                 "dashboards and logins.", no_args_is_help=True)


def _say(text: str) -> None:
    console.print(escape(text), highlight=False, soft_wrap=True)


def read_password(password: Optional[str], password_stdin: bool) -> Optional[str]:
    """The password from --password or --password-stdin (one of them, or neither)."""
    if password is not None and password_stdin:
        raise CairnError("give either --password or --password-stdin, not both")
    if password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return password


@superset_app.command("setup")
def setup_command(ctx: typer.Context,
                  no_import: bool = typer.Option(False, "--no-import", help="Do not import the dashboards.")) -> None:
    """Prepare Superset: configuration, metadata, the Cairn role, the admin, then import the dashboards
    (with a temporary web server when none runs)."""
    from cairn.superset.operations import setup

    setup(state(ctx).config, import_assets=not no_import, say=_say)


@superset_app.command("run")
def run_command(ctx: typer.Context) -> None:
    """Prepare Superset, then run its web server in the foreground (for containers; Ctrl-C stops it)."""
    from cairn.superset.operations import run_foreground

    run_foreground(state(ctx).config, say=_say)


@superset_app.command("import-dashboards")
def import_command(
    ctx: typer.Context,
    url: Optional[str] = typer.Option(None, "--url", help="Superset's address (default: superset.host/port)."),
    user: Optional[str] = typer.Option(None, "--user", help="Admin login (default superset.admin_user)."),
    password: Optional[str] = typer.Option(None, "--password", help="Its password (default: configured or "
                                                                     "generated one)."),
) -> None:
    """Import (or update in place) Cairn's dashboards, charts and datasets into a running Superset."""
    from cairn.superset.operations import import_into_running
    from cairn.superset.setup import summary

    report = import_into_running(state(ctx).config, url, user, password)
    console.print(f"dashboards imported: {escape(summary(report))}", highlight=False)


@superset_app.command("create-login")
def create_login_command(
    ctx: typer.Context,
    username: str = typer.Argument(..., help="The datalake user's name (`cairn createuser`)."),
    email: str = typer.Option(..., "--email", help="Email address of the login."),
    password: Optional[str] = typer.Option(None, "--password", help="The datalake user's password (prefer "
                                                                    "--password-stdin)."),
    password_stdin: bool = typer.Option(False, "--password-stdin", help="Read the password from standard input."),
) -> None:
    """Create (or update) the Superset login of an existing datalake user: same name, same password."""
    from cairn.superset.operations import login_for_user

    st = state(ctx)
    created = login_for_user(st.engine(), st.config, username, email, read_password(password, password_stdin))
    console.print(f"Superset login {escape(username)} {'created' if created else 'updated'}", highlight=False)


@superset_app.command("delete-login")
def delete_login_command(ctx: typer.Context, username: str = typer.Argument(..., help="Login name.")) -> None:
    """Remove a Superset login (the datalake user stays: `cairn deleteuser` removes both)."""
    from cairn.superset.logins import delete_login

    if not delete_login(state(ctx).config, username):
        raise CairnError(f"no Superset login {username!r}")
    console.print(f"Superset login {escape(username)} deleted", highlight=False)


@superset_app.command("status")
def status_command(ctx: typer.Context,
                   as_json: bool = typer.Option(False, "--json", help="Print as JSON."),
                   logins: bool = typer.Option(False, "--logins", help="Also list the logins (slower).")) -> None:
    """Whether Superset is installed, prepared and answering, where, and its logins."""
    from cairn.cli.ui import rows_table
    from cairn.superset.operations import superset_status

    info = superset_status(state(ctx).config, with_logins=logins)
    if as_json:
        console.print_json(json.dumps(info, default=str))
        return
    console.print(rows_table(info["title"], info["rows"], fold=True))
    if logins:
        console.print(rows_table("Superset logins", info.get("logins", []), fold=True))


def register(app: typer.Typer) -> None:
    """Add `cairn superset ...`."""
    app.add_typer(superset_app, name="superset")
