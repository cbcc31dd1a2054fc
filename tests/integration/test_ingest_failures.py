"""No write counted unless stored; a full disk announced before it happens; `cairn load` edge cases.

A failed insert is forced two ways on a real chDB datalake:

* ``FailingEngine``: the real engine, whose ``insert_raw`` raises the EngineError a
  full disk gives (code 243) for rows holding ``BOOM``; that is what the engine
  raises once it detects failed writes, so the loader and collector side is tested
  whatever chDB reports;
* a materialized view ``_fail_mv`` with ``throwIf`` on ``BOOM``: the real failure,
  end to end (library and `cairn` subprocesses). chDB's streaming insert reports
  success when a view throws, so these wait for the engine's failed-insert detection.

Free space is faked by replacing ``cairn.ingest.reserve.free_bytes``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from cairn.errors import CairnError, EngineError
from cairn.ingest import reserve as reserve_module
from cairn.ingest.checkpoints import InsertFailed
from cairn.ingest.collector import Collector
from cairn.ingest.files import fingerprint
from cairn.ingest.loader import Loader, backfill_loader
from cairn.ingest.reserve import DiskReserve, DiskReserveLow
from cairn.ingest.status import collector_status

CAIRN = str(Path(sys.executable).parent / "cairn")
MIB = 1024 * 1024
FAIL_VIEW = ("CREATE MATERIALIZED VIEW openedx._fail_mv TO openedx._fail_sink AS "
             "SELECT throwIf(position(line, 'BOOM') > 0) AS x FROM openedx._ingest")
FAIL_SINK = "CREATE TABLE openedx._fail_sink (x UInt8) ENGINE = Null"


def event_lines(n: int, boom_at: int | None = None) -> bytes:
    """``n`` distinct valid events; the one at ``boom_at`` carries BOOM (still a valid event)."""
    out = []
    for i in range(n):
        event = {"name": "problem_check", "event_type": "problem_check", "username": f"u{i}",
                 "time": f"2024-03-01T10:{i // 60 % 60:02d}:{i % 60:02d}.{i:06d}+00:00",
                 "context": {"course_id": "course-v1:A+B+C"}, "event": {"pad": "x" * 60,
                                                                         "mark": "BOOM" if i == boom_at else ""}}
        out.append(json.dumps(event) + "\n")
    return "".join(out).encode()


class FailingEngine:
    """The real embedded engine; while ``fail`` is set, inserts of rows holding BOOM raise."""

    def __init__(self, engine, fail: bool = True):
        self.engine = engine
        self.database = engine.database
        self.fail = threading.Event()
        if fail:
            self.fail.set()
        self.failures = 0

    def __getattr__(self, name):
        return getattr(self.engine, name)

    def insert_raw(self, table, data, fmt, column_names=None, settings=None):
        chunks = [data] if isinstance(data, bytes) else list(data)
        if self.fail.is_set() and any(b"BOOM" in chunk for chunk in chunks):
            self.failures += 1
            raise EngineError("Code: 243. DB::Exception: Cannot reserve 1.00 MiB, not enough space:\n"
                              "While executing SinkToStorage. (NOT_ENOUGH_SPACE)", 243)
        return self.engine.insert_raw(table, chunks, fmt, column_names, settings)

    def parallel_writer(self):
        # Each parallel connection fails the same way.
        writer = FailingEngine(self.engine.parallel_writer(), fail=False)
        writer.fail = self.fail
        return writer


def stored(engine) -> tuple[int, int]:
    """(events, distinct event ids) in the datalake."""
    count, unique = engine.query_rows("SELECT count(), uniqExact(event_id) FROM openedx.events")[0]
    return int(count), int(unique)


def lines_before(content: bytes, offset: int) -> int:
    return content[:offset].count(b"\n")


# ---------------------------------------------------------------------------
# load and backfill: a failed insert stops them, the checkpoint stays before it
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("parallel", [1, 2])
def test_failed_insert_stops_the_load_before_the_range_and_a_rerun_is_exact(datalake, config, tmp_path, parallel):
    content = event_lines(400, boom_at=250)
    log = tmp_path / "tracking.log"
    log.write_bytes(content)
    engine = FailingEngine(datalake)
    loader = backfill_loader(engine, config, parallel=parallel)
    loader.batch_bytes = 8 * 1024  # many chunks: the failure is in the middle
    progressed, sent = [], []
    with pytest.raises(InsertFailed) as caught:
        loader.load_file(log, progress=progressed.append, lines=sent.append)
    message = str(caught.value)
    assert isinstance(caught.value, CairnError) and "\n" not in message
    assert "NOT_ENOUGH_SPACE" in message and "run the same command again" in message
    cp = loader.checkpoints.read(fingerprint(log))
    boom = content.index(b"BOOM")
    # The checkpoint stays before the failed range; its intent remains for the replay.
    assert cp.offset <= boom < cp.pending_end and cp.offset == caught.value.start
    assert f"bytes {cp.offset:,}-" in message
    # Nothing reported beyond what was stored.
    assert sum(progressed) == cp.offset and sum(sent) == lines_before(content, cp.offset)
    assert stored(datalake)[0] <= lines_before(content, cp.pending_end)
    engine.fail.clear()  # the cause is gone: the same load completes, exactly
    result = loader.load_file(log)
    loader.close()
    assert stored(datalake) == (400, 400)
    assert result.counts == {"event": 400}
    assert loader.checkpoints.read(fingerprint(log)).offset == len(content)


def test_failed_insert_of_a_json_document_is_retried_whole(datalake, tmp_path):
    document = tmp_path / "events.json"
    events = [json.loads(line) for line in event_lines(5, boom_at=3).splitlines()]
    document.write_text(json.dumps(events, indent=2))
    engine = FailingEngine(datalake)
    with pytest.raises(InsertFailed, match="events 0-5"):
        Loader(engine).load_file(document)
    engine.fail.clear()
    assert Loader(engine).load_file(document).lines_sent == 5
    assert stored(datalake) == (5, 5)


def test_backfill_refuses_to_start_a_batch_below_the_reserve(datalake, config, tmp_path, monkeypatch):
    content = event_lines(300)
    log = tmp_path / "tracking.log"
    log.write_bytes(content)
    free = {"bytes": 100 * MIB, "calls": 0}

    def fake_free(path):
        free["calls"] += 1
        # Room at the start and for two batches, then below the reserve.
        return 10_000 * MIB if free["calls"] <= 3 else free["bytes"]

    monkeypatch.setattr(reserve_module, "free_bytes", fake_free)
    loader = backfill_loader(datalake, config)
    assert loader.reserve == DiskReserve(config.data_dir, 256 * MIB)
    assert loader.reserve.engine_reserved() >= 0  # the real engine answers what its merges hold
    loader.batch_bytes = 8 * 1024
    with pytest.raises(DiskReserveLow) as caught:
        loader.load_file(log)
    message = str(caught.value)
    assert message.startswith(f"only 100 MB free on the file system of {config.data_dir}")
    assert "collector.min_free_mb = 256" in message and "run the same command again" in message
    cp = loader.checkpoints.read(fingerprint(log))
    assert 0 < cp.offset < len(content) and not cp.has_intent  # refused before its intent
    free["bytes"] = 10_000 * MIB
    loader.load_file(log)
    assert stored(datalake) == (300, 300)


# ---------------------------------------------------------------------------
# the real failure: a view that throws (needs the engine's detection)
# ---------------------------------------------------------------------------

def test_a_throwing_view_fails_the_load_and_a_rerun_after_dropping_it_is_exact(datalake, tmp_path):
    datalake.command(FAIL_SINK)
    datalake.command(FAIL_VIEW)
    content = event_lines(300, boom_at=200)
    log = tmp_path / "tracking.log"
    log.write_bytes(content)
    loader = Loader(datalake, batch_bytes=8 * 1024)
    with pytest.raises(InsertFailed, match="throwIf|THROW_IF"):
        loader.load_file(log)
    cp = loader.checkpoints.read(fingerprint(log))
    assert cp.offset <= content.index(b"BOOM") < cp.pending_end
    datalake.command("DROP VIEW openedx._fail_mv")
    loader.load_file(log)
    assert stored(datalake) == (300, 300)


def cairn(data: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAIRN_")}
    env["COLUMNS"] = "200"
    return subprocess.run([CAIRN, "--data-dir", str(data), *args], capture_output=True, text=True,
                          env=env, timeout=timeout)


def error_line(result: subprocess.CompletedProcess) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    return lines[0]


@pytest.mark.parametrize("command", ["load", "backfill"])
def test_cli_exits_1_on_a_throwing_view_and_the_same_command_completes_later(tmp_path, command):
    data = tmp_path / "data"
    assert cairn(data, "migrate").returncode == 0
    assert cairn(data, "client", "-q", f"{FAIL_SINK}; {FAIL_VIEW}").returncode == 0
    log = tmp_path / "tracking.log"
    log.write_bytes(event_lines(300, boom_at=200))
    first = cairn(data, command, "--quiet", str(log))
    assert "throwIf" in error_line(first) or "THROW_IF" in error_line(first)
    assert "300" not in first.stdout  # no summary claims the events
    assert cairn(data, "client", "-q", "DROP VIEW openedx._fail_mv").returncode == 0
    again = cairn(data, command, str(log))
    assert again.returncode == 0, again.stderr
    counted = cairn(data, "client", "-q", "SELECT count(), uniqExact(event_id) FROM openedx.events")
    assert counted.stdout.split() == ["300", "300"]


# ---------------------------------------------------------------------------
# `cairn load` of what is not a regular file
# ---------------------------------------------------------------------------

def test_cli_load_refuses_a_fifo_and_a_device_with_one_line(tmp_path):
    data = tmp_path / "data"
    assert cairn(data, "migrate").returncode == 0
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    # A FIFO used to hang (opening it waits for a writer): the timeout would fire.
    assert "is a named pipe (FIFO)" in error_line(cairn(data, "load", str(fifo), timeout=60))
    assert "/dev/zero is a character device" in error_line(cairn(data, "load", "/dev/zero", timeout=60))


def test_load_warns_when_the_file_shrinks_while_it_is_read(datalake, tmp_path):
    content = event_lines(400)
    log = tmp_path / "tracking.log"
    log.write_bytes(content)
    warned: list[str] = []
    loader = Loader(datalake, batch_bytes=4 * 1024, warn=warned.append)

    def truncate_once(n: int) -> None:
        if log.stat().st_size == len(content):
            os.truncate(log, len(content) // 2)

    result = loader.load_file(log, progress=truncate_once)
    assert len(result.warnings) == 1 and warned == result.warnings
    assert f"shrank from {len(content):,} to {len(content) // 2:,} bytes" in warned[0]
    assert "\n" not in warned[0]


# ---------------------------------------------------------------------------
# the collector: retries failed inserts, pauses below the reserve
# ---------------------------------------------------------------------------

def wait_for(condition, timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def run_collector(collector: Collector) -> threading.Thread:
    thread = threading.Thread(target=collector.run)
    thread.start()
    return thread


def sent_end(collector: Collector) -> int:
    return next(iter(collector.files.values())).stream.sent_end if collector.files else 0


def test_collector_retries_a_failed_insert_and_never_passes_it(datalake, config, tmp_path):
    content = event_lines(300, boom_at=200)
    log = tmp_path / "tracking.log"
    log.write_bytes(content)
    engine = FailingEngine(datalake)
    messages: list[str] = []
    collector = Collector(engine, [str(log)], flush_interval=0.1, batch_bytes=8 * 1024,
                          state_dir=config.data_dir, echo=messages.append)
    thread = run_collector(collector)
    try:
        wait_for(lambda: engine.failures >= 3, what="retries")
        boom = content.index(b"BOOM")
        assert sent_end(collector) <= boom and not collector.engine_ok
        assert collector.loader.checkpoints.read(fingerprint(log)).offset <= boom
        assert any(m.startswith("insert failed, retrying with backoff: ") and "NOT_ENOUGH_SPACE" in m
                   for m in messages)
        wait_for(lambda: json.loads((config.data_dir / "collector.json").read_text()).get("failure"),
                 what="state")
        state = json.loads((config.data_dir / "collector.json").read_text())
        assert state["engine_ok"] is False and "NOT_ENOUGH_SPACE" in state["last_error"]
        section = collector_status(datalake, config)
        assert "insert failed, retrying: " in section["title"]
        assert section["rows"][0]["state"] == "retrying failed insert"
        engine.fail.clear()
        wait_for(lambda: sent_end(collector) == len(content), what="delivery")
    finally:
        collector.stop.set()
        thread.join(timeout=30)
    assert "engine back, delivering" in messages
    assert stored(datalake) == (300, 300)


def test_collector_pauses_below_the_reserve_and_resumes_when_space_is_back(datalake, config, tmp_path,
                                                                          monkeypatch):
    free = {"bytes": 10_000 * MIB}
    monkeypatch.setattr(reserve_module, "free_bytes", lambda path: free["bytes"])
    first, second = event_lines(200), event_lines(400)[len(event_lines(200)):]
    log = tmp_path / "tracking.log"
    log.write_bytes(first)
    messages: list[str] = []
    collector = Collector(datalake, [str(log)], flush_interval=0.1, batch_bytes=8 * 1024,
                          state_dir=config.data_dir, echo=messages.append,
                          reserve=DiskReserve(config.data_dir, 256 * MIB))
    thread = run_collector(collector)
    try:
        wait_for(lambda: sent_end(collector) == len(first), what="first lines")
        free["bytes"] = 40 * MIB
        wait_for(lambda: collector.paused_reason, what="pause")
        with open(log, "ab") as out:
            out.write(second)
        time.sleep(1.5)
        assert sent_end(collector) == len(first)  # nothing sent below the reserve
        state = json.loads((config.data_dir / "collector.json").read_text())
        assert state["paused_reason"].startswith(f"only 40 MB free on the file system of {config.data_dir}")
        section = collector_status(datalake, config)
        assert "paused: only 40 MB free" in section["title"]
        assert section["rows"][0]["state"] == "paused (free-space reserve)"
        assert any(m.startswith("paused, nothing is sent until space is freed: only 40 MB") for m in messages)
        free["bytes"] = 10_000 * MIB
        wait_for(lambda: sent_end(collector) == len(first) + len(second), what="delivery after the pause")
    finally:
        collector.stop.set()
        thread.join(timeout=30)
    assert "disk space back, resuming" in messages and not collector.paused_reason
    assert stored(datalake) == (400, 400)

