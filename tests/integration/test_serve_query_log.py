"""The query log of `cairn serve` (``_query_log``): what it records, who may read it, and that it never hurts a query.

A real `cairn serve` of its own (tests/support/serve.py) writing its log every 0.3 s, real
clients (httpx, clickhouse-connect, a raw socket); a second server for the shutdown flush
and the retention setting, read back with the embedded engine once it has exited.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
import uuid

import httpx
import pytest

from cairn.serve.delegation import ensure_key, read_key, token
from support.serve import C1, PASSWORD, start_server, stop_server

# 5 s of work in blocks of 10 rows: long enough to be killed or abandoned while it runs.
SLOW = "SELECT sleepEachRow(0.01) AS s FROM numbers(500) SETTINGS max_block_size = 10"
FAST_FLUSH = {"CAIRN_SERVE_QUERY_LOG_FLUSH_INTERVAL": "0.3", "CAIRN_MYSQL_DATABASE": "cairn_query_log_tests_absent"}


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    server = start_server(tmp_path_factory.mktemp("qlog") / "data", env=FAST_FLUSH)
    server.cairn("createuser", "course_user", "--password", PASSWORD, "--course-id", C1)
    server.cairn("createuser", "org_user", "--password", PASSWORD, "--org-id", "OrgB")
    yield server
    stop_server(server)


@pytest.fixture(scope="module")
def http(served):
    with httpx.Client(base_url=served.url, auth=(served.admin_user, served.admin_password), timeout=60) as client:
        yield client


def logged(http: httpx.Client, query_id: str, timeout: float = 15.0) -> dict:
    """The log's row of ``query_id``, once the flusher wrote it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = http.post("/", params={"default_format": "JSONEachRow", "param_id": query_id},
                           content="SELECT * FROM openedx._query_log WHERE query_id = {id:String}")
        assert answer.status_code == 200, answer.text
        if answer.text.strip():
            return json.loads(answer.text.splitlines()[0])
        time.sleep(0.2)
    raise AssertionError(f"{query_id} never reached the query log")


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4()}"


def _wait_running(http: httpx.Client, query_id: str, out: list) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not out:
        if query_id in http.post("/", content=f"KILL QUERY WHERE query_id = '{query_id}' TEST").text:
            return
        time.sleep(0.05)
    raise AssertionError(f"{query_id} never seen running")


# ---------------------------------------------------------------------------
# What is recorded
# ---------------------------------------------------------------------------

def test_a_successful_query_is_logged_with_its_user_duration_and_counters(served, http):
    query_id = new_id("ok")
    answer = http.post("/", params={"query_id": query_id},
                       content="SELECT sleep(0.3), count() FROM numbers(100000)")
    assert answer.status_code == 200, answer.text
    row = logged(http, query_id)
    assert row["user"] == served.admin_user and row["outcome"] == "ok" and row["error_code"] == 0
    assert row["kind"] == "select" and row["query"].startswith("SELECT sleep(0.3)")
    assert 300 <= row["duration_ms"] < 10_000
    assert int(row["rows_read"]) >= 100_000 and int(row["result_rows"]) == 1
    assert row["client"].startswith("python-httpx/") and row["address"] == "127.0.0.1"


def test_a_failed_query_is_logged_with_its_error_code(http):
    query_id = new_id("err")
    answer = http.post("/", params={"query_id": query_id}, content="SELECT no_such_column FROM numbers(1)")
    assert answer.status_code != 200
    row = logged(http, query_id)
    assert row["outcome"] == "error" and row["error_code"] == 47 and "no_such_column" in row["error"]


def test_a_killed_query_is_logged_as_killed(http):
    query_id = new_id("kill")
    out: list = []

    def run() -> None:
        try:
            out.append(http.post("/", params={"query": SLOW, "query_id": query_id}))
        except httpx.HTTPError as exc:  # the stream is cut: what a killed query looks like
            out.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    _wait_running(http, query_id, out)
    time.sleep(0.3)
    http.post("/", content=f"KILL QUERY WHERE query_id = '{query_id}' SYNC")
    thread.join(15)
    row = logged(http, query_id)
    assert row["outcome"] == "killed" and row["error_code"] == 394
    assert 300 <= row["duration_ms"] < 5000  # stopped well before its 5 s


