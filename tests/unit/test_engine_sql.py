"""Quoting helpers and the one error translator, on sample texts (no engine needed)."""

from __future__ import annotations

import pytest

from cairn.engine import engine_error, setting_literal, sql_identifier, sql_string
from cairn.engine.errors import unreachable
from cairn.engine.sql import column_list, settings_clause
from cairn.errors import EngineError, EngineUnavailable


@pytest.mark.parametrize("value, literal", [
    ("plain", "'plain'"),
    ("it's", "'it\\'s'"),
    ("back\\slash", "'back\\\\slash'"),
    ("\\'", "'\\\\\\''"),
    (42, "'42'"),
    ("", "''"),
    ("été ✓", "'été ✓'"),
])
def test_sql_string(value, literal):
    assert sql_string(value) == literal


@pytest.mark.parametrize("name, quoted", [
    ("events", "`events`"),
    ("odd`name", "`odd\\`name`"),
    ("back\\slash", "`back\\\\slash`"),
    ("with space", "`with space`"),
])
def test_sql_identifier(name, quoted):
    assert sql_identifier(name) == quoted


@pytest.mark.parametrize("value, literal", [
    (True, "1"), (False, "0"), (0, "0"), (32, "32"), (0.5, "0.5"),
    ("token-1", "'token-1'"), ("a'b", "'a\\'b'"),
])
def test_setting_literal(value, literal):
    assert setting_literal(value) == literal


def test_settings_clause_and_column_list():
    assert settings_clause(None) == "" and settings_clause({}) == ""
    assert settings_clause({"insert_deduplication_token": "t'1", "async_insert": True, "max_threads": 2}) == \
        " SETTINGS `insert_deduplication_token` = 't\\'1', `async_insert` = 1, `max_threads` = 2"
    assert column_list(None) == "" and column_list([]) == ""
    assert column_list(["id", "na`me"]) == " (`id`, `na\\`me`)"


HTTP = ("Received ClickHouse exception, code: 60, server response: Code: 60. DB::Exception: Table "
        "openedx.nope does not exist. (UNKNOWN_TABLE) (version 24.8.4.13 (official build)) "
        "(for url http://127.0.0.1:8123)")
CHDB_STREAM = ("Streaming query failed: Code: 62. DB::Exception: Code: 62. DB::Exception: Syntax error: "
               "failed at position 1 ('SELEC'). (SYNTAX_ERROR)")
CHDB_READONLY = "Code: 164. DB::Exception: Cannot modify 'max_threads' setting in readonly mode. (READONLY). (READONLY)"


@pytest.mark.parametrize("text, message, code", [
    (HTTP, "Code: 60. DB::Exception: Table openedx.nope does not exist. (UNKNOWN_TABLE) (for url "
           "http://127.0.0.1:8123)", 60),
    (CHDB_STREAM, "Code: 62. DB::Exception: Syntax error: failed at position 1 ('SELEC'). (SYNTAX_ERROR)", 62),
    (CHDB_READONLY, "Code: 164. DB::Exception: Cannot modify 'max_threads' setting in readonly mode. (READONLY)", 164),
    ("Streaming insert finish failed: Code: 27. DB::Exception: Cannot parse input. (CANNOT_PARSE_INPUT)"
     " (version 24.1.1.1)", "Code: 27. DB::Exception: Cannot parse input. (CANNOT_PARSE_INPUT)", 27),
    ("  something odd\nhappened  ", "something odd happened", None),
])
def test_engine_error_keeps_clickhouse_text_on_one_line(text, message, code):
    error = engine_error(RuntimeError(text))
    assert type(error) is EngineError
    assert (str(error), error.code) == (message, code)


def test_engine_error_passes_engine_errors_through():
    original = EngineUnavailable("cannot reach ClickHouse at h:1: timed out")
    assert engine_error(original) is original


@pytest.mark.parametrize("text, cause", [
    ("HTTPConnectionPool(host='127.0.0.1', port=1): Max retries exceeded ([Errno 111] Connection refused)",
     "connection refused"),
    ("HTTPConnectionPool(host='nohost', port=8123): Max retries exceeded (Name or service not known)", "unknown host"),
    ("Read timed out. (read timeout=10)", "timed out"),
    ("('Connection aborted.', RemoteDisconnected('Remote end closed connection without response'))",
     "('Connection aborted.', RemoteDisconnected('Remote end closed connection without response'))"),
])
def test_engine_error_with_an_endpoint_reports_connection_failures(text, cause):
    error = engine_error(ConnectionError(text), "127.0.0.1:1")
    assert type(error) is EngineUnavailable
    assert str(error) == f"cannot reach ClickHouse at 127.0.0.1:1: {cause}"
    assert error.code is None


def test_a_clickhouse_error_over_http_is_not_a_connection_failure():
    text = "Code: 159. DB::Exception: Timeout exceeded: elapsed 5 seconds, maximum: 5. (TIMEOUT_EXCEEDED)"
    error = engine_error(RuntimeError(text), "127.0.0.1:8123")
    assert type(error) is EngineError and error.code == 159
    # Without an endpoint (chDB), connection words are just part of the message.
    assert type(engine_error(RuntimeError("Connection refused"))) is EngineError


def test_unreachable_names_the_cause_or_the_cleaned_message():
    assert str(unreachable(OSError("Code: 516. DB::Exception: x: Authentication failed (version 1.2)"), "h:9")) == \
        "cannot reach ClickHouse at h:9: authentication failed"
    long = unreachable(OSError("Code: 999. DB::Exception: " + "y" * 500), "h:9")
    assert str(long) == "cannot reach ClickHouse at h:9: " + ("Code: 999. DB::Exception: " + "y" * 500)[:300]
