"""The pure parts of the query log (cairn/serve/query_log.py): masking, cutting, outcomes, the bounded buffer.

The buffer is driven with a writer of our own (a list, or one that fails on purpose):
the real writer and the flusher through a running `cairn serve` are in
tests/integration/test_serve_query_log.py.
"""

from __future__ import annotations

import json
import threading
import time

import pytest

from cairn.config import load_config
from cairn.errors import ConfigError, EngineError
from cairn.serve import settings as serve_settings
from cairn.serve.query_log import (COLUMNS, QueryLog, QueryRecord, client_name, encode, head, mask_secrets,
                                   outcome_of)


@pytest.mark.parametrize("sql", [
    "CREATE TABLE t (a Int) ENGINE = MySQL('db:3306', 'edx', 'users', 'root', 's3cr3t')",
    "select * from mysql('db:3306', 'edx', 'users', 'root', 's3cr3t')",
    "SELECT * FROM s3('https://bucket/x.csv', 'KEYID', 's3cr3t')",
    "CREATE USER bob IDENTIFIED WITH sha256_password BY 's3cr3t'",
    "INSERT INTO t SELECT * FROM remoteSecure('h:9440', db.t, 'u', 's3cr3t')",
    "SELECT * FROM url('https://u:s3cr3t@example.org/x')",
])
def test_statements_that_may_carry_credentials_lose_their_literals(sql):
    masked = mask_secrets(sql)
    assert "s3cr3t" not in masked and "'[HIDDEN]'" in masked


@pytest.mark.parametrize("sql", [
    "SELECT count() FROM events WHERE name = 'password_reset'",
    "SELECT 'it''s', decodeURLComponent(path) FROM events",
])
def test_ordinary_statements_are_kept_as_they_are(sql):
    assert mask_secrets(sql) == sql


def test_head_cuts_on_a_character_boundary_and_replaces_bytes_that_were_not_utf8():
    assert head("é" * 10, 5) == "éé"
    assert head("abc", 4096) == "abc"
    assert head("a\udcff", 10) == "a?"  # a surrogate from surrogateescape
    assert len(head("x" * 10_000_000, 4096).encode()) == 4096


def test_the_client_is_superset_for_a_delegated_login_else_the_user_agents_product():
    assert client_name("clickhouse-connect/0.9 (lv:py/3.11)", delegated=True) == "superset"
    assert client_name("clickhouse-connect/0.9 (lv:py/3.11)", delegated=False) == "clickhouse-connect/0.9"
    assert client_name(None, delegated=False) == ""


class _Gone(BrokenPipeError):
    pass


@pytest.mark.parametrize("error, killed, expected", [
    (None, False, ("ok", 0)),
    (None, True, ("ok", 0)),  # killed too late: the client had its whole answer
    (EngineError("Code: 394. Query was cancelled", 394), True, ("killed", 394)),
    (EngineError("Code: 394. Query was cancelled", 394), False, ("cancelled", 394)),
    (EngineError("Code: 202. The server is shutting down", 202), False, ("cancelled", 202)),
    (_Gone(), False, ("cancelled", 394)),
    (EngineError("Code: 47. Unknown identifier\nmore", 47), False, ("error", 47)),
    (ValueError("boom"), False, ("error", 1001)),
])
def test_outcomes(error, killed, expected):
    outcome, code, text = outcome_of(error, killed)
    assert (outcome, code) == expected
    assert "\n" not in text


def test_a_record_becomes_one_row_of_every_column():
    record = QueryRecord("ann", "superset", "10.0.0.1", "q-1", started_at=1767225600.25)
    record.statement("SELECT 1 FORMAT JSON")
    record.read(10, 80, 1)
    record.end(None)
    row = json.loads(encode([record]))
    assert tuple(row) == COLUMNS
    assert row["started_at"] == "2026-01-01 00:00:00.250" and row["kind"] == "select" and row["outcome"] == "ok"
    assert row["rows_read"] == 10 and row["result_rows"] == 1 and row["duration_ms"] >= 0


