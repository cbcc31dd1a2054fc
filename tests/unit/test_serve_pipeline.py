"""The query pipeline and session pools of `cairn serve`, on fake sessions (no engine)."""

from __future__ import annotations

import contextlib
import io
import threading
import time
from email.message import Message
from types import SimpleNamespace

import pytest

from cairn.serve.options import ServeOptions
from cairn.serve.pipeline import QueryPipeline
from cairn.serve.queries import RunningQueries
from cairn.serve.sessions import FairSlots, Principal, SessionPool
from cairn.serve.wire import QueryRequest, RequestBody

ADMIN = Principal("cairn", True)


class FakeSession:
    """Records what the pipeline sends to the engine."""

    def __init__(self, data: bytes = b"1\n"):
        self.calls: list[tuple] = []
        self.data = data
        self.current_db = "openedx"
        self.url_settings: dict[str, str] = {}
        self.closed = False

    def execute(self, sql, fmt="TabSeparated", params=None):
        self.calls.append(("execute", sql, fmt))
        return SimpleNamespace(data=b"" if sql.startswith(("SET", "USE", "CREATE")) else self.data,
                               rows_read=1, bytes_read=2, rows_written=0, bytes_written=0)

    def execute_marked(self, sql, fmt="TabSeparated", params=None, tag=None):
        return self.execute(sql, fmt, params)

    def insert(self, sql, fmt, chunks):
        data = b"".join(chunks)
        self.calls.append(("insert", sql, fmt, data))
        return SimpleNamespace(rows_written=data.count(b"\n"), bytes_written=len(data))

    def stream_marked(self, sql, fmt, params, killer=None, tag=None):
        self.calls.append(("stream", sql, fmt))
        return SimpleNamespace(cancel=lambda: None, close=lambda: None, interrupt=lambda: None)

    def close(self):
        self.closed = True


class FakeRespond:
    def __init__(self):
        self.sent: list[tuple] = []
        self.progress = False
        self.on_finish = None
        self.error_filter = None

    def send_summary(self, written_rows, written_bytes, query_id, read_rows=0, read_bytes=0):
        self.sent.append(("summary", written_rows))

    def send_result(self, data, fmt, query_id, summary_header=None):
        self.sent.append(("result", fmt, data))

    def send_stream(self, stream, fmt, query_id, started, encoding, limit, wait_end):
        self.sent.append(("stream", fmt, encoding))


def _run(sql_param: str | None, body: bytes, normalised: dict[str, str], named: bool = False,
         target: str = "", principal: Principal = ADMIN):
    session, throwaway = FakeSession(), FakeSession()

    @contextlib.contextmanager
    def session_for(*args, **kwargs):
        yield session, named

    backend = SimpleNamespace(database="openedx", tables=lambda: ("events",), session=session_for, killer=None,
                              named=lambda principal, session_id: None,
                              engine=SimpleNamespace(open_session=lambda: throwaway))
    server = SimpleNamespace(backend=backend, options=ServeOptions(),
                             statements=SimpleNamespace(normalised=lambda s, sql: normalised.get(sql, "")),
                             queries=RunningQueries(lambda tag: None),
                             monitor=SimpleNamespace(watch=lambda sock, stream: 1, unwatch=lambda token: None))
    respond = FakeRespond()
    query = "" if sql_param is None else "query=" + sql_param.replace(" ", "%20") + "&"
    request = QueryRequest.from_target(f"/?{query}{target}")
    headers = Message()
    headers["Content-Length"] = str(len(body))
    QueryPipeline(server, respond, None, "gzip").run(principal, request, RequestBody(headers, io.BytesIO(body), 1 << 20))
    return session, throwaway, respond


def test_inline_insert_goes_to_the_inserter_with_its_format():
    session, _, respond = _run(None, b"INSERT INTO t FORMAT CSV\n1,a\n2,b\n",
                               {"INSERT INTO t FORMAT CSV": "INSERT INTO t FORMAT CSV"})
    assert session.calls == [("insert", "INSERT INTO t", "CSV", b"1,a\n2,b\n")]
    assert respond.sent == [("summary", 2)]


def test_url_insert_with_a_body_defaults_to_values():
    session, _, respond = _run("INSERT INTO t", b"(1), (2)", {"INSERT INTO t": "INSERT INTO t"})
    assert session.calls == [("insert", "INSERT INTO t", "Values", b"(1), (2)")]
    assert respond.sent == [("summary", 0)]


def test_a_wrong_inline_guess_runs_the_whole_body_as_text():
    # The bytes looked like INSERT ... FORMAT X, but ClickHouse sees no FORMAT clause there.
    text = "INSERT INTO t SELECT 1 AS format\nFORMAT x\n"
    session, _, respond = _run(None, text.encode(), {"INSERT INTO t SELECT 1 AS format\nFORMAT x":
                                                     "INSERT INTO t SELECT 1 AS format"})
    assert session.calls == [("execute", text, "TabSeparated")]
    assert respond.sent == [("summary", 0)]


