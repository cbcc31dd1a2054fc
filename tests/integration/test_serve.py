"""`cairn serve` speaks ClickHouse's HTTP interface to real clients: clickhouse-connect, SQLAlchemy, curl."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import threading
import time

import httpx
import pytest

from support.serve import C1, C2, C3, PASSWORD, TRACKING_LOG, shared_server, start_server, stop_server


@pytest.fixture(scope="module")
def served():
    return shared_server()


@pytest.fixture(scope="module")
def admin(served):
    client = served.client(database="openedx")
    yield client
    client.close()


def _curl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["curl", "-sS", "-i", "--max-time", "30", *args], capture_output=True, text=True, timeout=60)


def _split(response: str) -> tuple[int, dict, str]:
    head, _, body = response.replace("\r\n", "\n").partition("\n\n")
    lines = head.split("\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        key, _, value = line.partition(":")
        headers[key.strip().lower()] = value.strip()
    return status, headers, body


# ---------------------------------------------------------------------------
# clickhouse-connect
# ---------------------------------------------------------------------------

def test_clickhouse_connect_query_insert_command_df(admin):
    admin.command("DROP TABLE IF EXISTS scratch_cc")
    admin.command("CREATE TABLE scratch_cc (id UInt32, name String, tags Array(String), score Nullable(Float64)) "
                  "ENGINE = MergeTree ORDER BY id")
    admin.insert("scratch_cc", [[1, "ann", ["a", "b"], 0.5], [2, "bob", [], None]],
                 column_names=["id", "name", "tags", "score"])
    result = admin.query("SELECT id, name, tags, score FROM scratch_cc ORDER BY id")
    assert result.column_names == ("id", "name", "tags", "score")
    assert result.result_rows == [(1, "ann", ["a", "b"], 0.5), (2, "bob", [], None)]
    assert admin.command("SELECT count() FROM scratch_cc") == 2
    frame = admin.query_df("SELECT id, name FROM scratch_cc ORDER BY id")
    assert list(frame["name"]) == ["ann", "bob"]
    assert admin.query("SELECT {n:String} AS v", parameters={"n": "x'; DROP TABLE t; --"}).result_rows == \
        [("x'; DROP TABLE t; --",)]
    assert admin.raw_query("SELECT id, name FROM scratch_cc ORDER BY id FORMAT CSV") == b'1,"ann"\n2,"bob"\n'
    assert admin.raw_query("SELECT id FROM scratch_cc ORDER BY id", fmt="JSONEachRow") == b'{"id":1}\n{"id":2}\n'


def test_clickhouse_connect_streaming_settings_and_describe(admin):
    total, blocks = 0, 0
    with admin.query_row_block_stream("SELECT number FROM numbers(300000)",
                                      settings={"max_block_size": 10000}) as stream:
        for block in stream:
            blocks += 1
            total += sum(row[0] for row in block)
    assert total == sum(range(300000)) and blocks > 1
    assert admin.query("SELECT getSetting('max_threads')", settings={"max_threads": 1}).result_rows == [(1,)]
    # A setting sent with one request does not stick to the pooled session.
    assert admin.query("SELECT getSetting('max_threads')").result_rows != [(1,)]
    names = [r[0] for r in admin.query("SHOW TABLES FROM openedx").result_rows]
    assert "events" in names and "_users" in names
    described = {r[0]: r[1] for r in admin.query("DESCRIBE TABLE openedx.events").result_rows}
    assert described["course_id"] == "LowCardinality(String)"
    assert admin.command("EXISTS TABLE openedx.events") == 1


@pytest.mark.parametrize("compression", ["lz4", "zstd", "gzip"])
def test_clickhouse_connect_compression(served, compression):
    client = served.client(compress=compression, database="openedx")
    try:
        client.command("CREATE TABLE IF NOT EXISTS scratch_comp (id UInt32, s String) ENGINE = MergeTree ORDER BY id")
        client.command("TRUNCATE TABLE scratch_comp")
        client.insert("scratch_comp", [[i, "x" * 500] for i in range(2000)], column_names=["id", "s"])
        assert client.query("SELECT count(), sum(length(s)) FROM scratch_comp").result_rows == [(2000, 1_000_000)]
        assert len(client.raw_query("SELECT s FROM scratch_comp", fmt="TabSeparated")) == 2000 * 501
    finally:
        client.close()


def test_clickhouse_connect_sessions(served):
    import clickhouse_connect

    client = clickhouse_connect.get_client(host=served.host, port=served.port, username=served.admin_user,
                                           password=served.admin_password, session_id="sess-1")
    try:
        client.command("SET max_threads = 1")
        client.command("CREATE TEMPORARY TABLE tmp_s (x UInt8)")
        client.command("INSERT INTO tmp_s VALUES (7)")
        assert client.query("SELECT x, getSetting('max_threads') FROM tmp_s").result_rows == [(7, 1)]
    finally:
        client.close()
    other = served.client()
    try:
        with pytest.raises(Exception) as info:
            other.query("SELECT x FROM tmp_s")
        assert "60" in str(info.value) or "UNKNOWN_TABLE" in str(info.value)
    finally:
        other.close()


def test_clickhouse_connect_errors_carry_clickhouse_codes(admin):
    from clickhouse_connect.driver.exceptions import DatabaseError

    with pytest.raises(DatabaseError) as info:
        admin.query("SELEC 1")
    assert "Code: 62" in str(info.value) and "SYNTAX_ERROR" in str(info.value)
    with pytest.raises(DatabaseError) as info:
        admin.query("SELECT * FROM openedx.no_such_table")
    assert "Code: 60" in str(info.value)
    assert admin.command("SELECT 1") == 1  # and the server keeps serving


def test_sqlalchemy_dialect_discovers_tables_and_columns(served):
    import sqlalchemy as sa

    engine = sa.create_engine(f"clickhousedb://boss:{PASSWORD}@{served.host}:{served.port}/openedx")
    try:
        inspector = sa.inspect(engine)
        tables = inspector.get_table_names()
        assert "events" in tables
        columns = {c["name"] for c in inspector.get_columns("events")}
        assert {"course_id", "org", "time", "raw"} <= columns
        assert "users" in inspector.get_view_names()
        with engine.connect() as conn:
            count = conn.execute(sa.text("SELECT count() FROM events WHERE course_id = :c"), {"c": C3}).scalar()
            assert count == 7
    finally:
        engine.dispose()


# ---------------------------------------------------------------------------
# curl and plain HTTP
# ---------------------------------------------------------------------------

def test_curl_get_post_and_insert(served):
    auth = f"{served.admin_user}:{served.admin_password}"
    status, headers, body = _split(_curl("-u", auth, f"{served.url}/?query=SELECT%201%2B1").stdout)
    assert (status, body) == (200, "2\n")
    assert headers["x-clickhouse-format"] == "TabSeparated"
    assert headers["x-clickhouse-timezone"] in ("UTC", "Etc/UTC")
    assert headers["x-clickhouse-server-display-name"] == "cairn"
    assert json.loads(headers["x-clickhouse-summary"])["read_rows"] == "1"
    status, headers, body = _split(_curl("-u", auth, "--data-binary", "SELECT 'a' AS x FORMAT JSONEachRow",
                                         f"{served.url}/").stdout)
    assert (status, body) == (200, '{"x":"a"}\n')
    _curl("-u", auth, "--data-binary", "CREATE TABLE IF NOT EXISTS openedx.scratch_curl (id UInt32, s String) "
          "ENGINE = MergeTree ORDER BY id", f"{served.url}/")
    _curl("-u", auth, "--data-binary", "TRUNCATE TABLE openedx.scratch_curl", f"{served.url}/")
    status, _, _ = _split(_curl("-u", auth, "--data-binary", '{"id":1,"s":"one"}\n{"id":2,"s":"two"}\n',
                                f"{served.url}/?query=INSERT%20INTO%20scratch_curl%20FORMAT%20JSONEachRow"
                                f"&database=openedx").stdout)
    assert status == 200
    status, headers, body = _split(_curl(
        "-H", f"X-ClickHouse-User: {served.admin_user}", "-H", f"X-ClickHouse-Key: {served.admin_password}",
        f"{served.url}/?query=SELECT%20id,s%20FROM%20scratch_curl%20ORDER%20BY%20id&database=openedx"
        f"&default_format=CSV&query_id=my-query-42&max_result_rows=10").stdout)
    assert (status, body) == (200, '1,"one"\n2,"two"\n')
    assert headers["x-clickhouse-query-id"] == "my-query-42"
    assert headers["x-clickhouse-format"] == "CSV"


def test_curl_ping_and_session(served):
    status, _, body = _split(_curl(f"{served.url}/ping").stdout)
    assert (status, body) == (200, "Ok.\n")
    auth = f"{served.admin_user}:{served.admin_password}"
    status, _, body = _split(_curl("-u", auth, "--data-binary", "SET max_threads = 1",
                                   f"{served.url}/?session_id=curl-s").stdout)
    assert (status, body) == (200, "")
    _, _, body = _split(_curl("-u", auth, "--data-binary", "SELECT getSetting('max_threads')",
                              f"{served.url}/?session_id=curl-s").stdout)
    assert body == "1\n"


def test_no_credentials_wrong_password_unknown_user(served):
    for args in ([], ["-u", "course_user:wrong-password"], ["-u", "nobody:whatever"],
                 ["-u", f"{served.admin_user}:not-the-token"], ["-H", "X-ClickHouse-User: course_user"]):
        status, headers, body = _split(_curl(*args, f"{served.url}/?query=SELECT%201").stdout)
        assert status in (401, 403), (args, status, body)
        assert headers["x-clickhouse-exception-code"] == "516"
        assert body.startswith("Code: 516. DB::Exception:") and "AUTHENTICATION_FAILED" in body


def test_bad_input_keeps_the_server_serving(served):
    auth = httpx.BasicAuth(served.admin_user, served.admin_password)
    with httpx.Client(base_url=served.url, auth=auth, timeout=30) as http:
        response = http.post("/", content=b"SELECT * FROM")
        assert response.status_code == 400
        assert response.headers["X-ClickHouse-Exception-Code"] == "62"
        assert response.text.startswith("Code: 62. DB::Exception: Syntax error")
        response = http.post("/", content=b"x", headers={"Content-Encoding": "zstd"})
        assert response.status_code == 400
    # Raw garbage instead of HTTP.
    with socket.create_connection((served.host, served.port), timeout=10) as raw:
        raw.sendall(b"\x00\x01\x02 NOT HTTP\r\n\r\n")
        assert raw.recv(200).startswith(b"HTTP/1.")
    with socket.create_connection((served.host, served.port), timeout=10) as raw:
        raw.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n")
        assert raw.recv(200).startswith(b"HTTP/1.1 400 ")
    with httpx.Client(base_url=served.url, auth=auth, timeout=30) as http:
        assert http.get("/", params={"query": "SELECT 42"}).text == "42\n"


def test_slow_query_does_not_block_others_and_disconnect_cancels(served):
    auth = (served.admin_user, served.admin_password)
    marker = f"slow_marker_{os.getpid()}"
    sql = (f"SELECT sum(sleepEachRow(0.01)) AS {marker} FROM numbers(3000) "
           f"SETTINGS max_block_size = 10")
    raw = socket.create_connection((served.host, served.port), timeout=10)
    import base64

    token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
    body = sql.encode()
    raw.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nAuthorization: Basic " + token.encode() +
                b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    time.sleep(1.0)
    started = time.monotonic()
    with httpx.Client(base_url=served.url, auth=auth, timeout=30) as http:
        assert http.get("/", params={"query": "SELECT 1"}).text == "1\n"
        assert time.monotonic() - started < 3

        def running() -> int:
            return int(http.get("/", params={"query": f"SELECT count() FROM system.processes "
                                                       f"WHERE query LIKE '%{marker}%' "
                                                       f"AND query NOT LIKE '%system.processes%'"}).text)

        assert running() == 1
        raw.close()  # the client goes away: its 30 s query must stop
        deadline = time.monotonic() + 10
        while running() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert running() == 0


def test_concurrent_clients(served):
    errors, results = [], []

    def work(i: int) -> None:
        try:
            client = served.client(database="openedx")
            for _ in range(5):
                results.append(client.command(f"SELECT count() FROM events WHERE course_id = '{C2}'"))
            client.close()
        except Exception as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert results == [5] * 60


def test_local_commands_go_through_the_server(served):
    info = json.loads((served.data_dir / "serve.json").read_text())
    assert stat.S_IMODE(os.stat(served.data_dir / "serve.json").st_mode) == 0o600
    assert info["user"] == "cairn" and len(info["password"]) >= 32
    out = served.cairn("client", "-q", f"SELECT count() FROM openedx.events WHERE course_id = '{C1}'").stdout
    assert out == "3\n"
    status = served.cairn("status", "--json").stdout
    assert "ClickHouse server at http://127.0.0.1" in status
    served.cairn("migrate")  # nothing pending, through the server


# ---------------------------------------------------------------------------
# Lifecycle: a server of its own
# ---------------------------------------------------------------------------

def _count_when(http, sql: str, expected: int, timeout: float = 30) -> int:
    deadline = time.monotonic() + timeout
    while True:
        value = int(http.get("/", params={"query": sql}).text)
        if value == expected or time.monotonic() > deadline:
            return value
        time.sleep(0.3)


def test_collector_body_limit_sigterm_and_release(tmp_path):
    log = tmp_path / "tracking.log"
    lines = TRACKING_LOG.read_bytes().splitlines(keepends=True)
    log.write_bytes(b"".join(lines[:6]))
    served = start_server(tmp_path / "data", env={"CAIRN_SERVE_MAX_BODY_BYTES": "1000",
                                                  "CAIRN_COLLECTOR_SOURCES": str(log)})
    try:
        auth = (served.admin_user, served.admin_password)
        with httpx.Client(base_url=served.url, auth=auth, timeout=30) as http:
            # The collector runs inside the server: lines appended to the log become rows.
            lines_sql = "SELECT sum(lines) FROM openedx._ingest_stats"
            assert _count_when(http, lines_sql, 6) == 6
            with open(log, "ab") as out:
                out.write(b"".join(lines[6:]))
            assert _count_when(http, lines_sql, len(lines)) == len(lines)
            response = http.post("/", content=b"SELECT '" + b"x" * 5000 + b"'")
            assert response.status_code == 413
            assert response.headers["X-ClickHouse-Exception-Code"] == "307"
            assert http.get("/", params={"query": "SELECT 3"}).text == "3\n"
            # A query running when SIGTERM arrives is finished, then the server exits.
            result = {}

            def slow() -> None:
                result["text"] = http.get("/", params={"query": "SELECT sum(sleepEachRow(0.1)) + 5 FROM numbers(20) "
                                                                "SETTINGS max_block_size = 1"}).text

            thread = threading.Thread(target=slow)
            thread.start()
            time.sleep(0.5)
            served.process.send_signal(15)
            thread.join(30)
            assert result["text"] == "5\n"
        assert served.process.wait(timeout=30) == 0
        assert not (served.data_dir / "serve.json").exists()
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{served.url}/ping", timeout=5)
        # The data directory is free again: the embedded engine opens it directly.
        from cairn.config import load_config
        from cairn.engine import EmbeddedEngine, open_engine

        engine = open_engine(load_config(overrides={"data_dir": str(served.data_dir)}))
        try:
            assert isinstance(engine, EmbeddedEngine)
            assert engine.query_value("SELECT count() FROM openedx._migrations") > 0
        finally:
            engine.close()
    finally:
        stop_server(served)


def test_compressed_bodies_and_responses_over_plain_http(served):
    import gzip as gzip_module

    import lz4.frame
    import zstandard

    auth = (served.admin_user, served.admin_password)
    rows = b"".join(b'{"id":%d,"s":"v%d"}\n' % (i, i) for i in range(3000))
    with httpx.Client(base_url=served.url, auth=auth, timeout=60) as http:
        http.post("/", content=b"CREATE TABLE IF NOT EXISTS openedx.scratch_enc (id UInt32, s String) "
                               b"ENGINE = MergeTree ORDER BY id")
        http.post("/", content=b"TRUNCATE TABLE openedx.scratch_enc")
        insert = {"query": "INSERT INTO openedx.scratch_enc FORMAT JSONEachRow"}
        for encoding, body in (("gzip", gzip_module.compress(rows)), ("zstd", zstandard.compress(rows)),
                               ("lz4", lz4.frame.compress(rows))):
            response = http.post("/", params=insert, content=body, headers={"Content-Encoding": encoding})
            assert response.status_code == 200, response.text
        assert http.get("/", params={"query": "SELECT count(), uniqExact(id) FROM openedx.scratch_enc"}).text \
            == "9000\t3000\n"
        raw = httpx.get(f"{served.url}/", auth=auth, params={"query": "SELECT s FROM openedx.scratch_enc LIMIT 2",
                                                             "enable_http_compression": "1"},
                        headers={"Accept-Encoding": "zstd"})
        assert raw.headers["Content-Encoding"] == "zstd"
        assert raw.text.count("\n") == 2
