"""`cairn serve`: the embedded datalake as a ClickHouse HTTP server."""

from __future__ import annotations

from typing import Optional

import typer

from cairn.cli import console, state
# The serve.* limits are settings of their own module (cairn.hooks.SETTINGS): registered
# before any command loads the configuration.
from cairn.serve import settings as _serve_settings  # noqa: F401


def serve_command(
    ctx: typer.Context,
    host: Optional[str] = typer.Option(None, "--host", help="Address to listen on (default serve.host, 127.0.0.1)."),
    port: Optional[int] = typer.Option(None, "--port", "-p", help="Port (default serve.port, 8123; 0 = any free port)."),
    workers: Optional[int] = typer.Option(None, "--workers", help="Statements run in the engine at once (serve.workers, default: cores)."),
) -> None:
    """Serve the embedded datalake over the ClickHouse HTTP interface (clickhouse-connect, Superset, curl).

    Applies pending migrations, runs the configured collectors, and lets the other cairn
    commands on this data directory work through it. Stops cleanly on SIGTERM or Ctrl-C.
    """
    from cairn.serve.service import serve_until_stopped

    st = state(ctx)
    # Flags are settings too: validated the same way (a bad --port is one clear line).
    flags = {"serve.host": host, "serve.port": port, "serve.workers": workers}
    cfg = st.config.with_overrides({k: v for k, v in flags.items() if v is not None})
    serve_until_stopped(cfg, say=lambda text: console.print(text, highlight=False))


def register(app: typer.Typer) -> None:
    app.command("serve")(serve_command)
