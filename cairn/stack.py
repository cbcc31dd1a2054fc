"""`cairn up`: the whole stack on one machine, ready to explore.

Prepares the embedded datalake (migrations, Open edX MySQL tables, course structures),
optionally a demo platform to look at, then runs `cairn serve` with the collectors
following the tracking logs. The serving itself is `cairn.serve.service`; this module only
decides what to prepare.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from cairn.errors import CairnError

if TYPE_CHECKING:  # pragma: no cover
    from cairn.config import Config
    from cairn.demo import DemoOptions

DEMO_MYSQL_DATABASE = "cairn_demo"


def demo_options(learners: int = 500, seed: int = 42) -> "DemoOptions":
    """The demo platform `cairn up --demo` creates on its first run: small enough to start in
    a minute (where to write it and its first day are decided by `prepare`)."""
    from cairn.demo import DemoOptions

    return DemoOptions(learners=learners, courses=4, days=30, seed=seed)


@dataclass
class Prepared:
    """What `prepare` did: the configuration to serve with, and a live feed to start."""

    config: "Config"
    start_live: Callable[[], threading.Thread] | None = None
    notes: list[str] | None = None


def _mysql_reachable(config: "Config") -> str | None:
    """None when MySQL answers, else the one-line reason."""
    from cairn.sources.openedx_mysql import connect_mysql

    try:
        connect_mysql(config, database=False).close()
        return None
    except CairnError as exc:
        return str(exc)


def prepare(config: "Config", demo: "DemoOptions | None", live_rate: float = 5.0,
            say: Callable[[str], None] = print) -> Prepared:
    """Migrate, create the demo platform on first use, import its courses, apply MySQL tables.

    The demo goes in ``<data_dir>/demo`` and, in MySQL, in the database ``cairn_demo``
    unless ``mysql.database`` is configured: the demo never writes into a database
    Cairn was not told to use.
    """
    from cairn.engine import open_engine
    from cairn.schema.migrator import Migrator

    notes: list[str] = []
    demo_dir = config.data_dir / "demo"
    if demo is not None and config.origins.get("mysql.database") == "default":
        config = config.with_overrides({"mysql.database": DEMO_MYSQL_DATABASE}, origin="cairn up --demo")
    start_live = None
    with open_engine(config) as engine:
        report = Migrator(engine, config).run()
        applied = sum(1 for status, _ in report.steps if status == "APPLY")
        if applied:
            say(f"applied {applied} migration(s)")
        if demo is not None:
            start_live = _prepare_demo(engine, config, demo, live_rate, demo_dir, say, notes)
        if config["mysql.enabled"]:
            from cairn.sources import openedx_mysql

            problem = _mysql_reachable(config)
            openedx_mysql.apply(engine, config)  # works without MySQL; copies refresh when it is back
            if problem:
                notes.append(f"Open edX MySQL tables are set up but MySQL is not reachable now: {problem}")
    if demo is not None:
        sources = list(config["collector.sources"])
        log = str(demo_dir / "tracking.log")
        if log not in sources:
            config = config.with_overrides({"collector.sources": [*sources, log]}, origin="cairn up --demo")
    return Prepared(config, start_live, notes)


def _prepare_demo(engine, config: "Config", demo: "DemoOptions", live_rate: float, demo_dir: Path,
                  say: Callable[[str], None], notes: list[str]):
    from dataclasses import replace

    from cairn.demo import generate_demo
    from cairn.sources.course_structure import import_course

    marker = demo_dir / "cairn-up.json"
    if marker.exists():
        say(f"demo platform already in {demo_dir} (delete the folder to make a new one)")
        return _resume_demo(json.loads(marker.read_text()), live_rate, demo_dir)
    mysql_problem = _mysql_reachable(config) if config["mysql.enabled"] else "mysql.enabled is false"
    if mysql_problem:
        notes.append(f"demo without MySQL data: {mysql_problem}")
    # A fixed first day makes the demo reproducible: same seed, same files.
    start = (datetime.now(timezone.utc) - timedelta(days=demo.days)).replace(hour=0, minute=0, second=0,
                                                                             microsecond=0)
    options = replace(demo, output=demo_dir, start=start, mysql=mysql_problem is None)
    say(f"generating a demo platform in {demo_dir}: {demo.learners} learners, {demo.courses} courses, "
        f"{demo.days} days")
    result = generate_demo(options, config if mysql_problem is None else None)
    say(f"  {result.events:,} events in {result.tracking_log}")
    for folder in result.course_folders:
        for imported in import_course(engine, folder):
            say(f"  course {imported.course_id}: {imported.blocks} blocks")
    marker.write_text(json.dumps({"created": datetime.now(timezone.utc).isoformat(), "seed": demo.seed,
                                  "start": start.isoformat(), "learners": demo.learners,
                                  "courses": demo.courses, "days": demo.days,
                                  "mysql_database": config["mysql.database"]}))
    return _live_feed(result, live_rate)


def _live_feed(result, rate: float):
    """A function starting the thread that appends live events to the demo's tracking log."""
    from cairn.demo import live

    if rate <= 0:
        return None

    def start_live() -> threading.Thread:
        """Start appending live events in a daemon thread."""
        thread = threading.Thread(target=live, args=(result, rate, None), name="cairn-demo-live", daemon=True)
        thread.start()
        return thread

    return start_live


def _resume_demo(marker: dict, live_rate: float, demo_dir: Path):
    """Live events for a demo made by an earlier run: rebuild its learners and courses
    (same seed, same first day: same platform) in memory, and append to its log."""
    import tempfile

    from cairn.demo import DemoOptions, generate_demo

    if live_rate <= 0 or "learners" not in marker:
        return None
    with tempfile.TemporaryDirectory() as scratch:
        options = DemoOptions(learners=marker["learners"], courses=marker["courses"], days=marker["days"],
                              seed=marker["seed"], output=Path(scratch),
                              start=datetime.fromisoformat(marker["start"]), mysql=False, write_courses=False)
        result = generate_demo(options)
    result.tracking_log = demo_dir / "tracking.log"
    return _live_feed(result, live_rate)
