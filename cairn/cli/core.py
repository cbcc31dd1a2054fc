"""Core commands: config, migrate, load, client, status."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import List, Optional

import typer
from rich.markup import escape
from rich.table import Table

from cairn.cli import console, err_console, state
from cairn.cli.ui import (FileShare, bytes_progress, load_results_table, print_quarantine_note, print_warning,
                          require_schema, rows_table)
from cairn.status import human_bytes


def config_command(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="Print as JSON."),
) -> None:
    """Print the effective configuration (secrets masked) and where each value comes from."""
    from cairn.config import setting_named

    cfg = state(ctx).config
    values = cfg.redacted()
    if as_json:
        console.print_json(json.dumps(values, default=str))
        return
    table = Table(title=f"Cairn configuration (file: {cfg.file or 'none'})", title_justify="left")
    table.add_column("setting", overflow="fold")
    table.add_column("value", overflow="fold")
    table.add_column("from", overflow="fold")
    table.add_column("environment variable", style="dim", overflow="fold")
    table.add_column("meaning", overflow="fold")
    for name, value in values.items():
        setting = setting_named(name)
        table.add_row(name, escape(json.dumps(value) if not isinstance(value, str) else value),
                      escape(cfg.origins.get(name, "default")), setting.env_var, escape(setting.help))
    console.print(table)


def migrate_command(
    ctx: typer.Context,
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the SQL of pending migrations; change nothing."),
    fake: bool = typer.Option(False, "--fake", help="Record pending migrations as applied without running them."),
    path: List[Path] = typer.Option([], "--path", help="Extra folder of .sql migrations (repeatable)."),
) -> None:
    """Create or upgrade the datalake schema (applies pending migrations in name order)."""
    from cairn.schema.migrator import Migrator

    st = state(ctx)
    migrator = Migrator(st.engine(), st.config, extra_folders=path)
    styles = {"SKIP": "dim", "APPLY": "green", "FAKE": "yellow", "CHANGED": "bold yellow", "DRY-RUN": "cyan"}

    secrets = st.config.secret_values()

    def echo(status: str, name: str, detail: str) -> None:
        for secret in secrets:  # rendered SQL may carry credentials (MySQL engine tables)
            detail = detail.replace(secret, "********")
        console.print(f"[{styles[status]}]{status:<8}[/] {escape(name)}", highlight=False)
        if status == "DRY-RUN":
            console.print(escape(detail), highlight=False, soft_wrap=True)
        elif detail:
            console.print(f"         {escape(detail)}", style="yellow", highlight=False)

    report = migrator.run(dry_run=dry_run, fake=fake, echo=echo)
    applied = sum(1 for s, _ in report.steps if s in ("APPLY", "FAKE"))
    if not dry_run:
        console.print(f"{applied} migration(s) applied to {migrator.database} ({st.engine().describe()}).")
    _make_data_dir_private(st.config, dry_run)


def _make_data_dir_private(config, dry_run: bool) -> None:
    """Fix the modes of the local data directory (embedded engine) and say how many paths changed."""
    from cairn.status import make_data_dir_private

    fixed = make_data_dir_private(config, dry_run=dry_run)
    if fixed and dry_run:
        console.print(f"{fixed:,} path(s) in {escape(str(config.data_dir))} are open to group or others: "
                      "`cairn migrate` makes them private.", style="yellow", highlight=False, soft_wrap=True)
    elif fixed:
        console.print(f"{fixed:,} path(s) in {escape(str(config.data_dir))} made private to their owner "
                      "(0700 folders, 0600 files).", highlight=False, soft_wrap=True)


def load_command(
    ctx: typer.Context,
    files: List[Path] = typer.Argument(..., help="Tracking-log files (plain, prefixed, gzip or JSON documents)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar or summary."),
) -> None:
    """Load tracking-log files into the datalake (resumes where a previous load stopped)."""
    from cairn.ingest.files import loadable_file
    from cairn.ingest.loader import FOLDER_HINT, file_loader

    st = state(ctx)
    files = [loadable_file(file, FOLDER_HINT) for file in files]  # FIFOs, devices, loops: one line each
    engine = require_schema(st)
    loader = file_loader(engine, st.config, warn=lambda line: print_warning(err_console, line))
    total = sum(f.stat().st_size for f in files)
    results = []
    with bytes_progress(err_console, quiet=quiet, transient=True) as progress:
        task = progress.add_task("loading", total=total)
        for file in files:
            progress.update(task, description=f"loading {file.name}")
            share = FileShare(progress, task, file.stat().st_size)
            results.append(loader.load_file(file, progress=share.advance))
            share.finish()
    if quiet:
        return
    console.print(load_results_table(results, already_note="already loaded: nothing added"))
    print_quarantine_note(console, results, engine.database)


def client_command(
    ctx: typer.Context,
    query: Optional[str] = typer.Option(None, "--query", "-q", help="Run this SQL (statements separated by ;) and exit."),
    fmt: Optional[str] = typer.Option(None, "--format", "-f",
                                      help="Output format: any ClickHouse format (default PrettyCompact "
                                           "on a terminal, TabSeparated otherwise)."),
) -> None:
    """SQL shell on the datalake: interactive with history, or one query with -q."""
    from cairn.shell import interactive_shell, run_statements

    st = state(ctx)
    engine = st.engine()
    out_format = fmt or ("PrettyCompact" if sys.stdout.isatty() else "TabSeparated")
    if query is not None:
        run_statements(engine, query, out_format, sys.stdout.buffer)
    elif not sys.stdin.isatty():
        run_statements(engine, sys.stdin.read(), out_format, sys.stdout.buffer)
    else:
        interactive_shell(engine, st.config.data_dir / "client_history", out_format)


def status_command(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="Print as JSON."),
) -> None:
    """Engine, database, tables with row counts, last event, migrations and quarantine."""
    from cairn.status import collect_status

    st = state(ctx)
    info = collect_status(st.engine(), st.config)
    if as_json:
        console.print_json(json.dumps(info, default=str))
        return
    console.print(f"[bold]engine[/]    {escape(info['engine'])} (ClickHouse {info['version']})", highlight=False)
    console.print(f"[bold]database[/]  {info['database']}", highlight=False)
    migrations = info["migrations"]
    console.print(f"[bold]migrations[/] {migrations['applied']} applied, {migrations['pending']} pending"
                  + (f", {migrations['changed']} changed since applied" if migrations["changed"] else ""),
                  highlight=False)
    if not info["tables"]:
        console.print("No datalake yet: run `cairn migrate`.", style="yellow")
        return
    console.print(f"[bold]last event[/] {info['last_event_time'] or 'none'}", highlight=False)
    lines = info["lines"]
    console.print(f"[bold]lines[/]     {lines.get('event', 0):,} events, {lines.get('quarantined', 0):,} quarantined, "
                  f"{lines.get('skipped', 0):,} skipped", highlight=False)
    table = Table(title="tables", title_justify="left")
    table.add_column("table", overflow="fold")
    table.add_column("rows", justify="right")
    table.add_column("size", justify="right")
    for row in info["tables"]:
        if row["engine"] == "View":  # computed when queried: counting would run the query
            table.add_row(row["name"], "view", "")
        else:
            table.add_row(row["name"], f"{row['rows']:,}", human_bytes(row["bytes"]))
    console.print(table)
    for section in info.get("sections", []):
        console.print(rows_table(section.get("title", ""), section.get("rows", []), fold=True))
        for warning in section.get("warnings", []):
            console.print(f"[bold yellow]Warning:[/] {escape(warning)}", highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    """Add `cairn config`, `migrate`, `load`, `client` and `status`."""
    app.command("config")(config_command)
    app.command("migrate")(migrate_command)
    app.command("load")(load_command)
    app.command("client")(client_command)
    app.command("status")(status_command)
