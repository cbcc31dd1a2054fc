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
    import subprocess

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


# ---------------------------------------------------------------------------
# Running the stack: `cairn up` is a supervisor of child processes.
#
# chDB owns its data directory for the life of the process that opened it, and a
# failed engine can only be recovered by a new process (cairn serve exits with 70).
# So the preparation runs in a child process, `cairn serve` in another, Superset's web
# server in a third; this process appends the demo's live events, restarts a child
# that dies (with backoff), and stops them all on Ctrl-C or SIGTERM.
# ---------------------------------------------------------------------------

PREPARED_MARK = "CAIRN-PREPARED "
RESTART_BACKOFF = (1.0, 2.0, 5.0, 10.0, 30.0)
STABLE_AFTER = 60.0  # a child that ran this long starts again from the shortest backoff
STOP_TIMEOUT = 60.0  # how long a child may take to stop on SIGTERM before it is killed


def _config_payload(config: "Config") -> dict:
    return {"values": config.values, "origins": config.origins,
            "file": str(config.file) if config.file else None}


def _config_from_payload(payload: dict) -> "Config":
    import cairn.superset.settings  # noqa: F401 - the superset.* settings exist in the child too
    from cairn.config import Config

    return Config(payload["values"], payload["origins"], Path(payload["file"]) if payload["file"] else None)


def _die_with_parent() -> None:
    """In a child, before exec: get SIGTERM when the supervisor dies (Linux), so nothing is orphaned."""
    import ctypes
    import signal

    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the supervisor still stops its children itself
        pass


def _python_child(function: str, payload: dict, stdout=None) -> "subprocess.Popen":
    """Run ``cairn.stack.<function>()`` in a new Python process, ``payload`` as JSON on its stdin."""
    import subprocess
    import sys

    process = subprocess.Popen([sys.executable, "-c", f"from cairn.stack import {function}; {function}()"],
                               stdin=subprocess.PIPE, stdout=stdout, text=True, start_new_session=True,
                               preexec_fn=_die_with_parent)
    process.stdin.write(json.dumps(payload, default=str))
    process.stdin.close()
    return process


def prepare_child() -> None:
    """Child process: ``prepare`` (migrations, demo, MySQL tables), then what to serve as one JSON line."""
    import sys

    from cairn.errors import CairnError as _Error

    payload = json.loads(sys.stdin.read())
    config = _config_from_payload(payload["config"])
    demo = demo_options(payload["learners"]) if payload["demo"] else None
    try:
        prepared = prepare(config, demo, 0, say=lambda text: print(text, flush=True))
    except _Error as exc:
        print(PREPARED_MARK + json.dumps({"error": str(exc)}), flush=True)
        sys.exit(1)
    print(PREPARED_MARK + json.dumps({"config": _config_payload(prepared.config), "notes": prepared.notes or []},
                                     default=str), flush=True)


def serve_child() -> None:
    """Child process: `cairn serve` on the prepared configuration, until SIGTERM."""
    import sys

    from cairn.errors import CairnError as _Error
    from cairn.serve.service import serve_until_stopped

    config = _config_from_payload(json.loads(sys.stdin.read()))
    try:
        serve_until_stopped(config, say=lambda text: print(text, flush=True))
    except _Error as exc:
        print(f"Error: {exc}", file=sys.stderr, flush=True)
        sys.exit(1)


class Supervised:
    """A child process that is started, watched, restarted with backoff when it dies, and stopped."""

    def __init__(self, name: str, start: Callable[[], "subprocess.Popen"], say: Callable[[str], None],
                 describe_exit: Callable[[int], str] = lambda code: f"status {code}"):
        self.name = name
        self._start = start
        self._say = say
        self._describe_exit = describe_exit
        self.process: "subprocess.Popen | None" = None
        self.started_at = 0.0
        self.restarts = 0
        self._failures = 0
        self._restart_at: float | None = None

    def start(self) -> None:
        import time

        self.process = self._start()
        self.started_at = time.monotonic()
        self._restart_at = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def check(self) -> bool:
        """Notice a death (report it, plan a restart) and restart when due; True when it was (re)started now."""
        import time

        now = time.monotonic()
        if self.process is not None and self._restart_at is None:
            code = self.process.poll()
            if code is None:
                return False
            if now - self.started_at > STABLE_AFTER:
                self._failures = 0
            delay = RESTART_BACKOFF[min(self._failures, len(RESTART_BACKOFF) - 1)]
            self._failures += 1
            self._say(f"{self.name} exited ({self._describe_exit(code)}); restarting in {delay:g} s")
            self._restart_at = now + delay
            return False
        if self._restart_at is not None and now >= self._restart_at:
            self.restarts += 1
            self.start()
            self._say(f"{self.name} restarted (pid {self.pid})")
            return True
        return False

    def terminate(self) -> None:
        """Ask the process to stop (SIGTERM); ``wait`` collects it."""
        self._restart_at = None
        if self.alive():
            self.process.terminate()

    def wait(self, seconds: float) -> None:
        """Wait for the process to end; kill it when it takes longer than ``seconds``."""
        import subprocess

        if self.process is None:
            return
        try:
            self.process.wait(seconds)
        except subprocess.TimeoutExpired:
            self._say(f"{self.name} did not stop within {seconds:g} s: killing it")
            self.process.kill()
            self.process.wait()


