"""`cairn collect`: following files and stdin, log rotation, partial lines, SIGKILL, engine outages.

The collector runs as a real subprocess (`cairn collect`) on its own data directory;
the test reads the datalake after the subprocess has exited (one process per data
directory), or through `cairn client` subprocesses between runs.
"""

from __future__ import annotations

import gzip
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from cairn.config import load_config
from cairn.engine import open_engine
from cairn.errors import EngineUnavailable
from cairn.ingest.collector import Collector
from cairn.ingest.status import collector_status
from cairn.schema.migrator import Migrator

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from generate import EventGenerator  # noqa: E402

CAIRN = str(Path(sys.executable).parent / "cairn")


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------

class Lines:
    """Distinct, valid tracking-log lines (each event has its own time)."""

    def __init__(self, seed: int = 1, prefixed: bool = True):
        self.generator = EventGenerator(seed, prefixed)
        self.when = datetime(2026, 3, 1, tzinfo=timezone.utc) + timedelta(days=seed)
        self.made: list[bytes] = []

    def take(self, n: int) -> bytes:
        out = []
        for _ in range(n):
            self.when += timedelta(milliseconds=7)
            out.append(self.generator.line(self.when).encode())
        self.made.extend(out)
        return b"".join(out)

    def times(self) -> list[str]:
        return sorted(_event_time(line) for line in self.made)


def _event_time(line: bytes) -> str:
    event = json.loads(line[line.index(b"{"):])
    return event["time"]


def cairn(data_dir: Path, *args: str, env: dict | None = None, check: bool = True,
          timeout: float = 120) -> subprocess.CompletedProcess:
    result = subprocess.run([CAIRN, "--data-dir", str(data_dir), *args], capture_output=True,
                            env={**os.environ, **(env or {})}, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"cairn {' '.join(args)} failed: {result.stderr.decode()[-2000:]}")
    return result


def sql(data_dir: Path, query: str) -> list[list[str]]:
    out = cairn(data_dir, "client", "-q", query).stdout.decode()
    return [line.split("\t") for line in out.splitlines()]


