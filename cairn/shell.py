"""The SQL shell behind `cairn client`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from cairn.errors import CairnError, EngineError
from cairn.schema.migrator import split_statements
from cairn.serve.statement import Statement

if TYPE_CHECKING:  # pragma: no cover
    from cairn.engine import Engine

EXIT_WORDS = {"exit", "quit", "\\q", "q", ":q", "logout"}


def run_statements(engine: "Engine", sql: str, fmt: str, out: BinaryIO) -> None:
    """Run ``;``-separated statements, writing each result in ``fmt`` to ``out``.

    A statement with its own FORMAT clause keeps it.
    """
    statements = split_statements(sql)
    if not statements:
        raise CairnError("no SQL statement given")
    for text in statements:
        statement = Statement.parse(text)
        if not statement.returns_rows:  # DDL, INSERT, SYSTEM...: no FORMAT clause allowed
            engine.command(text)
            continue
        # A statement with its own FORMAT clause keeps it (the driver would add a second one).
        out.write(engine.raw_query(text, fmt=None if statement.format else fmt))
        out.flush()


def interactive_shell(engine: "Engine", history_file: Path, fmt: str) -> None:
    """Read statements until ``;`` at the end of a line; errors are shown, the shell goes on."""
    import sys

    from prompt_toolkit import PromptSession
    from prompt_toolkit.history import FileHistory

    history_file.parent.mkdir(parents=True, exist_ok=True)
    session: PromptSession = PromptSession(history=FileHistory(str(history_file)))
    print(f"Connected to {engine.describe()}, database {engine.database}. "
          "End statements with ';'. Type exit to leave.")
    buffer: list[str] = []
    while True:
        try:
            line = session.prompt("cairn> " if not buffer else "    -> ")
        except KeyboardInterrupt:
            buffer.clear()
            continue
        except EOFError:
            print()
            return
        if not buffer and line.strip().lower().rstrip(";") in EXIT_WORDS:
            return
        buffer.append(line)
        text = "\n".join(buffer).strip()
        if not text:
            buffer.clear()
            continue
        if not text.endswith(";"):
            continue
        buffer.clear()
        try:
            run_statements(engine, text, fmt, sys.stdout.buffer)
        except EngineError as exc:
            print(f"Error: {exc}", file=sys.stderr)