def test_a_query_whose_client_went_away_is_logged_as_cancelled(served, http):
    query_id = new_id("gone")
    sock = socket.create_connection((served.host, served.port))
    request = (f"POST /?query_id={query_id}&user={served.admin_user}&password={served.admin_password} HTTP/1.1\r\n"
               f"Host: x\r\nContent-Length: {len(SLOW)}\r\n\r\n{SLOW}")
    sock.sendall(request.encode())
    assert sock.recv(100).startswith(b"HTTP/1.1 200")  # streaming has begun
    sock.close()
    row = logged(http, query_id)
    assert row["outcome"] == "cancelled" and row["duration_ms"] < 5000


def test_a_restricted_user_is_logged_as_themselves(served):
    client = served.client("course_user", PASSWORD)
    query_id = new_id("restricted")
    client.query("SELECT count() FROM events", settings={"query_id": query_id})
    client.close()
    with httpx.Client(base_url=served.url, auth=(served.admin_user, served.admin_password), timeout=60) as http:
        row = logged(http, query_id)
    assert row["user"] == "course_user" and row["outcome"] == "ok" and row["client"].startswith("clickhouse-connect")


def test_a_delegated_superset_login_is_logged_as_the_person(served, http):
    """Superset logs in with a person's delegation token: the log names the person, client superset."""
    key = read_key(ensure_key(served.data_dir))
    query_id = new_id("delegated")
    with httpx.Client(base_url=served.url, auth=("course_user", token(key, "course_user")), timeout=60) as person:
        answer = person.post("/", params={"query_id": query_id}, content="SELECT 1")
        assert answer.status_code == 200, answer.text
    row = logged(http, query_id)
    assert row["user"] == "course_user" and row["client"] == "superset"


def test_credentials_in_a_statement_are_not_logged(http):
    query_id = new_id("secret")
    http.post("/", params={"query_id": query_id},
              content="SELECT * FROM mysql('127.0.0.1:1', 'db', 't', 'someone', 'hunter2-secret')")
    row = logged(http, query_id)
    assert "hunter2" not in row["query"] and "[HIDDEN]" in row["query"] and row["outcome"] == "error"


def test_a_long_statement_is_cut_to_4_kib(http):
    query_id = new_id("long")
    sql = "SELECT 1 AS a" + "".join(f", {i} AS c{i}" for i in range(2000))
    assert http.post("/", params={"query_id": query_id}, content=sql).status_code == 200
    row = logged(http, query_id)
    assert len(row["query"].encode()) == 4096 and sql.startswith(row["query"])


# ---------------------------------------------------------------------------
# Who may read it
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("user", ["course_user", "org_user"])
@pytest.mark.parametrize("sql", [
    "SELECT * FROM _query_log",
    "SELECT * FROM openedx._query_log",
    "SELECT count() FROM (SELECT query FROM openedx._query_log)",
    "SELECT * FROM merge('openedx', '^_query')",
])
def test_a_restricted_user_cannot_read_the_query_log(served, http, user, sql):
    http.post("/", content="SELECT 'something to see'")
    client = served.client(user, PASSWORD)
    try:
        result = client.query(sql)
    except Exception as exc:  # noqa: BLE001 - refused is what we want
        assert "_query_log" in str(exc) or "ACCESS_DENIED" in str(exc) or "UNKNOWN_TABLE" in str(exc) \
            or "Not enough privileges" in str(exc), str(exc)
    else:
        assert result.result_rows in ([], [(0,)]), result.result_rows  # never anyone's statements
    finally:
        client.close()
    tables = served.client(user, PASSWORD).query("SELECT name FROM system.tables").result_rows
    assert ("_query_log",) not in tables


# ---------------------------------------------------------------------------
# Logging never hurts a query
# ---------------------------------------------------------------------------

def test_queries_succeed_while_the_log_cannot_be_written_and_the_records_come_later(served, http):
    create = http.post("/", params={"default_format": "TabSeparatedRaw"},
                       content="SHOW CREATE TABLE openedx._query_log").text
    assert http.post("/", content="DROP TABLE openedx._query_log SYNC").status_code == 200
    ids = [new_id("unlogged") for _ in range(5)]
    try:
        for query_id in ids:
            answer = http.post("/", params={"query_id": query_id}, content="SELECT 41 + 1")
            assert answer.status_code == 200 and answer.text == "42\n"
            time.sleep(0.3)  # several flushes fail meanwhile
        deadline = time.monotonic() + 10
        while "query log: could not write" not in served.log.read_text() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert "query log: could not write" in served.log.read_text()
    finally:
        assert http.post("/", content=create).status_code == 200
    for query_id in ids:  # kept in memory and written once the table is back
        assert logged(http, query_id)["outcome"] == "ok"


