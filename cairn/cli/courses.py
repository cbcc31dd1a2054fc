"""Course structure commands: import-course, refresh-courses."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.markup import escape

from cairn.cli import console, err_console, state
from cairn.cli.ui import require_schema
from cairn.errors import CairnError


def _print_results(results) -> None:
    for result in results:
        types = ", ".join(f"{name} {count}" for name, count in sorted(result.by_type.items(), key=lambda x: -x[1]))
        console.print(f"[green]imported[/] {escape(result.course_id)}: {result.blocks} blocks ({escape(types)})",
                      highlight=False)


def import_course_command(
    ctx: typer.Context,
    paths: List[Path] = typer.Argument(None, help="OLX exports (.tar.gz or folder) or JSON-lines dumps "
                                                  "printed by cairn_dump_course_blocks.py."),
    course_key: Optional[str] = typer.Option(None, "--course-key",
                                             help="Import under this course key (an export imported into another run)."),
    watch: Optional[Path] = typer.Option(None, "--watch", metavar="DIR",
                                         help="Import every export in DIR, then re-import those that change "
                                              "(default DIR: courses.exports_dir). Runs until interrupted."),
    interval: Optional[float] = typer.Option(None, "--interval", help="Seconds between looks at --watch DIR "
                                                                      "(default courses.poll_interval)."),
) -> None:
    """Import course structures into openedx.course_blocks (atomic replacement per course)."""
    from cairn.sources.course_structure import import_course, watch_exports

    st = state(ctx)
    engine = require_schema(st)
    if course_key and len(paths or []) > 1:
        raise CairnError("--course-key applies to one export; give a single PATH")
    for path in paths or []:
        _print_results(import_course(engine, path, course_key))
    if watch is not None:
        every = interval or st.config["courses.poll_interval"]

        def echo(kind, path, detail) -> None:
            if kind == "imported":
                _print_results(detail)
            else:
                err_console.print(f"[red]failed[/] {escape(str(path))}: {escape(str(detail))}", highlight=False)

        console.print(f"watching {escape(str(watch))} every {every:g}s (Ctrl-C to stop)", highlight=False)
        watch_exports(engine, watch, interval=every, on_event=echo)
    elif not paths:
        raise CairnError("give an export to import, or --watch DIR")


def refresh_courses_command(
    ctx: typer.Context,
    once: bool = typer.Option(False, "--once", help="Check once and exit (default: keep polling)."),
    interval: Optional[float] = typer.Option(None, "--interval", help="Seconds between checks "
                                                                      "(default courses.poll_interval)."),
    list_only: bool = typer.Option(False, "--list", help="Only list courses published since their last import."),
) -> None:
    """Re-import courses published since their last import (course_overviews.modified is newer).

    The structure comes from courses.dump_command (e.g. the LMS dump script through tutor)
    or from the export for that course in courses.exports_dir.
    """
    from cairn.sources.course_structure import refresh_courses, stale_courses

    st = state(ctx)
    engine = require_schema(st)
    if list_only:
        rows = stale_courses(engine)
        for course, modified, last in rows:
            console.print(f"{escape(course)}  published {modified}  last import {last or 'never'}", highlight=False)
        if not rows:
            console.print("every course is up to date")
        return

    def echo(kind, course, detail) -> None:
        if kind == "imported":
            _print_results(detail)
        elif kind == "missing":
            err_console.print(f"[yellow]no export found[/] for {escape(course)}", highlight=False)
        else:
            err_console.print(f"[red]failed[/] {escape(course)}: {escape(str(detail))}", highlight=False)

    refresh_courses(engine, st.config, on_event=echo, once=once, interval=interval)


def register(app: typer.Typer) -> None:
    """Add `cairn import-course` and `cairn refresh-courses`."""
    app.command("import-course")(import_course_command)
    app.command("refresh-courses")(refresh_courses_command)
