"""`cairn up --demo`, the README's main job: the whole stack from an empty directory.

Here without Superset (`--no-superset`, the datalake-only stack); tests/e2e runs it with.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta

import psutil
import pymysql
import pytest

from cairn.serve.service import ENGINE_FAILED_EXIT
from cairn.stack import Supervised, describe_serve_exit


def _wait(predicate, seconds, what):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def mysql_database():
    name = f"cairn_up_test_{os.getpid()}"
    yield name
    connection = pymysql.connect(host="127.0.0.1", port=3306, user="root", password="")
    with connection.cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
    connection.close()


def _client(cwd, env, sql):
    done = subprocess.run([sys.executable, "-m", "cairn", "client", "-q", sql], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def _start(cwd, env):
    log = open(cwd / f"up-{time.monotonic_ns()}.log", "w")
    process = subprocess.Popen([sys.executable, "-m", "cairn", "up", "--demo", "--learners", "40",
                                "--live-rate", "20", "--port", "0", "--no-superset"],
                               cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT)
    serve_file = cwd / ".cairn" / "serve.json"
    _wait(lambda: process.poll() is not None or serve_file.exists(), 300, "cairn up to serve")
    assert process.poll() is None, open(log.name).read()
    return process, log.name


def _stop(process):
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=120) == 0


def test_up_demo_serves_everything_and_keeps_moving(tmp_path, mysql_database):
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAIRN_")}
    env["CAIRN_MYSQL_DATABASE"] = mysql_database  # never the developer's own demo database
    process, log = _start(tmp_path, env)
    try:
        truth = json.loads((tmp_path / ".cairn" / "demo" / "ground_truth.json").read_text())
        assert len(truth["courses"]) == 4
        # The demo's history is collected by the in-process collector, then live events follow.
        total = _wait(lambda: int(_client(tmp_path, env, "SELECT count() FROM openedx.events") or 0) > 1000
                      and _client(tmp_path, env, "SELECT count() FROM openedx.events"), 180, "the demo events")
        assert int(total) > 1000
        assert int(_client(tmp_path, env, "SELECT uniqExact(course_id) FROM openedx.course_blocks")) == 4
        _client(tmp_path, env, "SYSTEM REFRESH VIEW openedx._mysql_users_refresh")
        users = _wait(lambda: int(_client(tmp_path, env, "SELECT count() FROM openedx.users")), 60, "MySQL users")
        assert users >= 40
        now = datetime.utcnow()
        latest = _wait(lambda: (lambda t: t if t > now - timedelta(seconds=30) else None)(
            datetime.fromisoformat(_client(tmp_path, env, "SELECT max(time) FROM openedx.events"))),
            60, "live events")
        assert latest <= datetime.utcnow() + timedelta(seconds=5)
        _serve_is_restarted_after_dying(process, log, tmp_path, env)
        assert "Superset" not in open(log).read()
        assert not [p for p in psutil.Process(process.pid).children(recursive=True)
                    if "gunicorn" in " ".join(p.cmdline())]
    finally:
        _stop(process)
    # A second run reuses the demo and keeps adding live events to it.
    before = os.path.getsize(tmp_path / ".cairn" / "demo" / "tracking.log")
    process, log = _start(tmp_path, env)
    try:
        _wait(lambda: os.path.getsize(tmp_path / ".cairn" / "demo" / "tracking.log") > before + 2000, 60,
              "live events on the second run")
        assert "already in" in open(log).read()
    finally:
        _stop(process)


def _serve_child(process):
    """The `cairn serve` child process of a running `cairn up`."""
    found = [p for p in psutil.Process(process.pid).children() if "serve_child" in " ".join(p.cmdline())]
    assert len(found) == 1, found
    return found[0]


def _serve_is_restarted_after_dying(process, log, cwd, env):
    """cairn up notices that cairn serve died, starts it again, and the datalake answers again."""
    before = int(_client(cwd, env, "SELECT count() FROM openedx.events"))
    victim = _serve_child(process)
    victim.kill()
    victim.wait(30)
    _wait(lambda: "cairn serve restarted" in open(log).read(), 60, "the restart")
    assert "cairn serve exited (killed by signal 9)" in open(log).read()
    assert _serve_child(process).pid != victim.pid
    after = _wait(lambda: _try_count(cwd, env), 120, "the restarted cairn serve")
    assert after >= before


def _try_count(cwd, env):
    done = subprocess.run([sys.executable, "-m", "cairn", "client", "-q", "SELECT count() FROM openedx.events"],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    return int(done.stdout.strip()) if done.returncode == 0 and done.stdout.strip() else None


def test_a_child_that_fails_is_restarted_with_backoff(tmp_path):
    """The supervisor restarts a child that exits with the engine-failure status, and says why."""
    lines = []
    starts = tmp_path / "starts"

    def start():
        # A real process that records its start and exits as a failed `cairn serve` does.
        return subprocess.Popen([sys.executable, "-c", f"open({str(starts)!r}, 'a').write('x'); "
                                                       f"raise SystemExit({ENGINE_FAILED_EXIT})"])

    child = Supervised("cairn serve", start, lines.append, describe_serve_exit)
    child.start()
    _wait(lambda: (child.check(), child.restarts >= 2)[1], 30, "two restarts")
    child.process.wait(10)
    assert starts.read_text() == "xxx"
    assert lines[0] == "cairn serve exited (status 70: the embedded engine failed); restarting in 1 s"
    assert lines[2].endswith("restarting in 2 s")  # backoff grows while it keeps failing
    child.terminate()
    child.wait(10)