def _records(n: int, size: int = 0) -> list[QueryRecord]:
    out = []
    for i in range(n):
        record = QueryRecord("ann", query_id=f"q{i}")
        record.statement("SELECT " + "1" * size if size else f"SELECT {i}")
        record.end(None)
        out.append(record)
    return out


def test_records_are_written_in_batches_off_the_submitting_thread():
    batches: list[tuple[str, bytes]] = []
    log = QueryLog(lambda data: batches.append((threading.current_thread().name, data)), interval=0.05)
    log.start()
    for record in _records(5):
        log.submit(record)
    deadline = time.monotonic() + 5
    while log.written < 5 and time.monotonic() < deadline:
        time.sleep(0.01)
    log.close()
    assert log.written == 5 and all(name == "cairn-query-log" for name, _ in batches)
    assert [json.loads(line)["query_id"] for _, data in batches for line in data.splitlines()] == \
        [f"q{i}" for i in range(5)]


def test_a_full_batch_is_written_before_the_interval():
    written: list[bytes] = []
    log = QueryLog(written.append, interval=60, flush_rows=10)
    log.start()
    for record in _records(10):
        log.submit(record)
    deadline = time.monotonic() + 5
    while not written and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(written) == 1 and len(written[0].splitlines()) == 10
    log.close()


def test_close_writes_what_is_waiting():
    written: list[bytes] = []
    closed = []
    log = QueryLog(written.append, interval=3600, on_close=lambda: closed.append(True))
    log.start()
    for record in _records(3):
        log.submit(record)
    assert log.pending() == 3 and not written
    log.close()
    assert len(b"".join(written).splitlines()) == 3 and closed == [True]


def test_a_failing_writer_never_raises_keeps_the_records_and_retries():
    attempts: list[bytes] = []
    fail = [True]

    def write(data: bytes) -> None:
        attempts.append(data)
        if fail[0]:
            raise EngineError("Code: 60. Unknown table _query_log", 60)

    log = QueryLog(write, interval=3600)
    for record in _records(4):
        log.submit(record)
    assert log.flush() is False and log.pending() == 4 and log.failures == 1
    log.submit(_records(1)[0])
    fail[0] = False
    assert log.flush() is True and log.written == 5 and log.pending() == 0
    assert len(attempts[-1].splitlines()) == 5


def test_memory_stays_bounded_when_the_engine_cannot_keep_up():
    log = QueryLog(lambda data: None, interval=3600, max_pending_bytes=100_000)
    for record in _records(1000, size=4000):
        log.submit(record)
    assert log.pending() * (4000 + 256) <= 100_000 + 4500
    assert log.dropped == 1000 - log.pending()
    # The newest records are the ones kept.
    assert log._pending[-1].query_id == "q999"  # noqa: SLF001


def test_the_query_log_settings(tmp_path):
    options = serve_settings.options_from(load_config(environ={"CAIRN_DATA_DIR": str(tmp_path)}, config_file=None))
    assert options.query_log is True and options.query_log_ttl_days == 30 and options.query_log_flush_interval == 5
    options = serve_settings.options_from(load_config(
        environ={"CAIRN_DATA_DIR": str(tmp_path), "CAIRN_SERVE_QUERY_LOG": "false",
                 "CAIRN_SERVE_QUERY_LOG_TTL_DAYS": "7"}, config_file=None))
    assert options.query_log is False and options.query_log_ttl_days == 7
    with pytest.raises(ConfigError):
        load_config(environ={"CAIRN_DATA_DIR": str(tmp_path), "CAIRN_SERVE_QUERY_LOG_TTL_DAYS": "0"},
                    config_file=None)


def test_the_query_log_is_internal_and_filtered_to_nothing_for_restricted_users():
    from cairn.serve.access import Scope, rule_for, session_setup, visible_tables

    assert rule_for("_query_log").kind == "internal"
    assert "_query_log" not in visible_tables(["events", "_query_log"])
    setup = session_setup(Scope(("course-v1:A+B+C",)), "openedx", ["events", "_query_log"])
    assert "'openedx._query_log': '0'" in setup[0]
