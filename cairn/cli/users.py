"""`cairn createuser`, `cairn deleteuser`, `cairn listusers`: datalake accounts and their scopes."""

from __future__ import annotations

import json
import sys
from typing import List, Optional

import typer
from rich.markup import escape
from rich.table import Table

from cairn.cli import console, state
from cairn.errors import CairnError


def createuser_command(
    ctx: typer.Context,
    username: str = typer.Argument(..., help="Login name."),
    password: Optional[str] = typer.Option(None, "--password", help="Password (prefer --password-stdin)."),
    password_stdin: bool = typer.Option(False, "--password-stdin", help="Read the password from standard input."),
    course_id: List[str] = typer.Option([], "--course-id", help="A course the user may see (repeatable)."),
    org_id: List[str] = typer.Option([], "--org-id", help="An organisation whose courses the user may see (repeatable)."),
    admin: bool = typer.Option(False, "--admin", help="Sees and may do everything."),
    replace: bool = typer.Option(False, "--replace", help="Update the user if it exists."),
    email: Optional[str] = typer.Option(None, "--email", help="Also create the user's Superset login (same name and "
                                                              "password) with this email."),
) -> None:
    """Create a datalake user who sees only the rows of their courses and organisations.

    With --email, also their Superset login: every query they run in Superset then reaches
    the datalake as this user, with this user's rights.
    """
    from cairn.serve.users import create_user
    from cairn.superset.logins import create_login, validate_email

    if password is not None and password_stdin:
        raise CairnError("give either --password or --password-stdin, not both")
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise CairnError("a password is required (--password or --password-stdin)")
    if email is not None:
        validate_email(email)  # before anything is created
    st = state(ctx)
    user = create_user(st.engine(), st.config, username, password, course_id, org_id, admin=admin, replace=replace)
    console.print(f"user {escape(user.name)} {'updated' if replace else 'created'}: {escape(user.describe_scope())}",
                  highlight=False)
    if email is not None:
        try:
            created = create_login(st.config, user.name, email, password, admin=user.admin)
        except CairnError as exc:
            raise CairnError(f"the datalake user {user.name} is ready, but its Superset login is not: {exc} "
                             f"(then: cairn superset create-login {user.name} --email EMAIL --password-stdin)") from None
        console.print(f"Superset login {escape(user.name)} {'created' if created else 'updated'} "
                      f"({'admin' if user.admin else 'sees what the datalake user sees'})", highlight=False)


def deleteuser_command(ctx: typer.Context, username: str = typer.Argument(..., help="Login name.")) -> None:
    """Delete a datalake user, and their Superset login if they have one."""
    from cairn.serve.users import delete_user
    from cairn.superset.logins import delete_login, superset_initialised

    st = state(ctx)
    delete_user(st.engine(), st.config, username)
    console.print(f"user {escape(username)} deleted", highlight=False)
    if superset_initialised(st.config) and delete_login(st.config, username):
        console.print(f"Superset login {escape(username)} deleted", highlight=False)


def listusers_command(ctx: typer.Context,
                      as_json: bool = typer.Option(False, "--json", help="Print as JSON.")) -> None:
    """List datalake users with their scopes."""
    from cairn.serve.users import list_users

    users = list_users(state(ctx).engine())
    if as_json:
        console.print_json(json.dumps([{"name": u.name, "admin": u.admin, "course_ids": list(u.course_ids),
                                        "org_ids": list(u.org_ids)} for u in users]))
        return
    table = Table(title_justify="left")
    for column in ("user", "admin", "courses", "orgs"):
        table.add_column(column)
    for u in users:
        table.add_row(escape(u.name), "yes" if u.admin else "", escape(", ".join(u.course_ids)),
                      escape(", ".join(u.org_ids)))
    console.print(table)


def register(app: typer.Typer) -> None:
    """Add `cairn createuser`, `cairn deleteuser` and `cairn listusers`."""
    app.command("createuser")(createuser_command)
    app.command("deleteuser")(deleteuser_command)
    app.command("listusers")(listusers_command)
