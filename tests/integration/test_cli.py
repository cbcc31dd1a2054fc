"""The `cairn` command as a user runs it: subprocesses in a fresh working directory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from cairn.schema.migrator import PACKAGE_MIGRATIONS
from support.paths import EVENTS

CAIRN = [sys.executable, "-m", "cairn"]
MIGRATIONS = len(list(PACKAGE_MIGRATIONS.glob("*.sql")))


def cairn(*args, cwd, env=None, input=None, check=True):
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("CAIRN_")}
    full_env.update(env or {})
    full_env["COLUMNS"] = "200"
    result = subprocess.run([*CAIRN, *args], cwd=cwd, env=full_env, input=input, capture_output=True,
                            text=True, timeout=300)
    if check and result.returncode != 0:
        raise AssertionError(f"cairn {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def test_help_lists_every_subcommand_with_a_description(tmp_path):
    out = cairn("--help", cwd=tmp_path).stdout
    for command in ("config", "migrate", "load", "client", "status"):
        line = next((l for l in out.splitlines() if l.strip("│ ").startswith(command + " ")), None)
        assert line is not None, f"{command} missing from --help"
        assert len(line.strip("│ ").split(None, 1)) == 2, f"{command} has no description"


def test_quickstart_from_an_empty_directory(tmp_path):
    """The README's quickstart: migrate, load the real sample log, query it."""
    cairn("migrate", cwd=tmp_path)
    assert (tmp_path / ".cairn" / "clickhouse").is_dir()  # zero-config data directory
    load = cairn("load", str(EVENTS / "erb-tracking-log" / "tracking.log"), cwd=tmp_path)
    assert "10" in load.stdout and "2" in load.stdout  # events and quarantined in the summary
    query = cairn("client", "-q", "SELECT name, count() FROM openedx.events GROUP BY name ORDER BY name",
                  cwd=tmp_path)
    rows = dict(line.split("\t") for line in query.stdout.strip().splitlines())
    assert rows["problem_check"] == "2"
    assert rows["edx.grades.subsection.grade_calculated"] == "2"
    assert sum(int(v) for v in rows.values()) == 10
    as_json = cairn("client", "-q", "SELECT count() AS n FROM openedx.events", "--format", "JSONEachRow",
                    cwd=tmp_path)
    assert as_json.stdout.strip() == '{"n":10}'
    status = cairn("status", cwd=tmp_path).stdout
    assert f"{MIGRATIONS} applied, 0 pending" in status
    assert "10 events, 2 quarantined" in status
    assert "2023-05-23 14:12:19" in status  # last event time
    again = cairn("migrate", cwd=tmp_path).stdout
    assert again.count("SKIP") == MIGRATIONS


def test_client_reads_statements_from_stdin(tmp_path):
    cairn("migrate", cwd=tmp_path)
    out = cairn("client", cwd=tmp_path, input="SELECT 1;\nSELECT 'two' FORMAT CSV;\n").stdout
    assert out == '1\n"two"\n'


def test_expected_errors_are_one_line_without_traceback(tmp_path):
    cases = [
        (["load", "missing.log"], {}, "missing.log: no such file"),
        (["config"], {"CAIRN_CLICKHOUSE_PORT": "http"}, "clickhouse.port"),
        (["status"], {"CAIRN_ENGINE": "server", "CAIRN_CLICKHOUSE_PORT": "1"},
         "cannot reach ClickHouse at 127.0.0.1:1"),
        (["client", "-q", "SELECT * FROM nowhere.nothing"], {}, "Code: "),
        (["--set", "nonsense", "status"], {}, "--set expects KEY=VALUE"),
    ]
    cairn("migrate", cwd=tmp_path)
    for args, env, needle in cases:
        result = cairn(*args, cwd=tmp_path, env=env, check=False)
        assert result.returncode == 1, (args, result.stderr)
        assert "Traceback" not in result.stderr
        lines = [l for l in result.stderr.strip().splitlines() if l.strip()]
        assert len(lines) == 1, (args, result.stderr)
        assert lines[0].startswith("Error:") and needle in lines[0], (args, lines)


def test_load_before_migrate_says_what_to_do(tmp_path):
    result = cairn("load", str(EVENTS / "erb-tracking-log" / "tracking.log"), cwd=tmp_path, check=False)
    assert result.returncode == 1
    assert "run `cairn migrate` first" in result.stderr


def test_config_masks_secrets_and_shows_origins(tmp_path):
    (tmp_path / "cairn.toml").write_text('[mysql]\npassword = "hunter2"\nhost = "lms-db"\n')
    out = cairn("config", "--json", cwd=tmp_path, env={"CAIRN_CLICKHOUSE_PASSWORD": "pw"}).stdout
    assert "hunter2" not in out and '"pw"' not in out
    assert '"mysql.host": "lms-db"' in out
    assert '"clickhouse.password": "********"' in out
    table = cairn("config", cwd=tmp_path).stdout
    assert "cairn.toml" in table and "CAIRN_MYSQL_HOST" in table


