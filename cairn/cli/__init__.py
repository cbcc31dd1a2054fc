"""The `cairn` command. Thin: it parses arguments and calls the library.

Each command module registers its commands with ``register(app)``; they are imported
explicitly below, in data-flow order, which is also their order in ``cairn --help``.
Packages add commands through the ``cairn.hooks.CLI_COMMANDS`` extension point.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import List, Optional

import typer
from rich.console import Console
from rich.markup import escape

from cairn import __version__
from cairn.config import Config, load_config
from cairn.errors import CairnError, ConfigError

app = typer.Typer(
    name="cairn",
    help="Cairn: a real-time SQL datalake for Open edX on ClickHouse.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)
console = Console()
err_console = Console(stderr=True)


@dataclass
class CliState:
    """Options shared by all commands; config and engine are opened on first use."""

    config_file: Optional[str] = None
    overrides: dict = field(default_factory=dict)
    _config: Optional[Config] = None
    _engine: object = None

    @property
    def config(self) -> Config:
        """The effective configuration (loaded on first use)."""
        if self._config is None:
            self._config = load_config(self.config_file, self.overrides)
        return self._config

    def engine(self):
        """The configured engine (opened once per command)."""
        if self._engine is None:
            from cairn.engine import open_engine

            self._engine = open_engine(self.config)
        return self._engine

    def close(self) -> None:
        """Close the engine if a command opened it."""
        if self._engine is not None:
            self._engine.close()
            self._engine = None


def state(ctx: typer.Context) -> CliState:
    """The shared state of the current invocation."""
    root = ctx.find_root()
    if not isinstance(root.obj, CliState):
        root.obj = CliState()
    return root.obj


def _parse_set(values: List[str]) -> dict:
    overrides = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects KEY=VALUE, got {item!r}")
        overrides[key.strip()] = value
    return overrides


def _version(value: bool) -> None:
    if value:
        console.print(f"cairn {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    ctx: typer.Context,
    config_file: Optional[str] = typer.Option(None, "--config", "-c", envvar="CAIRN_CONFIG",
                                              help="TOML config file (default: ./cairn.toml if present)."),
    data_dir: Optional[str] = typer.Option(None, "--data-dir", help="Embedded engine data folder (default .cairn)."),
    engine: Optional[str] = typer.Option(None, "--engine", help="embedded or server."),
    database: Optional[str] = typer.Option(None, "--database", help="Datalake database (default openedx)."),
    set_values: List[str] = typer.Option([], "--set", metavar="KEY=VALUE",
                                         help="Any setting, e.g. --set clickhouse.host=ch1 (repeatable)."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Show the version and exit."),
) -> None:
    """Cairn: a real-time SQL datalake for Open edX on ClickHouse."""
    overrides = _parse_set(set_values)
    for key, value in (("data_dir", data_dir), ("engine", engine), ("database", database)):
        if value is not None:
            overrides[key] = value
    ctx.obj = CliState(config_file=config_file, overrides=overrides)
    ctx.call_on_close(ctx.obj.close)


def _register_commands() -> None:
    # Imported here, not at the top: the command modules import `app`, `state` and the
    # consoles from this module. Order: set up and load, follow, serve, then the sources
    # and the demo.
    from cairn import hooks
    from cairn.cli import collect, core, courses, demo, mysql, serve, superset, up, users

    for module in (core, up, collect, serve, users, mysql, courses, demo, superset):
        module.register(app)
    for register in hooks.CLI_COMMANDS:
        register(app)


_register_commands()


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point of the `cairn` console script; expected errors print one line, no traceback."""
    # The driver logs connection failures itself; Cairn reports them as one line instead.
    logging.getLogger("clickhouse_connect").setLevel(logging.CRITICAL)
    try:
        app(args=argv, prog_name="cairn")  # exits with SystemExit (usage errors included)
    except CairnError as exc:
        err_console.print(f"[bold red]Error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        return 1
    except KeyboardInterrupt:
        err_console.print("Interrupted.")
        return 130
    return 0