def start_collector(data_dir: Path, *sources: str, env: dict | None = None, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([CAIRN, "--data-dir", str(data_dir), "collect", *sources],
                            env={**os.environ, "CAIRN_COLLECTOR_FLUSH_INTERVAL": "0.1", **(env or {})},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs)


def collector_state(data_dir: Path) -> dict:
    try:
        return json.loads((data_dir / "collector.json").read_text())
    except (OSError, ValueError):
        return {}


def wait_for(predicate, timeout: float = 60, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def caught_up(data_dir: Path, path: Path) -> bool:
    """The collector has delivered every complete line of the file now at ``path``."""
    state = collector_state(data_dir)
    size = path.stat().st_size
    content = path.read_bytes()
    complete = content.rfind(b"\n") + 1
    for src in state.get("sources", []):
        if src["source"] == str(path) and src["position"] == complete and src["size"] == size:
            return not state["sources"] or all(s["state"] == "following" for s in state["sources"])
    return False


def stop(process: subprocess.Popen) -> str:
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 0, err.decode()[-2000:]
    return err.decode()


def stored_times(data_dir: Path) -> list[str]:
    rows = sql(data_dir, "SELECT JSONExtractString(raw, 'time') FROM openedx.events ORDER BY 1")
    return [row[0] for row in rows]


@pytest.fixture(scope="session")
def _migrated_template(tmp_path_factory) -> Path:
    data_dir = tmp_path_factory.mktemp("template") / "data"
    cairn(data_dir, "migrate")
    return data_dir


@pytest.fixture
def lake(tmp_path, _migrated_template) -> Path:
    """A migrated data directory that no test process holds (for subprocesses).

    Copied from one migrated template: migrating takes seconds, copying does not.
    """
    data_dir = tmp_path / "data"
    shutil.copytree(_migrated_template, data_dir, symlinks=True)
    return data_dir


# ---------------------------------------------------------------------------
# following, partial lines
# ---------------------------------------------------------------------------

def test_follow_holds_partial_line_until_newline(lake, tmp_path):
    log = tmp_path / "logs" / "tracking.log"
    log.parent.mkdir()
    lines = Lines(1)
    log.write_bytes(lines.take(50))
    collector = start_collector(lake, str(log))
    try:
        wait_for(lambda: caught_up(lake, log), what="first lines")
        last = lines.take(1)
        with open(log, "ab") as out:
            out.write(last[:100])  # half a line
            out.flush()
            time.sleep(1.0)
            state = collector_state(lake)["sources"][0]
            assert state["position"] == log.stat().st_size - 100  # the partial line is not sent
            assert state["lag_bytes"] == 100
            out.write(last[100:])
            out.flush()
            wait_for(lambda: caught_up(lake, log), what="the completed line")
            time.sleep(0.6)  # the state file is rewritten twice a second
            assert collector_state(lake)["sources"][0]["lag_bytes"] == 0
    finally:
        stop(collector)
    assert stored_times(lake) == lines.times()
    assert sql(lake, "SELECT count() FROM openedx._quarantine") == [["0"]]
    status = json.loads(cairn(lake, "status", "--json", env={"COLUMNS": "300"}).stdout)
    section = next(s for s in status["sections"] if s["title"].startswith("collector sources"))
    assert section["rows"] == [{"source": str(log), "state": "not followed", "read": f"{log.stat().st_size:,}",
                                "lag bytes": "0", "lag s": 0, "events": "51", "quarantined": "0",
                                "skipped": "0"}]


def _rotate(style: str, log: Path) -> None:
    """Rotate ``log`` the way logrotate does with each option."""
    rotated = log.with_name(log.name + ".1")
    if style == "rename-create":
        log.rename(rotated)
        log.touch()
    elif style == "rename-compress":  # compress without delaycompress: the plain file goes away
        log.rename(rotated)
        log.touch()
        with open(rotated, "rb") as src, gzip.open(str(rotated) + ".gz", "wb") as dst:
            shutil.copyfileobj(src, dst)
        rotated.unlink()
    elif style == "copytruncate":
        shutil.copyfile(log, rotated)
        os.truncate(log, 0)
    elif style == "copytruncate-compress":
        shutil.copyfile(log, rotated)
        os.truncate(log, 0)
        with open(rotated, "rb") as src, gzip.open(str(rotated) + ".gz", "wb") as dst:
            shutil.copyfileobj(src, dst)
        rotated.unlink()
    elif style == "delete":
        log.unlink()
    else:  # pragma: no cover
        raise ValueError(style)


@pytest.mark.parametrize("style", ["rename-create", "rename-compress", "copytruncate", "copytruncate-compress",
                                   "delete"])
def test_rotation_loses_nothing_and_reads_nothing_twice(lake, tmp_path, style):
    log = tmp_path / "logs" / "tracking.log"
    log.parent.mkdir()
    lines = Lines(2)
    log.write_bytes(lines.take(200))
    collector = start_collector(lake, str(log))
    try:
        wait_for(lambda: caught_up(lake, log), what="initial lines")
        # Lines written right before the rotation: the collector has not seen them yet
        # when the file is rotated (they must be read from the old file or its copy).
        with open(log, "ab") as out:
            out.write(lines.take(30))
        _rotate(style, log)
        with open(log, "ab") as out:  # the application writes on (re-creating the file)
            out.write(lines.take(40))
        time.sleep(0.5)
        with open(log, "ab") as out:
            out.write(lines.take(10))
        wait_for(lambda: caught_up(lake, log), what="lines after rotation")
        time.sleep(1.5)  # rotated file drained and closed
    finally:
        messages = stop(collector)
    if style.startswith("copytruncate"):
        assert "was truncated; reading its end from" in messages
    elif style == "rename-create":
        assert messages.count("finished") == 1  # the old file, drained and closed
    assert stored_times(lake) == lines.times()


# ---------------------------------------------------------------------------
# SIGKILL at random moments
# ---------------------------------------------------------------------------

def _assert_no_duplicates_and_prefix(lake: Path, all_times: list[str]) -> int:
    count, distinct = (int(v) for v in sql(lake, "SELECT count(), uniqExact(raw) FROM openedx.events")[0])
    assert count == distinct, f"{count - distinct} duplicated events"
    stored = stored_times(lake)
    assert set(stored) <= set(all_times)
    return count


def test_backfill_killed_at_random_moments_resumes_exactly(lake, tmp_path):
    rng = random.Random(3)
    lines = Lines(3)
    plain = tmp_path / "tracking.log.1"
    plain.write_bytes(lines.take(6000))
    compressed = tmp_path / "tracking.log.2.gz"
    with gzip.open(compressed, "wb") as out:
        out.write(lines.take(2000))
    env = {"CAIRN_COLLECTOR_BATCH_BYTES": str(128 * 1024)}  # many chunks: many moments to die in
    everything = lines.times()
    kills = 0
    latest = 4.0  # the latest moment to die at; halved each time a load finished first (speed varies)
    for attempt in range(8):  # until the load was really interrupted three times
        if kills >= 3:
            break
        process = subprocess.Popen([CAIRN, "--data-dir", str(lake), "backfill", "-q", "--parallel", "2",
                                    str(plain), str(compressed)],
                                   env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(rng.uniform(latest / 2, latest))
        if process.poll() is None:
            process.kill()
            kills += 1
        else:
            latest /= 2
        process.communicate()
        _assert_no_duplicates_and_prefix(lake, everything)
    assert kills >= 2  # the test really interrupted loads
    cairn(lake, "backfill", "-q", str(plain), str(compressed), env=env)
    assert stored_times(lake) == everything
    # A re-run adds nothing.
    out = cairn(lake, "backfill", str(plain), str(compressed), env=env).stdout.decode()
    assert out.count("already loaded") == 2
    assert int(sql(lake, "SELECT count() FROM openedx.events")[0][0]) == len(everything)


def test_collector_killed_while_following_a_growing_file(lake, tmp_path):
    rng = random.Random(4)
    log = tmp_path / "logs" / "tracking.log"
    log.parent.mkdir()
    lines = Lines(4)
    log.write_bytes(lines.take(500))
    writing = threading.Event()
    writing.set()

    def writer() -> None:
        while writing.is_set():
            with open(log, "ab") as out:
                out.write(lines.take(rng.randrange(1, 40)))
            time.sleep(rng.uniform(0.005, 0.05))

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        for _ in range(3):
            process = start_collector(lake, str(log))
            time.sleep(rng.uniform(2.5, 4.5))
            process.kill()
            process.communicate()
            _assert_no_duplicates_and_prefix(lake, lines.times() + ["9999"])
    finally:
        writing.clear()
        thread.join()
    process = start_collector(lake, str(log))
    try:
        wait_for(lambda: caught_up(lake, log), timeout=120, what="catching up after the kills")
    finally:
        stop(process)
    assert stored_times(lake) == lines.times()


# ---------------------------------------------------------------------------
# stdin
# ---------------------------------------------------------------------------

def test_stdin_keeps_tracking_lines_and_skips_other_loggers(lake, shared):
    console = (shared / "events" / "erb-history" / "demo_problem_events_v1.log").read_bytes()
    lines = Lines(5)
    tracking = lines.take(300)
    noise = (b"2026-03-01 10:00:00,123 INFO 7 [django.server] [user None] [ip None] basehttp.py:212 - ok\n"
             b'[01/Mar/2026 10:00:01] "GET /heartbeat HTTP/1.1" 200 2\n')
    # Interleave, as `tutor local logs -f lms` prints, with the container prefix.
    mixed = b"".join(b"lms-1  | " + line + b"\n" for line in console.splitlines())
    pieces = tracking.splitlines(keepends=True)
    for i, piece in enumerate(pieces):
        mixed += piece + (noise if i % 10 == 0 else b"")
    process = start_collector(lake, "-", stdin=subprocess.PIPE)
    # Written in uneven pieces, lines split across writes.
    view, position = memoryview(mixed), 0
    rng = random.Random(5)
    while position < len(mixed):
        step = rng.randrange(1, 20000)
        process.stdin.write(view[position:position + step])
        process.stdin.flush()
        position += step
    process.stdin.close()
    process.wait(timeout=60)
    assert process.returncode == 0, process.stderr.read().decode()
    console_events = console.count(b"[tracking]")
    assert int(sql(lake, "SELECT count() FROM openedx.events")[0][0]) == 300 + console_events
    assert sql(lake, "SELECT count() FROM openedx._quarantine") == [["0"]]
    skipped = int(sql(lake, "SELECT sum(lines) FROM openedx._ingest_stats WHERE status = 'skipped' "
                            "AND source = '-'")[0][0])
    assert skipped == 2 * 30 + len(console.splitlines()) - console_events
    assert set(stored_times(lake)) >= set(lines.times())


# ---------------------------------------------------------------------------
# engine going away
# ---------------------------------------------------------------------------

class FlakyEngine:
    """The real embedded engine, cut off while ``down`` is set.

    Stands in for a ClickHouse server (or `cairn serve`) restarting, which cannot be
    run in this test environment: every call raises EngineUnavailable while down,
    exactly what RemoteEngine raises when the connection is refused.
    """

    def __init__(self, engine):
        self.engine = engine
        self.database = engine.database
        self.down = threading.Event()
        self.refused = 0

    def __getattr__(self, name):
        attribute = getattr(self.engine, name)
        if not callable(attribute):
            return attribute

        def call(*args, **kwargs):
            if self.down.is_set():
                self.refused += 1
                raise EngineUnavailable("cannot reach ClickHouse at 127.0.0.1:8123: connection refused")
            return attribute(*args, **kwargs)

        return call


def test_engine_outage_keeps_position_and_delivers_everything_once(tmp_path):
    config = load_config(overrides={"data_dir": str(tmp_path / "data")})
    real = open_engine(config)
    Migrator(real, config).run()
    engine = FlakyEngine(real)
    log = tmp_path / "tracking.log"
    lines = Lines(6)
    log.write_bytes(lines.take(100))
    collector = Collector(engine, [str(log)], flush_interval=0.1, batch_bytes=512 * 1024,
                          state_dir=config.data_dir)
    thread = threading.Thread(target=collector.run)
    thread.start()
    try:
        wait_for(lambda: collector.files and next(iter(collector.files.values())).stream.sent_end
                 == log.stat().st_size, what="first lines")
        engine.down.set()
        with open(log, "ab") as out:
            out.write(lines.take(1500))  # ~1.8 MB while the engine is away
        wait_for(lambda: engine.refused >= 3, what="retries")
        time.sleep(2.0)  # collector.json is rewritten every 0.5 s while waiting
        followed = next(iter(collector.files.values()))
        # Position kept; reading stopped at one chunk (memory bounded, the file is the buffer).
        assert followed.chunker.read_to - followed.stream.sent_end <= 2 * 512 * 1024
        assert not collector.engine_ok
        state = json.loads((config.data_dir / "collector.json").read_text())
        assert state["engine_ok"] is False
        source = state["sources"][0]
        assert source["lag_bytes"] > 1_500_000
        assert source["lag_seconds"] >= 1.0
        engine.down.clear()
        wait_for(lambda: followed.stream.sent_end == log.stat().st_size, timeout=60, what="delivery")
        assert collector.engine_ok
    finally:
        collector.stop.set()
        thread.join(timeout=30)
    times = [row[0] for row in real.query_rows(
        "SELECT JSONExtractString(raw, 'time') FROM openedx.events ORDER BY 1")]
    assert times == lines.times()
    # `cairn status` section: the source is listed with its counts and no lag left.
    section = collector_status(real, config)
    row = next(r for r in section["rows"] if r["source"] == str(log))
    assert row["events"] == "1,600" and row["lag bytes"] == "0"
    real.close()


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start_serve(lake: Path, port: int) -> subprocess.Popen:
    (lake / "serve.json").unlink(missing_ok=True)
    process = subprocess.Popen([CAIRN, "--data-dir", str(lake), "serve", "--port", str(port)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wait_for(lambda: (lake / "serve.json").exists() or process.poll() is not None, what="cairn serve")
    assert process.poll() is None, process.stderr.read().decode()[-2000:]
    return process


def test_collector_waits_for_a_restarting_server_and_delivers_everything(lake, tmp_path):
    """The real thing: `cairn serve` owns the data; it stops and comes back (new credential)."""
    port = _free_port()
    server = _start_serve(lake, port)
    log = tmp_path / "tracking.log"
    lines = Lines(7)
    log.write_bytes(lines.take(100))
    collector = start_collector(lake, str(log))
    try:
        wait_for(lambda: caught_up(lake, log), what="first lines through the server")
        server.send_signal(signal.SIGTERM)
        server.communicate(timeout=60)
        with open(log, "ab") as out:
            out.write(lines.take(300))
        wait_for(lambda: collector_state(lake).get("engine_ok") is False, what="the collector to notice")
        time.sleep(2.0)  # collector.json is rewritten every 0.5 s while waiting
        state = collector_state(lake)
        assert state["sources"][0]["lag_bytes"] > 300_000 and state["sources"][0]["lag_seconds"] >= 1.0
        assert collector.poll() is None  # still running, waiting
        server = _start_serve(lake, port)
        wait_for(lambda: caught_up(lake, log), timeout=90, what="delivery after the restart")
        assert collector_state(lake)["engine_ok"] is True
    finally:
        messages = stop(collector) if collector.poll() is None else collector.stderr.read().decode()
        try:
            assert stored_times(lake) == lines.times()  # queried through the server
        finally:
            server.send_signal(signal.SIGTERM)
            server.communicate(timeout=60)
    assert "engine unavailable, retrying" in messages and "engine back" in messages