# ---------------------------------------------------------------------------
# Shutdown and settings
# ---------------------------------------------------------------------------

def test_shutdown_writes_what_is_waiting_and_the_retention_setting_applies(tmp_path):
    from cairn.engine import EmbeddedEngine

    data = tmp_path / "data"
    server = start_server(data, env={"CAIRN_SERVE_QUERY_LOG_FLUSH_INTERVAL": "300",
                                     "CAIRN_SERVE_QUERY_LOG_TTL_DAYS": "7",
                                     "CAIRN_MYSQL_DATABASE": "cairn_query_log_tests_absent"})
    ids = [new_id("shutdown") for _ in range(3)]
    try:
        with httpx.Client(base_url=server.url, auth=(server.admin_user, server.admin_password)) as http:
            for query_id in ids:
                assert http.post("/", params={"query_id": query_id}, content="SELECT 1").status_code == 200
            early = http.post("/", params={"param_ids": "['" + "','".join(ids) + "']"},
                              content="SELECT count() FROM openedx._query_log WHERE has({ids:Array(String)}, "
                                      "query_id)").text
            assert early == "0\n"  # nothing written yet: 300 s between flushes
    finally:
        assert stop_server(server) == 0
    engine = EmbeddedEngine(data, "openedx")
    try:
        rows = engine.query_rows("SELECT query_id, outcome FROM openedx._query_log")
        ttl = engine.query_value("SELECT create_table_query FROM system.tables WHERE database = 'openedx' "
                                 "AND name = '_query_log'")
    finally:
        engine.close()
    assert {q for q, _ in rows} >= set(ids) and all(o == "ok" for q, o in rows if q in ids)
    assert "toIntervalDay(7)" in ttl


def test_the_log_can_be_turned_off(tmp_path):
    server = start_server(tmp_path / "data", env={"CAIRN_SERVE_QUERY_LOG": "false",
                                                  "CAIRN_MYSQL_DATABASE": "cairn_query_log_tests_absent"})
    try:
        with httpx.Client(base_url=server.url, auth=(server.admin_user, server.admin_password)) as http:
            for _ in range(3):
                assert http.post("/", content="SELECT 1").text == "1\n"
    finally:
        assert stop_server(server) == 0
    from cairn.engine import EmbeddedEngine

    engine = EmbeddedEngine(tmp_path / "data", "openedx")
    try:
        assert engine.query_value("SELECT count() FROM openedx._query_log") == 0
    finally:
        engine.close()


# ---------------------------------------------------------------------------
# The Operator dashboard's dataset
# ---------------------------------------------------------------------------

def test_the_slow_queries_dataset_lists_the_slowest_first_for_admins_only(served, http):
    from cairn.superset.sources import load_sources, render_sql

    failed_id = new_id("failing")  # the test's own error row (it may run alone)
    assert http.post("/", params={"query_id": failed_id}, content="SELECT throwIf(1)").status_code != 200
    query_id = new_id("slowest")
    assert http.post("/", params={"query_id": query_id}, content="SELECT sleep(1)").status_code == 200
    logged(http, failed_id)
    logged(http, query_id)
    sql = render_sql(load_sources().template("slow_queries"))
    admin = served.client(database="openedx")
    result = admin.query(sql)
    admin.close()
    rows = [dict(zip(result.column_names, row)) for row in result.result_rows]
    assert rows[0]["query_head"] == "SELECT sleep(1)" and rows[0]["duration_ms"] >= 1000
    assert [r["duration_ms"] for r in rows] == sorted((r["duration_ms"] for r in rows), reverse=True)
    outcomes = {r["outcome"] for r in rows}
    assert "ok" in outcomes and any(o.startswith("error ") for o in outcomes)  # e.g. "error 497": refusals
    assert all(re.fullmatch(r"ok|cancelled|killed|error \d+", o) for o in outcomes), outcomes
    restricted = served.client("course_user", PASSWORD, database="openedx")
    with pytest.raises(Exception, match="_query_log|ACCESS_DENIED|UNKNOWN_TABLE"):
        restricted.query(sql)
    restricted.close()
