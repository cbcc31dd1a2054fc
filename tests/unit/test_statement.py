"""Statement classification (cairn.serve.statement): one classifier for the server and the shell."""

from __future__ import annotations

import pytest

from cairn.serve.statement import DEFAULT_FORMAT, Statement, split_inline_insert


@pytest.mark.parametrize("text, keyword, kind", [
    ("SELECT 1", "SELECT", "select"),
    ("select 1", "SELECT", "select"),
    ("WITH x AS (SELECT 1) SELECT * FROM x", "WITH", "select"),
    ("SHOW TABLES", "SHOW", "show"),
    ("DESCRIBE TABLE events", "DESCRIBE", "describe"),
    ("desc events", "DESC", "describe"),
    ("EXISTS TABLE events", "EXISTS", "exists"),
    ("EXPLAIN SELECT 1", "EXPLAIN", "explain"),
    ("CHECK TABLE events", "CHECK", "check"),
    ("INSERT INTO t VALUES (1)", "INSERT", "insert"),
    ("SET max_threads = 1", "SET", "set"),
    ("USE openedx", "USE", "use"),
    ("CREATE TABLE t (x Int8) ENGINE = Memory", "CREATE", "ddl"),
    ("ALTER TABLE t ADD COLUMN y Int8", "ALTER", "ddl"),
    ("DROP TABLE IF EXISTS t", "DROP", "ddl"),
    ("TRUNCATE TABLE t", "TRUNCATE", "ddl"),
    ("SYSTEM FLUSH LOGS", "SYSTEM", "other"),
    ("KILL QUERY WHERE 1", "KILL", "other"),
    ("SELECTX 1", "SELECTX", "other"),
    ("", "", "empty"),
    ("   \n\t", "", "empty"),
    ("-- only a comment", "", "other"),
])
def test_kind_of_the_first_keyword(text, keyword, kind):
    statement = Statement.parse(text)
    assert (statement.keyword, statement.kind) == (keyword, kind)


@pytest.mark.parametrize("text", [
    "-- a comment\nSELECT 1",
    "/* block */ SELECT 1",
    "/* multi\nline\ncomment */\n  -- and another\n\tSELECT 1",
    "\n\n   SELECT\n  1\nFROM t",
])
def test_leading_comments_and_whitespace_are_skipped(text):
    statement = Statement.parse(text)
    assert statement.kind == "select" and statement.streams and not statement.parenthesised


@pytest.mark.parametrize("text", ["(SELECT 1)", "((select 1) UNION ALL (SELECT 2))", "( /* c */ SELECT 1)",
                                  "-- c\n  (\n  WITH 1 AS x SELECT x)"])
def test_leading_parentheses(text):
    statement = Statement.parse(text)
    assert statement.parenthesised
    assert statement.kind == "select" and statement.streams and statement.returns_rows


def test_what_streams_and_what_returns_rows():
    # chDB streams SELECT only; SHOW, DESCRIBE, EXPLAIN... return rows but run whole.
    streams = {t: Statement.parse(t).streams for t in ("SELECT 1", "WITH 1 AS x SELECT x", "SHOW TABLES",
                                                       "DESC t", "EXPLAIN SELECT 1", "INSERT INTO t VALUES (1)")}
    assert streams == {"SELECT 1": True, "WITH 1 AS x SELECT x": True, "SHOW TABLES": False, "DESC t": False,
                       "EXPLAIN SELECT 1": False, "INSERT INTO t VALUES (1)": False}
    rows = [t for t in ("SELECT 1", "SHOW TABLES", "DESC t", "EXISTS t", "EXPLAIN SELECT 1", "CHECK TABLE t",
                        "INSERT INTO t VALUES (1)", "CREATE TABLE t (x Int8)", "SET a = 1", "USE db", "SYSTEM FLUSH LOGS",
                        "")
            if Statement.parse(t).returns_rows]
    assert rows == ["SELECT 1", "SHOW TABLES", "DESC t", "EXISTS t", "EXPLAIN SELECT 1", "CHECK TABLE t"]


def test_set_and_use_change_the_session():
    assert Statement.parse("SET max_threads = 1").changes_session
    assert Statement.parse("use openedx").changes_session
    assert not Statement.parse("SELECT 1").changes_session
    assert not Statement.parse("SHOW SETTINGS LIKE 'max%'").changes_session


