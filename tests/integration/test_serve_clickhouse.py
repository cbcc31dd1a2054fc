"""`cairn serve` behaves as a ClickHouse server where clients rely on it (issue 12, findings 5 and 7).

Real server (tests/support/serve.py), real clients (httpx, clickhouse-connect, raw sockets).
"""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest

from support.serve import C1, PASSWORD, shared_server

# 5 s of work in blocks of 10 rows: long enough to be seen running, killed or replaced.
SLOW = "SELECT sleepEachRow(0.01) AS s FROM numbers(500) SETTINGS max_block_size = 10"


@pytest.fixture(scope="module")
def served():
    return shared_server()


@pytest.fixture(scope="module")
def http(served):
    with httpx.Client(base_url=served.url, auth=(served.admin_user, served.admin_password), timeout=60) as client:
        yield client


def _in_background(http: httpx.Client, **params) -> tuple[threading.Thread, list]:
    """POST a query from a thread; the response (or the exception) lands in the list."""
    out: list = []

    def run() -> None:
        try:
            out.append(http.post("/", params=params))
        except Exception as exc:  # noqa: BLE001 - reported by the test
            out.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, out


def _wait_running(served, http: httpx.Client, query_id: str, out: list) -> None:
    """Until the server runs ``query_id`` (KILL ... TEST names it without killing it or taking the id)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not out:
        answer = http.post("/", content=f"KILL QUERY WHERE query_id = '{query_id}' TEST")
        if query_id in answer.text:
            return
        time.sleep(0.05)
    raise AssertionError(f"{query_id} never seen running: {out[0].text if out else ''}")


# ---------------------------------------------------------------------------
# query_id: duplicates, KILL QUERY by id, replace_running_query
# ---------------------------------------------------------------------------

def test_a_duplicate_running_query_id_fails_with_216_and_kill_by_id_stops_it(served, http):
    query_id = f"slow-{uuid.uuid4()}"
    thread, out = _in_background(http, query=SLOW, query_id=query_id)
    _wait_running(served, http, query_id, out)
    duplicate = http.post("/", params={"query": "SELECT 1", "query_id": query_id})
    assert duplicate.headers["x-clickhouse-exception-code"] == "216"
    assert "QUERY_WITH_SAME_ID_IS_ALREADY_RUNNING" in duplicate.text
    started = time.monotonic()
    killed = http.post("/", params={"default_format": "JSONEachRow"},
                       content=f"KILL QUERY WHERE query_id = '{query_id}' SYNC")
    assert killed.status_code == 200, killed.text
    row = json.loads(killed.text)
    assert row["kill_status"] == "finished" and row["query_id"] == query_id and row["user"] == served.admin_user
    thread.join(10)
    assert time.monotonic() - started < 3.0  # the 5 s query did not run to its end
    answer = out[0]
    assert isinstance(answer, Exception) or answer.status_code != 200 or "394" in answer.text \
        or answer.text.count("\n") < 500
    # The id is free again.
    assert http.post("/", params={"query": "SELECT 1", "query_id": query_id}).text == "1\n"


def test_replace_running_query_kills_the_old_one(served, http):
    query_id = f"replace-{uuid.uuid4()}"
    thread, out = _in_background(http, query=SLOW, query_id=query_id)
    _wait_running(served, http, query_id, out)
    started = time.monotonic()
    second = http.post("/", params={"query": "SELECT 42", "query_id": query_id, "replace_running_query": "1"})
    assert second.status_code == 200 and second.text == "42\n", second.text
    assert time.monotonic() - started < 3.0
    thread.join(10)
    first = out[0]
    assert isinstance(first, Exception) or first.text.count("\n") < 500  # cut short


def test_clickhouse_connect_query_id_reaches_the_server(served):
    client = served.client()
    query_id = f"cc-{uuid.uuid4()}"
    result = client.query("SELECT 1", settings={"query_id": query_id})
    assert result.query_id == query_id
    client.close()


# ---------------------------------------------------------------------------
# currentUser(), GET is read-only, summary and progress, compress=1
# ---------------------------------------------------------------------------

def test_current_user_is_the_datalake_user(served, http):
    assert http.get("/", params={"query": "SELECT currentUser(), user(), 'currentUser()'"}).text == \
        f"{served.admin_user}\t{served.admin_user}\tcurrentUser()\n"
    with httpx.Client(base_url=served.url, auth=("course_user", PASSWORD), timeout=30) as restricted:
        answer = restricted.get("/", params={"query": "SELECT currentUser()"})
        assert answer.text == "course_user\n", answer.text


def test_a_get_that_writes_is_refused_with_164(served, http):
    table = f"default.get_write_{uuid.uuid4().hex[:8]}"
    answer = http.get("/", params={"query": f"CREATE TABLE {table} (a UInt8) ENGINE = Memory"})
    assert answer.status_code == 403 and answer.headers["x-clickhouse-exception-code"] == "164"
    assert "method GET implies readonly" in answer.text
    assert http.get("/", params={"query": f"EXISTS TABLE {table}"}).text == "0\n"
    # Reads and settings still work by GET; the same statement by POST writes.
    assert http.get("/", params={"query": "SELECT 1", "max_threads": "1"}).text == "1\n"
    assert http.post("/", params={"query": f"CREATE TABLE {table} (a UInt8) ENGINE = Memory"}).status_code == 200
    assert http.post("/", params={"query": f"DROP TABLE {table}"}).status_code == 200


def test_summary_reports_rows_read_written_and_of_the_result(http):
    answer = http.get("/", params={"query": "SELECT count() FROM numbers(100000)"})
    summary = json.loads(answer.headers["x-clickhouse-summary"])
    assert summary["read_rows"] == "100000" and summary["read_bytes"] == "800000"
    assert summary["result_rows"] == "1"
    table = f"default.summary_{uuid.uuid4().hex[:8]}"
    http.post("/", content=f"CREATE TABLE {table} (a UInt32) ENGINE = Memory")
    inserted = http.post("/", params={"query": f"INSERT INTO {table} FORMAT TSV"}, content=b"1\n2\n3\n")
    assert json.loads(inserted.headers["x-clickhouse-summary"])["written_rows"] == "3"
    http.post("/", content=f"DROP TABLE {table}")


def test_progress_headers_when_asked_for(http):
    plain = http.get("/", params={"query": "SELECT sum(number) FROM numbers(50000)"})
    assert "x-clickhouse-progress" not in plain.headers
    answer = http.get("/", params={"query": "SELECT sum(number) FROM numbers(50000)",
                                   "send_progress_in_http_headers": "1"})
    progress = json.loads(answer.headers["x-clickhouse-progress"])
    assert progress["read_rows"] == "50000"


@pytest.mark.parametrize("name", ["compress", "decompress"])
def test_native_compression_is_refused_clearly(http, name):
    answer = http.get("/", params={"query": "SELECT 1", name: "1"})
    assert answer.status_code == 400 and answer.headers["x-clickhouse-exception-code"] == "48"
    assert "enable_http_compression" in answer.text


# ---------------------------------------------------------------------------
# An error in the middle of a stream, in ClickHouse's tagged framing
# ---------------------------------------------------------------------------

MID_STREAM_ERROR = ("SELECT number, throwIf(number = 250000, 'boom mid-stream') AS t FROM numbers(300000) "
                    "SETTINGS max_block_size = 1000")


def _tagged_body(served, user: str, password: str, sql: str) -> tuple[dict, bytes]:
    with httpx.Client(base_url=served.url, auth=(user, password), timeout=60) as client:
        with client.stream("POST", "/", content=sql) as answer:
            headers = dict(answer.headers)
            body = b""
            with pytest.raises(httpx.HTTPError):  # the response is broken on purpose
                for piece in answer.iter_raw():
                    body += piece
    return headers, body


def test_an_error_mid_stream_is_framed_with_the_exception_tag(served):
    headers, body = _tagged_body(served, served.admin_user, served.admin_password, MID_STREAM_ERROR)
    tag = headers["x-clickhouse-exception-tag"]
    assert len(tag) == 16
    assert body.startswith(b"0\t0\n")
    block = body[body.index(b"\r\n__exception__\r\n"):]
    # \r\n__exception__\r\n<tag>\r\n<message>\n<length> <tag>\r\n__exception__\r\n
    opening, marker, first_tag, text, closing_marker = block.split(b"\r\n")[:5]
    assert (opening, marker, first_tag, closing_marker) == (b"", b"__exception__", tag.encode(), b"__exception__")
    message, _, tail = text.rpartition(b"\n")
    assert b"boom mid-stream" in message and message.startswith(b"Code: 395")
    length, closing = tail.split(b" ")
    assert closing == tag.encode() and int(length) == len(message)
    assert block.endswith(tag.encode() + b"\r\n__exception__\r\n")


def test_clickhouse_connect_sees_the_mid_stream_error(served):
    client = served.client()
    with pytest.raises(Exception) as caught:
        with client.query_row_block_stream(MID_STREAM_ERROR) as stream:
            for _ in stream:
                pass
    assert "boom mid-stream" in str(caught.value)
    client.close()


# ---------------------------------------------------------------------------
# Forms and external data tables
# ---------------------------------------------------------------------------

MOVIES = b"movie,year\n12 Angry Men,1957\nMemento,2000\nScarface,1983\n"


def test_external_data_tables_from_clickhouse_connect(served, tmp_path: Path):
    from clickhouse_connect.driver.external import ExternalData

    (tmp_path / "movies.csv").write_bytes(MOVIES)
    data = ExternalData(str(tmp_path / "movies.csv"), fmt="CSVWithNames", structure=["movie String", "year UInt16"])
    client = served.client()
    rows = client.query("SELECT movie FROM movies WHERE year > 1980 ORDER BY movie", external_data=data).result_rows
    assert rows == [("Memento",), ("Scarface",)]
    data.add_file(str(tmp_path / "movies.csv"), file_name="pairs.csv", fmt="CSVWithNames", types="String,UInt16")
    assert client.query("SELECT count() FROM pairs", external_data=data).result_rows == [(3,)]
    # The temporary tables do not outlive their query on the pooled sessions.
    for _ in range(4):
        assert client.query("EXISTS TEMPORARY TABLE movies").result_rows == [(0,)]
    client.close()


def test_form_fields_are_parameters_and_bad_external_tables_say_why(served, http):
    answer = http.post("/", files={"query": (None, "SELECT {x:UInt8} + 1"), "param_x": (None, "41")})
    assert answer.text == "42\n", answer.text
    missing = http.post("/", params={"query": "SELECT * FROM t"}, files={"t": ("t.tsv", b"1\n")})
    assert missing.status_code == 400 and "t_structure or t_types" in missing.text
    bad_type = http.post("/", params={"query": "SELECT * FROM t", "t_types": "UInt8) ENGINE = Log"},
                         files={"t": ("t.tsv", b"1\n")})
    assert bad_type.status_code == 400 and "cannot read the type" in bad_type.text
    with httpx.Client(base_url=served.url, auth=("course_user", PASSWORD), timeout=30) as restricted:
        refused = restricted.post("/", params={"query": "SELECT * FROM t", "t_types": "UInt8"},
                                  files={"t": ("t.tsv", b"1\n")})
        assert refused.headers["x-clickhouse-exception-code"] == "164", refused.text


# ---------------------------------------------------------------------------
# Sessions: one request at a time, 373 at once for a second one
# ---------------------------------------------------------------------------

def test_a_second_request_in_a_busy_session_fails_with_373_at_once(served, http):
    session_id = f"busy-{uuid.uuid4()}"
    thread, out = _in_background(http, query=SLOW, session_id=session_id)
    time.sleep(0.5)
    started = time.monotonic()
    second = http.post("/", params={"query": "SELECT 1", "session_id": session_id})
    assert second.headers.get("x-clickhouse-exception-code") == "373", second.text
    assert time.monotonic() - started < 0.5
    thread.join(10)
    assert out[0].status_code == 200


def test_back_to_back_requests_in_a_session_never_see_373(served):
    client = served.client(session_id=f"seq-{uuid.uuid4()}")
    for n in range(100):
        assert client.command(f"SELECT {n}") == n
    client.close()


# ---------------------------------------------------------------------------
# Finding 7: slow readers do not delay anyone else
# ---------------------------------------------------------------------------

def test_slow_readers_do_not_delay_other_users(served):
    import base64

    token = base64.b64encode(f"{served.admin_user}:{served.admin_password}".encode()).decode()
    readers = []
    body = b"SELECT number, repeat('x', 1000) FROM numbers(2000000) FORMAT TSV"
    for _ in range(4):  # more than serve.workers (the cores)
        sock = socket.create_connection((served.host, served.port))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nAuthorization: Basic " + token.encode()
                     + b"\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        sock.recv(1000)  # the answer started: the reader now stops reading
        readers.append(sock)
    time.sleep(1.0)  # their socket buffers are full: the server is blocked writing to them
    try:
        with httpx.Client(base_url=served.url, auth=("course_user", PASSWORD), timeout=30) as other:
            for _ in range(5):
                started = time.monotonic()
                assert other.get("/", params={"query": "SELECT count() FROM events"}).status_code == 200
                assert time.monotonic() - started < 2.0
        with httpx.Client(base_url=served.url, auth=(served.admin_user, served.admin_password), timeout=30) as admin:
            started = time.monotonic()
            assert admin.get("/", params={"query": "SELECT 1"}).text == "1\n"
            assert time.monotonic() - started < 2.0
    finally:
        for sock in readers:
            sock.close()


def test_current_user_in_a_restricted_users_events_filter_still_filters(served):
    # The rewrite happens before the access check: what is checked is what runs.
    with httpx.Client(base_url=served.url, auth=("course_user", PASSWORD), timeout=30) as restricted:
        answer = restricted.get("/", params={"query": "SELECT count() FROM events WHERE currentUser() != ''"})
        assert answer.text == "3\n", answer.text
    assert C1


# ---------------------------------------------------------------------------
# Found by clickhouse-connect's own suite (docs/conformance.md)
# ---------------------------------------------------------------------------

def test_binary_bound_into_the_query_text_reaches_the_engine_unchanged(served):
    # clickhouse-connect binds bytes into a $name$...$name$ string, raw: not UTF-8.
    client = served.client()
    data = client.raw_query("SELECT number AS n FROM numbers(250) FORMAT Parquet")
    assert any(byte > 0x7F for byte in data)
    result = client.query("SELECT count(), sum(n) FROM format(Parquet, $p$) ", parameters={"$p$": data})
    assert result.result_rows == [(250, sum(range(250)))]
    client.close()


def test_database_holds_for_its_request_in_a_client_session(served):
    session_id = f"db-{uuid.uuid4()}"
    with httpx.Client(base_url=served.url, auth=(served.admin_user, served.admin_password), timeout=30) as http:
        def current(**params) -> str:
            return http.get("/", params={"query": "SELECT currentDatabase()", "session_id": session_id,
                                         **params}).text.strip()

        assert current() == "openedx"
        assert current(database="system") == "system"
        assert current() == "openedx"  # the request's database did not stay
        http.post("/", params={"session_id": session_id}, content="USE system")
        assert current() == "system"  # the session's USE did
