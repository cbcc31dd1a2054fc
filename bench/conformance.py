"""Conformance of `cairn serve` measured with someone else's tests: clickhouse-connect's own suite.

    .venv/bin/python bench/conformance.py --repo /tmp/cc-conformance [--workers 2] [-k EXPR]

``--repo`` is a checkout of https://github.com/ClickHouse/clickhouse-connect (the tag
of the installed version when it exists; never committed here). The script

1. makes a virtualenv for the suite beside it (``<repo>/.venv-conformance``, once): the
   suite's test requirements and the checkout itself, built in place, so that the
   tests run the client they were written for;
2. starts `cairn serve --port 0` on a fresh data directory in a temporary folder (with
   `serve.max_sessions_per_user` raised: see `--sessions-per-user`) and
   points the suite at it as the local admin (``CLICKHOUSE_CONNECT_TEST_HOST/PORT/
   USER/PASSWORD``, a fresh test database);
3. runs ``tests/integration_tests`` with pytest-xdist, then prints the counts
   (passed, failed, errors, skipped) and every failure classified by cause
   (``CAUSES``: an engine limit of chDB, or the server's), with the unknown ones last.

Exit status 0 when no failure is left unexplained (every one matches a known engine
limit, a documented choice or a missing part of the environment), 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections import Counter, defaultdict
from pathlib import Path

CAIRN = str(Path(sys.executable).with_name("cairn"))
REQUIREMENTS = ["pytest", "pytest-asyncio", "pytest-mock", "pytest-dotenv", "pytest-xdist", "pytest-timeout",
                "aiohttp", "sqlalchemy>=2,<3", "alembic>=1.18", "pyarrow", "numpy", "pandas>=2,<4", "polars",
                "lz4", "zstandard", "backports.zstd", "urllib3", "certifi", "pyjwt[crypto]", "pytz",
                "cython==3.2.5", "setuptools", "wheel"]

# Known causes of failures: (label, kind, pattern on "test id + failure text").
# kind "engine": a limit of the embedded engine (chDB) or of a single-user server, listed
# in docs/conformance.md; "choice": cairn serve differs from ClickHouse on purpose
# (docs/serve.md); "environment": the test needs something this run has not.
CAUSES: list[tuple[str, str, str]] = [
    ("no users, roles or row policies (chDB has no access control; cairn's users are its own)", "engine",
     r"test_show_row_policies|test_role_setting|show_policies|SHOW ROW POLICIES|ACCESS_ENTITY|UNKNOWN_ROLE"
     r"|test_jwt|CREATE USER|CREATE ROLE"),
    ("no query_log in chDB (system.query_log is not written)", "engine",
     r"test_query_id_in_query_logs|query_log"),
    ("the test expects a server on another port to refuse (it reaches its own 'wrong port')", "environment",
     r"test_wrong_port_error_message|test_successful_connection"),
    ("the test resets connections through a proxy the run does not have", "environment",
     r"retry_on_connection_reset|test_proxy|PROXY"),
    ("TLS tests need a TLS endpoint (cairn serve speaks plain HTTP; put a proxy in front)", "environment",
     r"test_tls"),
    ("SHOW CREATE of a system table: chDB keeps no metadata for system tables", "engine",
     r"There is no metadata of table \w+ in database system"),
    ("chDB's Native output is protocol revision 0: client_protocol_version cannot reach it, so DateTime "
     "columns lose their zone in the type name", "engine", r"test_protocol_version|test_local_timezones"),
    ("the analyzer cannot be disabled in ClickHouse 26.9 (the engine's version), whatever the server",
     "engine", r"Setting 'enable_analyzer' cannot be disabled"),
    ("choice: the default database is openedx, not default (docs/serve.md)", "choice", r"test_none_database"),
    ("choice: at most serve.max_sessions_per_user client sessions per user (the suite opens one per client; "
     "raise it with --sessions-per-user)", "choice", r"USER_SESSION_LIMIT_EXCEEDED|code: 700"),
    ("choice: serve.workers (the cores) statements compute at once; 10 concurrent sleep(0.1) take over 0.5 s",
     "choice", r"test_async_features::test_concurrent_queries\b"),
    ("the suite's test code does not run with the pandas installed (pd.Timestamp's nanosecond argument)",
     "environment", r"tzinfo argument must be None or of a tzinfo subclass, not type 'int'"),
]


def _run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=True, **kwargs)


def prepare_venv(repo: Path) -> Path:
    """The suite's virtualenv (made once): its requirements and the checkout built in place."""
    venv = repo / ".venv-conformance"
    python = venv / "bin" / "python"
    marker = venv / ".ready"
    if marker.exists():
        return python
    shutil.rmtree(venv, ignore_errors=True)
    _run([sys.executable, "-m", "venv", str(venv)])
    _run([str(python), "-m", "pip", "install", "-q", *REQUIREMENTS])
    _run([str(python), "setup.py", "build_ext", "--inplace"], cwd=repo, stdout=subprocess.DEVNULL)
    _run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "-e", str(repo)])
    marker.write_text("ok\n")
    return python


