"""A running `cairn serve` shared by the serve/access/users/engine-server tests.

The server is a real subprocess (`cairn serve --port 0`) on a temporary data directory,
started once per pytest process (migrations take several seconds on a small machine)
and stopped with SIGTERM at exit. It holds sample data for several courses and orgs so
that filtering is observable:

* events loaded from the Open edX sample tracking log (course-v1:edX+DemoX+Demo_Course);
* synthetic events: 3 in course-v1:OrgA+C1+2024, 5 in course-v1:OrgA+C2+2024,
  7 in course-v1:OrgB+C3+2024;
* enrollments/users/user_profiles rows for learners 1..4 (synced-copy tables).
"""

from __future__ import annotations

import atexit
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

CAIRN = str(Path(sys.executable).with_name("cairn"))
SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "openedx"
TRACKING_LOG = SHARED / "events" / "erb-tracking-log" / "tracking.log"

C1, C2, C3 = "course-v1:OrgA+C1+2024", "course-v1:OrgA+C2+2024", "course-v1:OrgB+C3+2024"
DEMO = "course-v1:edX+DemoX+Demo_Course"
EVENTS_PER_COURSE = {C1: 3, C2: 5, C3: 7}
PASSWORD = "pw-for-tests-1"
# Learners: id -> (username, email, course enrolled in)
LEARNERS = {1: ("ann", "ann@example.org", C1), 2: ("ben", "ben@example.org", C2),
            3: ("cat", "cat@example.org", C3), 4: ("dan", "dan@example.org", C3)}


@dataclass
class Served:
    """Where the test server listens and how to reach it as admin."""

    data_dir: Path
    host: str
    port: int
    admin_user: str
    admin_password: str
    process: subprocess.Popen
    log: Path

    def env(self) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CAIRN_")}
        env["CAIRN_DATA_DIR"] = str(self.data_dir)
        return env

    def cairn(self, *args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
        """Run a `cairn` command on the served data directory (it goes through the server)."""
        done = subprocess.run([CAIRN, *args], env=self.env(), input=input, capture_output=True, text=True,
                              timeout=120)
        if check and done.returncode != 0:
            raise AssertionError(f"cairn {' '.join(args)} failed: {done.stdout}{done.stderr}")
        return done

    def client(self, user: str | None = None, password: str | None = None, **kwargs):
        import clickhouse_connect

        return clickhouse_connect.get_client(host=self.host, port=self.port,
                                             username=user or self.admin_user,
                                             password=self.admin_password if password is None else password,
                                             **kwargs)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


def start_server(data_dir: Path, extra_args: tuple[str, ...] = (), env: dict | None = None,
                 timeout: float = 120) -> Served:
    """Start `cairn serve` on a free port and wait until it publishes serve.json."""
    data_dir.mkdir(parents=True, exist_ok=True)
    log = data_dir.parent / f"serve-{data_dir.name}.log"
    environment = {k: v for k, v in os.environ.items() if not k.startswith("CAIRN_")}
    environment.update(env or {})
    handle = open(log, "w")
    process = subprocess.Popen([CAIRN, "--data-dir", str(data_dir), "serve", "--port", "0", *extra_args],
                               stdout=handle, stderr=subprocess.STDOUT, env=environment)
    serve_file = data_dir / "serve.json"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"cairn serve exited: {log.read_text()}")
        if serve_file.exists():
            try:
                info = json.loads(serve_file.read_text())
                break
            except ValueError:
                pass
        time.sleep(0.1)
    else:
        process.kill()
        raise AssertionError(f"cairn serve did not start: {log.read_text()}")
    return Served(data_dir, info["host"], info["port"], info["user"], info["password"], process, log)


def stop_server(served: Served, timeout: float = 60) -> int:
    """SIGTERM, then wait; returns the exit code."""
    if served.process.poll() is None:
        served.process.send_signal(signal.SIGTERM)
    return served.process.wait(timeout=timeout)


_SHARED: Served | None = None


def _seed(served: Served) -> None:
    served.cairn("load", "-q", str(TRACKING_LOG))
    admin = served.client()
    rows = []
    n = 0
    for course, count in EVENTS_PER_COURSE.items():
        org = course.split(":")[1].split("+")[0]
        for i in range(count):
            n += 1
            learner = next((lid for lid, (_, _, c) in LEARNERS.items() if c == course), 1)
            rows.append([f"00000000-0000-0000-0000-{n:012d}", "2024-05-01 10:00:00", "test.event", "test.event",
                         "server", course, org, learner, LEARNERS[learner][0], "", "", "", "{}", "seed", n])
    admin.insert("openedx.events", rows,
                 column_names=["event_id", "time", "name", "event_type", "event_source", "course_id", "org",
                               "user_id", "username", "session", "page", "path", "raw", "source",
                               "source_offset"])
    admin.insert("openedx._mysql_users_copy",
                 [[lid, u, "", "", e, True] for lid, (u, e, _) in LEARNERS.items()],
                 column_names=["id", "username", "first_name", "last_name", "email", "is_active"])
    admin.insert("openedx._mysql_user_profiles_copy",
                 [[lid, lid, f"{u.title()} Learner"] for lid, (u, _, _) in LEARNERS.items()],
                 column_names=["id", "user_id", "name"])
    admin.insert("openedx._mysql_enrollments_copy",
                 [[lid, lid, c, True, "audit"] for lid, (_, _, c) in LEARNERS.items()],
                 column_names=["id", "user_id", "course_id", "is_active", "mode"])
    admin.close()
    served.cairn("createuser", "course_user", "--password", PASSWORD, "--course-id", C1)
    served.cairn("createuser", "org_user", "--password", PASSWORD, "--org-id", "OrgB")
    served.cairn("createuser", "boss", "--password", PASSWORD, "--admin")


def shared_server() -> Served:
    """The seeded server of this pytest process (started on first use)."""
    global _SHARED
    if _SHARED is None or _SHARED.process.poll() is not None:
        root = Path(tempfile.mkdtemp(prefix="cairn-serve-tests-"))
        # The seeded rows go straight into the synced copies; a MySQL database that does not
        # exist keeps refreshes from replacing them (a failed refresh keeps the last copy).
        _SHARED = start_server(root / "data", env={"CAIRN_MYSQL_DATABASE": "cairn_serve_tests_absent"})
        atexit.register(stop_server, _SHARED)
        _seed(_SHARED)
    return _SHARED
