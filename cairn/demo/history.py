"""The demo's history: every enrollment's sessions rendered day by day into the tracking log.

Each day's lines are sorted by time and written in one chunk; ``ThreadedWriter`` lets
the disk writes overlap with the rendering.
"""

from __future__ import annotations

import queue
import threading
from bisect import bisect_left
from collections import Counter
from typing import IO, Callable

from cairn.demo.events import JourneyWriter, format_times
from cairn.demo.journeys import Enrollment

LAST_UNIT_MARGIN = 3600.0  # seconds before the end of the history after which no unit starts


def render_history(writer: JourneyWriter, enrollments: list[Enrollment], period_end: float,
                   out: IO[str], progress: Callable[[int], None] | None = None) -> int:
    """Render every enrollment's plan, day by day, into ``out``; returns the number of lines."""
    schedule: list[tuple[float, int, int, int]] = []  # (time, kind, enrollment index, units)
    for index, e in enumerate(enrollments):
        schedule.append((e.created, 0, index, 0))
        for start, units in e.sessions:
            schedule.append((start, 1, index, units))
        if e.target_units < len(e.course.units()) and e.sessions and e.rng.random() < 0.25:
            end_guess = e.sessions[-1][0] + 86400 * (3 + 17 * e.rng.random())
            if end_guess < period_end:
                schedule.append((end_guess, 2, index, 0))
    schedule.sort()
    written = 0
    pending: list[str] = []
    day_end = (int(schedule[0][0] // 86400) + 1) * 86400 if schedule else 0

    def flush(until: float) -> None:
        nonlocal written, pending
        pending.sort()
        cut = bisect_left(pending, format_times(until)[1]) if until != float("inf") else len(pending)
        lines = pending[:cut]
        pending = pending[cut:]
        out.write("".join(lines))
        written += len(lines)
        if progress:
            progress(len(lines))

    for when, kind, index, units in schedule:
        while when >= day_end:
            pending.extend(writer.out)
            writer.out = []
            flush(day_end)
            day_end += 86400
        e = enrollments[index]
        if kind == 0:
            writer.enroll(e)
        elif kind == 1:
            if e.deactivated_at is None:
                # The history ends at period_end: a session late on the last day stops
                # starting units early enough for none to run past it (a unit takes minutes).
                writer.session(e, when, units, stop_at=period_end - LAST_UNIT_MARGIN)
        else:
            writer.unenroll(e, when)
    pending.extend(writer.out)
    writer.out = []
    flush(float("inf"))
    writer.truth.events = written
    writer.truth.by_name = dict(Counter(writer.names))
    writer.names = []
    return written


class ThreadedWriter:
    """A text sink whose chunks are encoded here and written to ``path`` by a background
    thread, so that the disk writes overlap with rendering (file writes release the GIL)."""

    def __init__(self, path, mode: str = "wb"):
        self._file = open(path, mode)
        self._queue: queue.Queue = queue.Queue(maxsize=8)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="demo-log-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            chunk = self._queue.get()
            if chunk is None:
                return
            try:
                self._file.write(chunk)
            except BaseException as exc:  # reported by write()/close() in the caller's thread
                self._error = exc
                return

    def write(self, text: str) -> None:
        if self._error is not None:
            raise self._error
        if text:
            self._queue.put(text.encode("ascii"))

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()
        self._file.close()
        if self._error is not None:
            raise self._error

    def __enter__(self) -> "ThreadedWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