def start_serve(root: Path, sessions_per_user: int) -> tuple[subprocess.Popen, dict]:
    """`cairn serve --port 0` on a fresh data directory; returns (process, serve.json).

    Its settings are the defaults but ``serve.max_sessions_per_user``: the suite makes a
    new client, hence a new session, for most tests, and as one user it keeps hundreds
    open within the sessions' 60 s idle time (the default 100 answers code 700 then).
    """
    data = root / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAIRN_")}
    env["CAIRN_SERVE_MAX_SESSIONS_PER_USER"] = str(sessions_per_user)
    log = open(root / "serve.log", "w")
    process = subprocess.Popen([CAIRN, "--data-dir", str(data), "serve", "--port", "0"], stdout=log,
                               stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"cairn serve exited: {(root / 'serve.log').read_text()}")
        try:
            return process, json.loads((data / "serve.json").read_text())
        except (OSError, ValueError):
            time.sleep(0.2)
    process.kill()
    raise SystemExit("cairn serve did not start in 180 s")


def run_suite(repo: Path, python: Path, info: dict, workers: int, select: str | None, junit: Path) -> int:
    """pytest on the suite's integration tests against the server; returns pytest's exit status."""
    env = {**os.environ,
           "CLICKHOUSE_CONNECT_TEST_HOST": info["host"], "CLICKHOUSE_CONNECT_TEST_PORT": str(info["port"]),
           "CLICKHOUSE_CONNECT_TEST_USER": info["user"], "CLICKHOUSE_CONNECT_TEST_PASSWORD": info["password"],
           "CLICKHOUSE_CONNECT_TEST_DOCKER": "False", "PYTHONDONTWRITEBYTECODE": "1"}
    # No CLICKHOUSE_CONNECT_TEST_DATABASE: each xdist worker makes a database of its own
    # (the tests of two workers would otherwise share table names).
    cmd = [str(python), "-m", "pytest", "tests/integration_tests", "-p", "no:cacheprovider", "-q",
           "-n", str(workers), "-o", "log_cli=false", "--timeout=300", f"--junitxml={junit}"]
    if select:
        cmd += ["-k", select]
    return subprocess.run(cmd, cwd=repo, env=env).returncode


def read_junit(junit: Path) -> tuple[Counter, list[tuple[str, str, str]]]:
    """(counts by outcome, [(test id, outcome, text)] of the failures and errors)."""
    counts: Counter = Counter()
    failures = []
    for case in ET.parse(junit).getroot().iter("testcase"):
        test_id = f"{case.get('classname')}::{case.get('name')}"
        outcome = "passed"
        text = ""
        for child in case:
            if child.tag in ("failure", "error"):
                outcome = "failed" if child.tag == "failure" else "error"
                text = (child.get("message") or "") + "\n" + (child.text or "")
                break
            if child.tag == "skipped":
                outcome = "skipped"
        counts[outcome] += 1
        if outcome in ("failed", "error"):
            failures.append((test_id, outcome, text))
    return counts, failures


def classify(failures: list[tuple[str, str, str]]) -> dict[tuple[str, str], list[str]]:
    """Failures grouped by known cause; ("unexplained", "server?") for the rest."""
    groups: dict[tuple[str, str], list[str]] = defaultdict(list)
    for test_id, _, text in failures:
        subject = test_id + "\n" + text
        for label, kind, pattern in CAUSES:
            if re.search(pattern, subject):
                groups[(kind, label)].append(test_id)
                break
        else:
            first = next((line.strip() for line in text.splitlines() if line.strip().startswith("E ")), "")
            groups[("unexplained", first[:160] or text.strip().splitlines()[0][:160] if text.strip() else "")
                   ].append(test_id)
    return groups


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repo", type=Path, required=True, help="a checkout of clickhouse-connect")
    parser.add_argument("--workers", type=int, default=2, help="pytest-xdist workers (default 2)")
    parser.add_argument("-k", dest="select", help="only the tests matching this pytest -k expression")
    parser.add_argument("--junit", type=Path, help="keep pytest's JUnit XML here")
    parser.add_argument("--sessions-per-user", type=int, default=1000,
                        help="serve.max_sessions_per_user for the run (default 1000, the server-wide cap; "
                             "cairn serve's default 100 is too few for the suite, which is one user)")
    args = parser.parse_args()
    repo = args.repo.resolve()
    if not (repo / "tests" / "integration_tests" / "conftest.py").exists():
        print(f"{repo}: not a clickhouse-connect checkout (no tests/integration_tests/conftest.py)")
        return 2
    python = prepare_venv(repo)
    root = Path(tempfile.mkdtemp(prefix="cairn-conformance-"))
    process, info = start_serve(root, args.sessions_per_user)
    junit = args.junit or root / "junit.xml"
    started = time.monotonic()
    try:
        run_suite(repo, python, info, args.workers, args.select, junit)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(60)
    counts, failures = read_junit(junit)
    total = sum(counts.values())
    print(f"\nclickhouse-connect integration tests against cairn serve ({time.monotonic() - started:.0f} s)")
    print(f"  {total} tests: {counts['passed']} passed, {counts['failed']} failed, {counts['error']} errors, "
          f"{counts['skipped']} skipped")
    groups = classify(failures)
    unexplained = 0
    for (kind, label), tests in sorted(groups.items(), key=lambda item: (item[0][0] == "unexplained", item[0])):
        print(f"\n  [{kind}] {label}: {len(tests)}")
        for test_id in tests:
            print(f"      {test_id}")
        if kind == "unexplained":
            unexplained += len(tests)
    print(f"\n  unexplained (the server's until shown otherwise): {unexplained}")
    shutil.rmtree(root, ignore_errors=True) if args.junit else None
    return 0 if unexplained == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
