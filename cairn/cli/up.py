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
    port: Optional[int] = typer.Option(None, "--port", "-p", help="Port (default serve.port, 8123; 0: any free "
                                                                  "port)."),
    superset_port: Optional[int] = typer.Option(None, "--superset-port", help="Superset's port (default "
                                                                              "superset.port, 8088; 0: any free port)."),
    no_superset: bool = typer.Option(False, "--no-superset", help="Run the datalake only, without Superset."),
) -> None:
    """Run the whole stack: datalake, Open edX data, collectors, the ClickHouse HTTP interface and Superset.

    Applies migrations, sets up the Open edX MySQL tables, follows collector.sources, serves
    the datalake (`cairn serve`) and runs Superset with Cairn's dashboards beside it, each
    restarted if it dies, until Ctrl-C. Connect with `cairn client`, clickhouse-connect, or
    open the Superset URL it prints (logins: `cairn createuser NAME --email E`).
    """
    import cairn.superset.settings  # noqa: F401 - the superset.* settings
    from cairn.stack import StackOptions, demo_options, run_stack

    st = state(ctx)
    # Validate the flags before preparing anything (a bad --port must not cost a demo).
    flags = {"serve.host": host, "serve.port": port, "superset.port": superset_port}
    config = st.config.with_overrides({k: v for k, v in flags.items() if v is not None})
    if no_superset:
        config = config.with_overrides({"superset.enabled": False}, origin="--no-superset")
    options = StackOptions(demo=demo_options(learners) if demo else None, live_rate=live_rate,
                           superset=config["superset.enabled"])
    run_stack(config, options, say=say)


def say(text: str) -> None:
    """Print a line of `cairn up`'s progress (plain text: markup is escaped)."""
    console.print(escape(text), highlight=False)


def register(app: typer.Typer) -> None:
    """Add `cairn up`."""
    app.command("up")(up_command)