def test_set_outside_a_session_runs_on_a_throwaway_session():
    session, throwaway, respond = _run("SET max_threads = 1", b"", {"SET max_threads = 1": "SET max_threads = 1"})
    assert session.calls == [] and throwaway.calls == [("execute", "SET max_threads = 1", "TabSeparated")]
    assert throwaway.closed and respond.sent == [("summary", 0)]
    session, throwaway, _ = _run("SET max_threads = 1", b"", {"SET max_threads = 1": "SET max_threads = 1"},
                                 named=True)
    assert throwaway.calls == [] and session.calls == [("execute", "SET max_threads = 1", "TabSeparated")]


def test_select_streams_in_the_format_of_its_clause():
    sql = "select 1 format CSV"
    session, _, respond = _run(sql, b"", {sql: "SELECT 1 FORMAT CSV"}, target="enable_http_compression=1")
    assert session.calls == [("stream", sql, "CSV")]
    assert respond.sent == [("stream", "CSV", "gzip")]


def test_a_document_format_runs_whole_under_the_result_cap():
    # Streamed, chDB would give one JSON document per block: the result is made whole instead.
    sql = "select 1 format JSON"
    session, _, respond = _run(sql, b"", {sql: "SELECT 1 FORMAT JSON"})
    assert session.calls == [("execute", "SET max_result_bytes = '268435456'", "TabSeparated"),
                             ("execute", sql, "JSON")]
    assert respond.sent == [("result", "JSON", b"1\n")]


def test_a_back_quoted_format_name_is_recognised():
    # ClickHouse's normalised text back-quotes format names that are keywords.
    sql = "select 1 format Values"
    session, _, respond = _run(sql, b"", {sql: "SELECT 1 FORMAT `Values`"})
    assert session.calls == [("stream", sql, "Values")]


def test_show_runs_whole_in_the_default_format():
    session, _, respond = _run("SHOW TABLES", b"", {"SHOW TABLES": "SHOW TABLES"}, target="default_format=CSV")
    assert session.calls == [("execute", "SHOW TABLES", "CSV")]
    assert respond.sent == [("result", "CSV", b"1\n")]


def test_unparsed_text_runs_so_the_engine_reports_its_error():
    session, _, respond = _run("SELEC 1", b"", {})
    assert session.calls == [("execute", "SELEC 1", "TabSeparated")]
    assert respond.sent[0][:2] == ("result", "TabSeparated")


def test_ddl_is_a_command_answered_with_a_summary():
    sql = "CREATE TABLE x (a Int8) ENGINE = Memory"
    session, _, respond = _run(sql, b"", {sql: sql})
    assert session.calls == [("execute", sql, "TabSeparated")] and respond.sent == [("summary", 0)]


def test_admin_url_settings_are_exactly_the_requests():
    session, _, _ = _run("SELECT 1", b"", {"SELECT 1": "SELECT 1"}, target="max_threads=2&readonly=1")
    assert session.calls[0] == ("execute", "SET max_threads = '2'", "TabSeparated")
    assert session.url_settings == {"max_threads": "2"}  # readonly would pin the pooled session


def test_a_request_database_is_used():
    session, _, _ = _run("SELECT 1", b"", {"SELECT 1": "SELECT 1"}, target="database=other")
    assert session.calls[0] == ("execute", "USE `other`", "TabSeparated") and session.current_db == "other"


def test_empty_query():
    from cairn.serve.wire import HttpError

    with pytest.raises(HttpError) as caught:
        _run("%20%20", b"", {})
    assert caught.value.code == 62


# ---------------------------------------------------------------------------
# Session pools
# ---------------------------------------------------------------------------

def test_pool_reuses_sessions_and_drops_a_broken_one():
    made: list[FakeSession] = []
    pool = SessionPool(lambda: made.append(FakeSession()) or made[-1], 2)
    with pool.acquire() as first:
        pass
    with pool.acquire() as again:
        assert again is first  # idle sessions are handed out again
    with pytest.raises(RuntimeError):
        with pool.acquire() as broken:
            raise RuntimeError("cancelled")
    assert broken.closed  # never handed to the next request
    with pool.acquire() as fresh:
        assert fresh is not broken
    pool.close()
    assert fresh.closed and len(made) == 2


def test_fair_slots_serve_waiters_in_arrival_order():
    slots = FairSlots(1)
    order: list[int] = []
    slots.__enter__()

    def wait(n: int) -> None:
        with slots:
            order.append(n)

    threads = []
    for n in range(4):
        thread = threading.Thread(target=wait, args=(n,))
        thread.start()
        threads.append(thread)
        time.sleep(0.05)  # arrive one after the other
    slots.__exit__(None, None, None)
    for thread in threads:
        thread.join(5)
    assert order == [0, 1, 2, 3]
