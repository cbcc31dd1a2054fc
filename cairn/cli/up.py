"""`cairn up`: the whole stack on this machine."""

from __future__ import annotations

from typing import Optional

import typer
from rich.markup import escape

from cairn.cli import console, state


def up_command(
    ctx: typer.Context,
    demo: bool = typer.Option(False, "--demo", help="Create a demo Open edX platform to explore on first run "
                                                    "(MySQL database cairn_demo, courses, tracking log in "
                                                    "DATA_DIR/demo), and keep adding live events to it on "
                                                    "every run."),
    learners: int = typer.Option(500, "--learners", help="--demo: number of learners."),
    live_rate: float = typer.Option(5.0, "--live-rate", help="--demo: events per second appended while running "
                                                             "(0: none)."),
    host: Optional[str] = typer.Option(None, "--host", help="Address to listen on (default serve.host)."),
    port: Optional[int] = typer.Option(None, "--port", "-p", help="Port (default serve.port, 8123)."),
) -> None:
    """Run the whole stack: datalake, Open edX data, collectors and the ClickHouse HTTP interface.

    Applies migrations, sets up the Open edX MySQL tables, follows collector.sources, and
    serves until Ctrl-C. Connect with `cairn client`, clickhouse-connect, or Superset
    (clickhousedb://USER:PASSWORD@HOST:PORT/openedx, users from `cairn createuser`).
    """
    from cairn.serve.service import serve_until_stopped
    from cairn.stack import demo_options, prepare

    st = state(ctx)
    # Validate the flags before preparing anything (a bad --port must not cost a demo).
    flags = {"serve.host": host, "serve.port": port}
    config = st.config.with_overrides({k: v for k, v in flags.items() if v is not None})
    options = demo_options(learners) if demo else None
    prepared = prepare(config, options, live_rate, say=say)
    for note in prepared.notes or []:
        console.print(f"[yellow]note:[/] {escape(note)}", highlight=False)
    if prepared.start_live is not None:
        prepared.start_live()
        console.print(f"appending about {live_rate:g} live events/s to the demo tracking log", highlight=False)
    # Serve what was prepared (demo sources, demo MySQL database), not the original flags.
    serve_until_stopped(prepared.config, say=lambda text: console.print(text, highlight=False))


def say(text: str) -> None:
    """Print a line of `cairn up`'s progress (plain text: markup is escaped)."""
    console.print(escape(text), highlight=False)


def register(app: typer.Typer) -> None:
    """Add `cairn up`."""
    app.command("up")(up_command)