def test_migrate_dry_run_and_data_dir_flag(tmp_path):
    out = cairn("--data-dir", "elsewhere", "migrate", "--dry-run", cwd=tmp_path,
                env={"CAIRN_MYSQL_PASSWORD": "pw-in-sql-9"}).stdout
    assert "DRY-RUN" in out and "CREATE TABLE IF NOT EXISTS `openedx`.events" in out
    assert "pw-in-sql-9" not in out and "********" in out  # credentials rendered into DDL are masked
    status = cairn("--data-dir", "elsewhere", "status", cwd=tmp_path).stdout
    assert "0 applied" in status and "cairn migrate" in status
    assert (Path(tmp_path) / "elsewhere").is_dir() and not (Path(tmp_path) / ".cairn").exists()


def test_interactive_shell_runs_statements_and_keeps_history(tmp_path):
    """Drive `cairn client` through a pseudo-terminal, as a person would."""
    import pty
    import select
    import time

    cairn("migrate", cwd=tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAIRN_")}
    env.update(TERM="dumb", COLUMNS="120")
    pid, fd = pty.fork()
    if pid == 0:  # child: the shell on the terminal
        os.chdir(tmp_path)
        os.execve(sys.executable, [*CAIRN, "client", "--format", "TSV"], env)
    output = b""

    def read_until(needle: bytes, timeout: float = 60) -> None:
        nonlocal output
        deadline = time.time() + timeout
        while needle not in output and time.time() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.2)
            if ready:
                try:
                    output += os.read(fd, 4096)
                except OSError:
                    break
        assert needle in output, output.decode(errors="replace")

    read_until(b"cairn> ")
    os.write(fd, b"SELECT 40 +\r")
    read_until(b"-> ")                       # a statement continues until ';'
    os.write(fd, b"2 AS answer;\r")
    read_until(b"42")
    os.write(fd, b"SELECT * FROM nowhere;\r")
    read_until(b"Code: ")                    # errors are shown, the shell goes on
    os.write(fd, b"exit\r")
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    history = (tmp_path / ".cairn" / "client_history").read_text()
    assert "SELECT 40 +" in history and "SELECT * FROM nowhere;" in history


def test_client_runs_statements_that_return_no_rows(tmp_path):
    cairn("migrate", cwd=tmp_path)
    script = ("CREATE TABLE openedx.scratch (x UInt8) ENGINE = Memory;\n"
              "INSERT INTO openedx.scratch VALUES (1), (2);\n"
              "-- a comment first\nSELECT sum(x) FROM openedx.scratch;\n"
              "(SELECT 7);\nOPTIMIZE TABLE openedx.events;\nDROP TABLE openedx.scratch;\n")
    assert cairn("client", "-q", script, cwd=tmp_path).stdout == "3\n7\n"


def _open_paths(root: Path) -> list[str]:
    """Paths under ``root`` (itself included) that group or others may use."""
    paths = [root, *root.rglob("*")]
    return [f"{p}: {p.lstat().st_mode & 0o777:o}" for p in paths if not p.is_symlink() and p.lstat().st_mode & 0o077]


def test_status_reports_the_data_directory_and_migrate_makes_it_private(tmp_path):
    """Free space and reserve in `cairn status`; open modes reported there, fixed by `cairn migrate`."""
    import json

    cairn("migrate", cwd=tmp_path)
    data = tmp_path / ".cairn"
    opened = [data, *[p for p in data.rglob("*") if not p.is_symlink()][:5]]
    for path in opened:
        path.chmod(0o755 if path.is_dir() else 0o644)
    status = cairn("status", cwd=tmp_path).stdout
    assert f"data directory {data}" in status and "free space" in status and "collector.min_free_mb" in status
    assert "run `cairn migrate` to make them private" in status
    info = json.loads(cairn("status", "--json", cwd=tmp_path).stdout)
    section = next(s for s in info["sections"] if s["title"] == f"data directory {data}")
    assert section["free_bytes"] > 0 and section["reserve_bytes"] == 256 * 1024 * 1024
    assert section["open_paths"] >= len(opened)

    out = cairn("migrate", cwd=tmp_path).stdout
    assert "made private to their owner" in out
    assert _open_paths(data) == []
    status = cairn("status", cwd=tmp_path).stdout
    assert "private to its owner" in status and "Warning" not in status


def test_status_warns_below_the_free_space_reserve(tmp_path):
    cairn("migrate", cwd=tmp_path)
    status = cairn("status", cwd=tmp_path, env={"CAIRN_COLLECTOR_MIN_FREE_MB": str(1024 * 1024)}).stdout
    flat = " ".join(status.split())
    assert "Warning: only" in flat and "(reserve collector.min_free_mb = 1,048,576): the collector pauses" in flat


def test_status_of_a_server_engine_has_no_data_directory_section():
    from cairn.config import load_config
    from cairn.status import data_directory_status

    assert data_directory_status(None, load_config(None, {"engine": "server"}, environ={})) is None
