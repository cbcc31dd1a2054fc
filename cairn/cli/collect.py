"""Collector commands: `collect` (follow logs in real time) and `backfill` (load past logs)."""

from __future__ import annotations

import os
import struct
import time
from pathlib import Path
from typing import List

import typer
from rich.markup import escape
from rich.progress import (BarColumn, DownloadColumn, Progress, ProgressColumn, Task, TextColumn,
                           TimeRemainingColumn, TransferSpeedColumn)
from rich.table import Table
from rich.text import Text

from cairn.cli import console, err_console, state
from cairn.errors import CairnError


def _require_schema(st) -> None:
    from cairn.schema.migrator import Migrator

    if Migrator(st.engine(), st.config).pending():
        raise CairnError("the datalake schema is not up to date; run `cairn migrate` first")


def collect_command(
    ctx: typer.Context,
    sources: List[str] = typer.Argument(
        None, metavar="SOURCE...",
        help="Files or globs to follow (quote globs), or - for standard input. "
             "Default: the collector.sources setting."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only print errors."),
) -> None:
    """Follow tracking logs and load new events within a second (Ctrl-C or SIGTERM to stop).

    Handles log rotation (rename, copytruncate, compression, deletion) without loss or
    duplicates, and resumes where it stopped after a crash.
    """
    from cairn.ingest.collector import Collector, install_signal_handlers, served_engine

    st = state(ctx)
    chosen = list(sources or st.config["collector.sources"])
    if not chosen:
        raise CairnError("nothing to follow: give files, globs or -, or set collector.sources")
    engine = st.engine()
    _require_schema(st)

    def echo(message: str) -> None:
        if not quiet or message.startswith("engine"):
            err_console.print(f"[dim]{time.strftime('%H:%M:%S')}[/] {escape(message)}", highlight=False)

    # Through a local `cairn serve` (it owns the data directory): follow its restarts.
    reconnect = served_engine(st.config) if st.config.engine == "embedded" and engine.kind == "server" else None
    collector = Collector(engine, chosen, flush_interval=st.config["collector.flush_interval"],
                          batch_bytes=st.config["collector.batch_bytes"], state_dir=st.config.data_dir, echo=echo,
                          reconnect=reconnect)
    install_signal_handlers(collector)
    import glob

    for source in chosen:
        if source != "-" and not glob.has_magic(source) and not Path(source).expanduser().exists():
            echo(f"{source} does not exist yet: waiting for it")
    described = ", ".join(chosen)
    echo(f"collecting {described} into {engine.database} ({engine.describe()})")
    collector.run()
    echo("stopped")


class _RateColumn(ProgressColumn):
    """Lines per second sent (every tracking line is an event, apart from a few skipped ones)."""

    def render(self, task: Task) -> Text:
        elapsed = task.elapsed or 0
        lines = task.fields.get("lines", 0)
        rate = lines / elapsed if elapsed > 0 else 0
        return Text(f"{rate:,.0f} events/s", style="progress.data.speed")


def uncompressed_size(path: Path) -> int:
    """Bytes the file holds once decompressed (gzip ISIZE trailer; exact below 4 GiB)."""
    size = path.stat().st_size
    with open(path, "rb") as handle:
        if handle.read(2) != b"\x1f\x8b" or size < 18:
            return size
        handle.seek(-4, os.SEEK_END)
        return struct.unpack("<I", handle.read(4))[0]


# Each insert pays a fixed cost for the materialized views (planning ~10 views, a part
# per table), so backfill sends bigger inserts than the real-time default of 4 MiB.
# Through a server the engine's memory is not ours: smaller inserts keep this
# process small (the HTTP client holds a copy of the body).
BACKFILL_BATCH_BYTES = 32 * 1024 * 1024
BACKFILL_BATCH_BYTES_SERVER = 4 * 1024 * 1024


def backfill_batch_bytes(config, engine_kind: str = "embedded") -> int:
    """collector.batch_bytes when set by the user, else 32 MiB embedded / 4 MiB through a server."""
    if config.origins.get("collector.batch_bytes", "default") == "default":
        wanted = BACKFILL_BATCH_BYTES if engine_kind == "embedded" else BACKFILL_BATCH_BYTES_SERVER
        return max(config["collector.batch_bytes"], wanted)
    return config["collector.batch_bytes"]


def backfill_command(
    ctx: typer.Context,
    paths: List[Path] = typer.Argument(..., metavar="PATH...",
                                       help="Past tracking logs (files or folders): plain or gzip-compressed."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar or summary."),
    parallel: int = typer.Option(1, "--parallel", min=1, max=8,
                                 help="Chunks inserted at the same time (embedded engine: one connection each)."),
) -> None:
    """Load past tracking logs with a progress bar; interrupted, it resumes; re-run, it adds nothing."""
    from cairn.ingest.loader import Loader

    st = state(ctx)
    files: list[Path] = []
    for path in paths:
        if not path.exists():
            raise CairnError(f"{path}: no such file")
        if path.is_dir():
            files.extend(sorted(p for p in path.iterdir() if p.is_file()))
        else:
            files.append(path)
    # Oldest first, so that the events arrive roughly in time order.
    files.sort(key=lambda p: p.stat().st_mtime)
    engine = st.engine()
    _require_schema(st)
    loader = Loader(engine, batch_bytes=backfill_batch_bytes(st.config, engine.kind), parallel=parallel)
    sizes = {f: uncompressed_size(f) for f in files}
    results = []
    started = time.monotonic()
    with Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                  _RateColumn(), TimeRemainingColumn(), console=err_console, disable=quiet,
                  transient=False) as progress:
        task = progress.add_task("backfill", total=sum(sizes.values()), lines=0)
        for file in files:
            progress.update(task, description=escape(file.name))
            seen = [0]

            def advance(n: int, size=sizes[file], seen=seen) -> None:
                step = max(0, min(n, size - seen[0]))
                seen[0] += step
                progress.advance(task, step)

            def count(n: int) -> None:
                progress.update(task, lines=progress.tasks[0].fields["lines"] + n)

            try:
                results.append(loader.load_file(file, progress=advance, lines=count))
            except KeyboardInterrupt:
                err_console.print("Interrupted: run the same command again to continue where it stopped.")
                raise
            progress.advance(task, sizes[file] - seen[0])
        progress.update(task, description="done")
    if quiet:
        return
    elapsed = time.monotonic() - started
    table = Table(title_justify="left")
    for column in ("file", "events", "quarantined", "skipped", "note"):
        table.add_column(column, justify="right" if column in ("events", "quarantined", "skipped") else "left")
    for result in results:
        note = "already loaded" if result.already_loaded else f"{result.bytes_loaded:,} bytes read"
        table.add_row(escape(result.source), f"{result.counts.get('event', 0):,}",
                      f"{result.counts.get('quarantined', 0):,}", f"{result.counts.get('skipped', 0):,}", note)
    console.print(table)
    read = sum(r.bytes_loaded for r in results)
    lines = sum(r.lines_sent for r in results)
    console.print(f"{read / 1e6:,.1f} MB, {lines:,} lines in {elapsed:,.1f} s "
                  f"({lines / elapsed if elapsed else 0:,.0f} lines/s)", highlight=False)
    if any(r.counts.get("quarantined") for r in results):
        console.print(f"Quarantined lines are in {engine.database}._quarantine (see `reason`).", style="yellow")


def register(app: typer.Typer) -> None:
    from cairn.ingest.collector import collector_status
    from cairn.status import STATUS_SECTIONS

    app.command("collect")(collect_command)
    app.command("backfill")(backfill_command)
    if collector_status not in STATUS_SECTIONS:
        STATUS_SECTIONS.append(collector_status)
