"""`cairn mysql ...`: the Open edX MySQL tables in the datalake (modes, sync, schema check)."""

from __future__ import annotations

from typing import List

import typer
from rich.markup import escape

from cairn.cli import console, err_console, state
from cairn.cli.ui import rows_table
from cairn.errors import CairnError

mysql_app = typer.Typer(help="Open edX MySQL tables in the datalake: apply the mode, sync, check.",
                        no_args_is_help=True)


@mysql_app.command("apply")
def apply_command(ctx: typer.Context) -> None:
    """(Re)create the MySQL tables' datalake objects for the current configuration.

    Run it after changing mysql.enabled, mysql.mode, mysql.tables.T.mode, a refresh period
    or the MySQL credentials. Idempotent; synced copies are kept. Does not need MySQL up.
    """
    from cairn.sources import openedx_mysql

    st = state(ctx)
    modes = openedx_mysql.apply(st.engine(), st.config)
    for name, mode in modes.items():
        extra = f" (every {openedx_mysql.refresh_seconds(st.config, name)} s)" if mode == "synced" else ""
        console.print(f"{name:<20} {mode}{extra}", highlight=False)


@mysql_app.command("sync")
def sync_command(
    ctx: typer.Context,
    tables: List[str] = typer.Argument(None, help="Datalake tables to copy now (default: all synced)."),
) -> None:
    """Copy the synced tables from MySQL now and wait for the copies."""
    from cairn.sources import openedx_mysql

    st = state(ctx)
    counts = openedx_mysql.sync(st.engine(), st.config, tables or None)
    if not counts:
        console.print("No synced table (all live or MySQL disabled).")
    for name, count in counts.items():
        console.print(f"{name:<20} {count:,} rows", highlight=False)
    if counts:
        # Columns of a newer (or older) Open edX release: reported, never fatal here.
        for result in openedx_mysql.schema_differences(st.engine(), st.config, list(counts)):
            err_console.print(f"[yellow]note[/] {result.table} ({escape(result.mysql_table)}): "
                              f"{escape(result.describe())}", highlight=False, soft_wrap=True)


@mysql_app.command("check")
def check_command(ctx: typer.Context) -> None:
    """Compare the MySQL tables' columns with the datalake's (unknown columns are reported, not fatal)."""
    from cairn.sources import openedx_mysql

    st = state(ctx)
    results = openedx_mysql.check_schema(st.engine(), st.config)
    for result in results:
        style = "red" if result.missing else ("yellow" if result.unknown else "green")
        console.print(f"[{style}]{result.table:<20}[/] {escape(result.mysql_table)}: {escape(result.describe())}",
                      highlight=False, soft_wrap=True)
    if any(r.missing for r in results):
        raise CairnError("some MySQL tables lack columns the datalake reads (see above)")


@mysql_app.command("status")
def status_command(ctx: typer.Context) -> None:
    """Mode of each table, rows copied, and how old each synced copy is."""
    from cairn.sources import openedx_mysql

    st = state(ctx)
    section = openedx_mysql.status_section(st.engine(), st.config)
    console.print(rows_table(section["title"], section["rows"]))


@mysql_app.command("create-tables")
def create_tables_command(ctx: typer.Context) -> None:
    """Create the Open edX tables (real column definitions) in the configured MySQL database, if missing.

    For development and demos: an Open edX LMS creates these tables itself.
    """
    from cairn.sources import openedx_mysql

    st = state(ctx)
    names = openedx_mysql.create_openedx_tables(st.config)
    err_console.print(f"{len(names)} Open edX tables present in MySQL database "
                      f"{st.config['mysql.database']!r} at {st.config['mysql.host']}:{st.config['mysql.port']}.",
                      highlight=False)


def register(app: typer.Typer) -> None:
    """Add `cairn mysql ...`."""
    app.add_typer(mysql_app, name="mysql")