def describe_serve_exit(code: int) -> str:
    """Why `cairn serve` ended, in words."""
    from cairn.serve.service import ENGINE_FAILED_EXIT

    if code == ENGINE_FAILED_EXIT:
        return f"status {code}: the embedded engine failed"
    return f"killed by signal {-code}" if code < 0 else f"status {code}"


@dataclass
class StackOptions:
    """What `cairn up` runs: the demo, its live rate, and whether Superset runs beside the datalake."""

    demo: "DemoOptions | None" = None
    live_rate: float = 5.0
    superset: bool = True


def run_stack(config: "Config", options: StackOptions, say: Callable[[str], None] = print) -> None:
    """`cairn up`: prepare, then run and supervise `cairn serve` (and Superset) until Ctrl-C or SIGTERM."""
    from cairn.superset.runner import SupersetPart
    from cairn.superset.server import free_port

    stop = threading.Event()
    _on_stop_signals(stop, say)
    if config["serve.port"] == 0:  # one port for the whole run: restarts and Superset's Database keep it
        config = config.with_overrides({"serve.port": free_port(config["serve.host"])}, origin="cairn up")
    superset = SupersetPart.for_config(config, say) if options.superset else None
    if superset is not None:
        superset.initialise_in_background()
    prepared = _run_prepare(config, options, stop, say)
    if prepared is None:
        return
    live = _resume_live(prepared, options)
    if live is not None:
        live()
        say(f"appending about {options.live_rate:g} live events/s to the demo tracking log")
    serve = Supervised("cairn serve", lambda: _python_child("serve_child", _config_payload(prepared)), say,
                       describe_serve_exit)
    children = [serve]
    try:
        serve.start()
        _wait_for_serve(prepared, serve, stop, say)
        if superset is not None and not stop.is_set():
            superset.start(stop)
            if superset.child is not None:
                children.append(superset.child)
        while not stop.wait(0.5):
            for child in children:
                child.check()
    finally:
        for child in children:
            child.terminate()
        for child in children:
            child.wait(STOP_TIMEOUT)
    say("cairn up stopped.")


def _on_stop_signals(stop: threading.Event, say: Callable[[str], None]) -> None:
    import signal

    def on_signal(signum, frame):  # noqa: ARG001 - signal handler signature
        if not stop.is_set():
            say("stopping everything...")
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)


def _run_prepare(config: "Config", options: StackOptions, stop: threading.Event,
                 say: Callable[[str], None]) -> "Config | None":
    """Run ``prepare`` in a child process, relaying its progress; the configuration to serve, None if stopped."""
    import subprocess

    from cairn.errors import CairnError as _Error

    payload = {"config": _config_payload(config), "demo": options.demo is not None,
               "learners": options.demo.learners if options.demo is not None else 0}
    process = _python_child("prepare_child", payload, stdout=subprocess.PIPE)
    result: dict = {}

    def relay() -> None:
        for line in process.stdout:
            if line.startswith(PREPARED_MARK):
                result.update(json.loads(line[len(PREPARED_MARK):]))
            else:
                say(line.rstrip("\n"))

    reader = threading.Thread(target=relay, daemon=True)
    reader.start()
    while process.poll() is None:
        if stop.wait(0.2):
            process.terminate()
            process.wait()
            return None
    reader.join(10)
    if "error" in result:
        raise _Error(result["error"])
    if "config" not in result:
        raise _Error(f"preparing the datalake failed (exit status {process.returncode}); see the lines above")
    for note in result["notes"]:
        say(f"note: {note}")
    return _config_from_payload(result["config"])


def _resume_live(config: "Config", options: StackOptions):
    """The live feed of the demo (rebuilt in memory from its marker), or None."""
    if options.demo is None:
        return None
    demo_dir = config.data_dir / "demo"
    try:
        marker = json.loads((demo_dir / "cairn-up.json").read_text())
    except (OSError, ValueError):
        return None
    return _resume_demo(marker, options.live_rate, demo_dir)


def _wait_for_serve(config: "Config", serve: Supervised, stop: threading.Event, say: Callable[[str], None]) -> None:
    """Wait until `cairn serve` answers its /ping (restarting it meanwhile if it dies)."""
    import time

    import httpx

    from cairn.engine.served import connect_host
    from cairn.errors import CairnError as _Error

    url = f"http://{connect_host(config['serve.host'])}:{config['serve.port']}/ping"
    deadline = time.monotonic() + 600
    while not stop.is_set() and time.monotonic() < deadline:
        serve.check()
        if serve.alive():
            try:
                if httpx.get(url, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
        elif serve.restarts >= 3:
            raise _Error("cairn serve keeps failing to start; see the lines above")
        stop.wait(0.3)
    if not stop.is_set():
        raise _Error(f"cairn serve did not answer at {url} within 10 minutes")