def test_format_clause_at_the_end_of_normalised_text():
    statement = Statement.parse("SELECT id FROM t WHERE x = 1 FORMAT JSONEachRow", normalised=True)
    assert statement.format == "JSONEachRow"
    assert statement.core == "SELECT id FROM t WHERE x = 1"
    assert statement.output_format("CSV") == "JSONEachRow"
    # ClickHouse's single-line form writes the keyword in upper case: anything else is not the clause.
    lower = Statement.parse("SELECT 1 AS format", normalised=True)
    assert lower.format is None and lower.core == "SELECT 1 AS format"
    inside = Statement.parse("SELECT 'x FORMAT CSV' AS s", normalised=True)
    assert inside.format is None


def test_format_clause_as_typed():
    assert Statement.parse("select 1 format CSV").format == "CSV"
    assert Statement.parse("SELECT 1\nFORMAT\n  JSON ;  ").format == "JSON"
    assert Statement.parse("SELECT 1\nFORMAT\n  JSON ;  ").core == "SELECT 1"
    assert Statement.parse("SELECT 1 FORMAT Pretty -- trailing comment").format is None
    assert Statement.parse("SELECT format FROM t").format is None
    assert Statement.parse("SELECT informat FROM t").format is None


def test_output_format_falls_back_to_the_default_then_tabseparated():
    statement = Statement.parse("SELECT 1")
    assert statement.output_format("JSON") == "JSON"
    assert statement.output_format(None) == DEFAULT_FORMAT == "TabSeparated"


def test_multi_line_statement():
    text = "WITH\n  recent AS (\n    SELECT * FROM events\n  )\nSELECT count()\nFROM recent\nFORMAT TSV"
    statement = Statement.parse(text)
    assert (statement.kind, statement.format, statement.streams) == ("select", "TSV", True)
    assert statement.core == text[:text.index("FORMAT")].rstrip()


def test_insert_with_a_body():
    with_body = Statement.parse("INSERT INTO t FORMAT CSV", normalised=True, has_body=True)
    assert with_body.inserts_body and with_body.format == "CSV" and with_body.core == "INSERT INTO t"
    assert not Statement.parse("INSERT INTO t FORMAT CSV", normalised=True).inserts_body
    assert not Statement.parse("SELECT 1", normalised=True, has_body=True).inserts_body


def test_unparsed_text_runs_as_a_query():
    # ClickHouse could not normalise it: the engine must report its own error, so it runs as a query.
    statement = Statement.unparsed("SELEC 1 FORMAT JSON")
    assert not statement.parsed and statement.returns_rows and not statement.streams
    assert statement.format is None and statement.core == "SELEC 1 FORMAT JSON"
    assert Statement.unparsed("/* c */ SELECT 1 +").streams


# ---------------------------------------------------------------------------
# INSERT ... FORMAT X<newline><data> in one body
# ---------------------------------------------------------------------------

def test_inline_insert_is_split_at_the_format_line():
    assert split_inline_insert(b"INSERT INTO t FORMAT CSV\n1,2\n3,4\n") == ("INSERT INTO t FORMAT CSV", b"1,2\n3,4\n")
    assert split_inline_insert(b"insert into t (a, b) format TabSeparated\r\n1\t2\n") == \
        ("insert into t (a, b) format TabSeparated", b"1\t2\n")


def test_inline_insert_keeps_binary_data_intact():
    data = bytes(range(256)) + b"\n\x00FORMAT CSV\n"
    statement, rest = split_inline_insert(b"INSERT INTO t FORMAT RowBinary\n" + data)
    assert statement == "INSERT INTO t FORMAT RowBinary" and rest == data


def test_inline_insert_after_comments_and_at_end_of_body():
    assert split_inline_insert(b"-- load\n/* x */ INSERT INTO t FORMAT JSONEachRow\n{}") == \
        ("-- load\n/* x */ INSERT INTO t FORMAT JSONEachRow", b"{}")
    assert split_inline_insert(b"INSERT INTO t FORMAT Native") == ("INSERT INTO t FORMAT Native", b"")


@pytest.mark.parametrize("raw", [
    b"SELECT 1 FORMAT CSV\n",
    b"INSERT INTO t VALUES (1)",
    b"INSERT INTO t FORMAT\n",
    b"INSERT INTO t FORMAT CSV x\n1\n",
    b"INSERT INTO t FORMAT CSV\xff\n",
    b"INSERT INTO t\xff FORMAT CSV\n1\n",
])
def test_not_an_inline_insert(raw):
    assert split_inline_insert(raw) is None
