"""`cairn demo`: generate a realistic Open edX platform (MySQL tables, courses, tracking log)."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape

from cairn.cli import console, err_console, state
from cairn.errors import CairnError


def demo_command(
    ctx: typer.Context,
    learners: int = typer.Option(2000, "--learners", help="Number of learners."),
    courses: int = typer.Option(5, "--courses", help="Number of course runs (spread over several orgs)."),
    days: int = typer.Option(60, "--days", help="Days of history in the tracking log."),
    seed: int = typer.Option(42, "--seed", help="Random seed: same seed and --start, same output."),
    output: Path = typer.Option(Path("demo"), "--output", "-o",
                                help="Folder for tracking.log, courses/ and ground_truth.json."),
    start: Optional[str] = typer.Option(None, "--start", metavar="YYYY-MM-DD",
                                        help="First day of the history (default: --days days before today)."),
    no_mysql: bool = typer.Option(False, "--no-mysql", help="Do not create or fill the Open edX MySQL tables."),
    live: bool = typer.Option(False, "--live", help="After the history, keep appending events with the current time."),
    rate: float = typer.Option(20.0, "--rate", help="--live: events per second."),
    duration: Optional[float] = typer.Option(None, "--duration", help="--live: stop after this many seconds."),
) -> None:
    """Generate a demo Open edX platform: MySQL tables, OLX courses and a tracking log.

    MySQL connection: the mysql.* settings (the local MariaDB by default; the database
    is mysql.database). Then: `cairn import-course DIR/courses/*` and `cairn load DIR/tracking.log`.
    """
    from cairn.demo import DemoOptions, generate_demo
    from cairn.demo import live as run_live

    first_day = None
    if start:
        try:
            first_day = datetime.strptime(start, "%Y-%m-%d").replace(tzinfo=timezone.utc)
        except ValueError:
            raise CairnError(f"--start expects YYYY-MM-DD, got {start!r}") from None
    st = state(ctx)
    options = DemoOptions(learners=learners, courses=courses, days=days, seed=seed, output=output,
                          start=first_day, mysql=not no_mysql)
    result = generate_demo(options, st.config if not no_mysql else None)
    console.print(f"[green]tracking log[/] {escape(str(result.tracking_log))}: {result.events:,} events "
                  f"in {result.seconds:.1f}s ({result.rate:,.0f} events/s)", highlight=False)
    for folder in result.course_folders:
        console.print(f"[green]course[/] {escape(str(folder))}", highlight=False)
    console.print(f"[green]ground truth[/] {escape(str(result.ground_truth))}", highlight=False)
    if result.mysql_rows:
        mysql = st.config.section("mysql")
        rows = ", ".join(f"{table} {count:,}" for table, count in result.mysql_rows.items())
        console.print(f"[green]MySQL[/] {mysql['host']}:{mysql['port']}/{escape(mysql['database'])}: {rows}",
                      highlight=False)
    if live:
        console.print(f"appending about {rate:g} events/s to {escape(str(result.tracking_log))} (Ctrl-C to stop)",
                      highlight=False)
        try:
            added = run_live(result, rate, duration)
        except KeyboardInterrupt:
            err_console.print("stopped")
            return
        console.print(f"{added:,} live events appended")


def register(app: typer.Typer) -> None:
    """Add `cairn demo`."""
    app.command("demo")(demo_command)
