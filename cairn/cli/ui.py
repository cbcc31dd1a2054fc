"""UI helpers shared by the commands: the schema guard, progress bars, result tables.

Commands print; the library decides. Anything more than formatting belongs in the
library, not here.
"""

from __future__ import annotations

from typing import Iterable, Sequence

from rich.console import Console
from rich.markup import escape
from rich.progress import (BarColumn, DownloadColumn, Progress, ProgressColumn, Task, TextColumn,
                           TimeRemainingColumn, TransferSpeedColumn)
from rich.table import Table
from rich.text import Text

from cairn.errors import CairnError

SCHEMA_NOT_READY = "the datalake schema is not up to date; run `cairn migrate` first"


def require_schema(st):
    """The engine of the invocation `st`, once its datalake schema has no pending migration.

    Commands that write into the datalake call this first, so that a missing table is
    one clear line instead of an engine error halfway through a load.
    """
    from cairn.schema.migrator import Migrator

    engine = st.engine()
    if Migrator(engine, st.config).pending():
        raise CairnError(SCHEMA_NOT_READY)
    return engine


class RateColumn(ProgressColumn):
    """Lines per second sent (every tracking line is an event, apart from a few skipped ones)."""

    def render(self, task: Task) -> Text:
        """The rate of the task's ``lines`` field since it started."""
        elapsed = task.elapsed or 0
        lines = task.fields.get("lines", 0)
        rate = lines / elapsed if elapsed > 0 else 0
        return Text(f"{rate:,.0f} events/s", style="progress.data.speed")


def bytes_progress(console, *, quiet: bool, transient: bool, events_rate: bool = False) -> Progress:
    """A byte progress bar on `console` (description, bar, bytes, speed, [events/s], time left)."""
    columns = [TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn()]
    if events_rate:
        columns.append(RateColumn())
    columns.append(TimeRemainingColumn())
    return Progress(*columns, console=console, disable=quiet, transient=transient)


class FileShare:
    """Moves a progress task through one file's share of the total, never beyond it.

    Compressed files report uncompressed bytes, so the reported count may exceed the
    share that was reserved for the file: the excess is dropped, and `finish` makes up
    for what was not reported.
    """

    def __init__(self, progress: Progress, task, size: int):
        self.progress, self.task, self.size, self.seen = progress, task, size, 0

    def advance(self, n: int) -> None:
        """Add `n` bytes read, clamped to the file's share."""
        step = max(0, min(n, self.size - self.seen))
        self.seen += step
        self.progress.advance(self.task, step)

    def lines(self, n: int) -> None:
        """Add `n` lines sent (shown by `RateColumn`)."""
        task = next(t for t in self.progress.tasks if t.id == self.task)
        self.progress.update(self.task, lines=task.fields.get("lines", 0) + n)

    def finish(self) -> None:
        """The file is done: the bar reaches the end of its share."""
        self.progress.advance(self.task, self.size - self.seen)
        self.seen = self.size


_COUNTS = ("events", "quarantined", "skipped")


def load_results_table(results: Iterable, *, already_note: str, fold: bool = True) -> Table:
    """One row per loaded file: events, quarantined and skipped lines, and a note."""
    table = Table(title_justify="left")
    for column in ("file",) + _COUNTS + ("note",):
        justify = "right" if column in _COUNTS else "left"
        if fold:
            table.add_column(column, justify=justify, overflow="fold")
        else:
            table.add_column(column, justify=justify)
    for result in results:
        note = already_note if result.already_loaded else f"{result.bytes_loaded:,} bytes read"
        table.add_row(escape(result.source), f"{result.counts.get('event', 0):,}",
                      f"{result.counts.get('quarantined', 0):,}", f"{result.counts.get('skipped', 0):,}", note)
    return table


def print_quarantine_note(console, results: Sequence, database: str) -> None:
    """Tell where quarantined lines went, when a load quarantined any."""
    if any(r.counts.get("quarantined") for r in results):
        console.print(f"Quarantined lines are in {database}._quarantine (see `reason`).", style="yellow")


def rows_table(title: str, rows: list[dict], *, fold: bool = False) -> Table:
    """A table of dict rows (columns from the first row; "(nothing)" when empty)."""
    table = Table(title=title, title_justify="left")
    columns = list(rows[0]) if rows else ["(nothing)"]
    for column in columns:
        if fold:
            table.add_column(str(column), overflow="fold")
        else:
            table.add_column(str(column))
    for row in rows:
        table.add_row(*(escape(str(row.get(c, ""))) for c in columns))
    return table


def print_warning(console: Console, message: str) -> None:
    """One ``Warning:`` line (the library's warnings: a file that shrank while loaded...)."""
    console.print(f"[yellow]Warning:[/] {escape(message)}", highlight=False, soft_wrap=True)
