"""The behaviour every Engine implementation must have (embedded and remote).

Each function takes an engine on an empty, writable database and fails loudly if
the engine deviates. tests/integration/test_engine.py runs them on the embedded
engine; tests/integration/test_engine_server.py runs them against `cairn serve`.
"""

from __future__ import annotations

import dataclasses
import threading
from datetime import datetime, timezone

import pytest

from cairn.engine import Capabilities, Engine, sql_identifier
from cairn.errors import EngineError


def _fresh_table(engine, name="contract"):
    database = sql_identifier(engine.database)
    engine.command(f"CREATE DATABASE IF NOT EXISTS {database}")
    engine.command(f"DROP TABLE IF EXISTS {database}.{sql_identifier(name)}")
    engine.command(f"CREATE TABLE {database}.{sql_identifier(name)} (id UInt32, name String, "
                   f"t DateTime64(6, 'UTC'), score Nullable(Float64)) ENGINE = MergeTree ORDER BY id")
    return f"{database}.{sql_identifier(name)}"


def _assert_clickhouse_error(error: EngineError, code: int) -> None:
    """ClickHouse's own message, once, on one line: what the error translator promises."""
    text = str(error)
    assert error.code == code, text
    assert text.startswith(f"Code: {code}. DB::Exception: "), text
    assert "\n" not in text
    assert "(version " not in text
    assert text.count(f"Code: {code}. DB::Exception: ") == 1, text


def check_query_and_parameters(engine):
    result = engine.query("SELECT number AS n, toString(number) AS s FROM numbers(3)")
    assert result.column_names == ["n", "s"]
    assert result.column_types == ["UInt64", "String"]
    assert result.rows == [(0, "0"), (1, "1"), (2, "2")]
    assert result.dicts()[1] == {"n": 1, "s": "1"}
    hostile = "x'); DROP TABLE t; --"
    assert engine.query_value("SELECT {v:String}", {"v": hostile}) == hostile
    assert engine.query_rows("SELECT {a:UInt8} + {b:UInt8}", {"a": 2, "b": 3}) == [(5,)]
    assert engine.query_value("SELECT 1 WHERE 0") is None


def check_insert_and_types(engine):
    table = _fresh_table(engine)
    when = datetime(2024, 3, 1, 12, 30, 15, 123456, tzinfo=timezone.utc)
    engine.insert(table, [[1, "ann", when, 0.5], [2, "bob", when, None]], ["id", "name", "t", "score"])
    rows = engine.query_rows(f"SELECT id, name, t, score FROM {table} ORDER BY id")
    assert [r[:2] for r in rows] == [(1, "ann"), (2, "bob")]
    assert rows[0][2].replace(tzinfo=None) == when.replace(tzinfo=None)
    assert rows[0][3] == 0.5 and rows[1][3] is None
    frame = engine.query_df(f"SELECT id, name FROM {table} ORDER BY id")
    assert list(frame["name"]) == ["ann", "bob"]


def check_raw_insert_and_raw_query(engine):
    table = _fresh_table(engine)
    engine.insert_raw(table, b'{"id": 1, "name": "a", "t": "2024-01-01 00:00:00"}\n', "JSONEachRow",
                      column_names=["id", "name", "t"])
    chunks = (b"%d\tn%d\t2024-01-01 00:00:00\n" % (i, i) for i in range(2, 5002))
    engine.insert_raw(table, chunks, "TabSeparated", column_names=["id", "name", "t"])
    assert engine.query_value(f"SELECT count() FROM {table}") == 5001
    assert engine.raw_query(f"SELECT id, name FROM {table} WHERE id <= 2 ORDER BY id", fmt="CSV") == \
        b'1,"a"\n2,"n2"\n'
    assert engine.raw_query("SELECT 1 AS x FORMAT JSONEachRow") == b'{"x":1}\n'


def check_dedup_token(engine):
    table = _fresh_table(engine, "dedup")
    engine.command(f"ALTER TABLE {table} MODIFY SETTING non_replicated_deduplication_window = 100")
    for _ in range(3):
        engine.insert_raw(table, b"1\tx\t2024-01-01 00:00:00\n", "TabSeparated", ["id", "name", "t"],
                          settings={"insert_deduplication_token": "same-token"})
    assert engine.query_value(f"SELECT count() FROM {table}") == 1


def check_stream(engine):
    total, blocks = 0, 0
    with engine.stream("SELECT number FROM numbers(200000)", settings={"max_block_size": 10000}) as stream:
        for rows in stream:
            blocks += 1
            total += sum(r[0] for r in rows)
    assert total == sum(range(200000))
    assert blocks > 1


def check_command_and_errors(engine):
    assert engine.command("SELECT 42") == 42
    with pytest.raises(EngineError) as info:
        engine.query("SELECT * FROM no_such_db.no_such_table")
    assert info.value.code in (60, 81)
    assert str(info.value).startswith("Code: ")
    assert "\n" not in str(info.value)
    with pytest.raises(EngineError) as info:
        engine.query("SELEC 1")
    assert info.value.code == 62  # SYNTAX_ERROR
    assert engine.ping()


def check_error_translation(engine):
    """Every way in (query, command, stream, raw insert) fails with the same one-line error."""
    with pytest.raises(EngineError) as info:
        engine.query("SELEC 1")
    _assert_clickhouse_error(info.value, 62)
    assert str(info.value).split(" (for url ")[0].endswith("(SYNTAX_ERROR)")
    with pytest.raises(EngineError) as info:
        engine.command("SELECT throwIf(1, 'contract says no')")
    _assert_clickhouse_error(info.value, 395)  # FUNCTION_THROW_IF_VALUE_IS_NON_ZERO
    assert "contract says no" in str(info.value)
    with pytest.raises(EngineError) as info, engine.stream("SELECT * FROM no_such_db.t") as blocks:
        list(blocks)
    assert info.value.code in (60, 81) and "\n" not in str(info.value)
    table = _fresh_table(engine, "bad_input")
    with pytest.raises(EngineError) as info:
        engine.insert_raw(table, b"not-a-number\tx\t2024-01-01 00:00:00\n", "TabSeparated", ["id", "name", "t"])
    assert info.value.code is not None and "\n" not in str(info.value)
    assert engine.query_value(f"SELECT count() FROM {table}") == 0
    assert engine.ping()


def _failing_view(engine, name):
    """A Null table feeding a MergeTree through a view that fails on n = 5 (or a CHECK on n != 7)."""
    database = sql_identifier(engine.database)
    src, dst = f"{database}.{sql_identifier(name + '_src')}", f"{database}.{sql_identifier(name + '_dst')}"
    engine.command(f"CREATE DATABASE IF NOT EXISTS {database}")
    for table in (f"{database}.{sql_identifier(name + '_mv')}", dst, src):
        engine.command(f"DROP TABLE IF EXISTS {table}")
    engine.command(f"CREATE TABLE {src} (n UInt64) ENGINE = Null")
    engine.command(f"CREATE TABLE {dst} (n UInt64, CONSTRAINT not_seven CHECK n != 7) "
                   f"ENGINE = MergeTree ORDER BY n")
    engine.command(f"CREATE MATERIALIZED VIEW {database}.{sql_identifier(name + '_mv')} TO {dst} "
                   f"AS SELECT throwIf(n = 5) + n AS n FROM {src}")
    return src, dst


def check_failed_insert_raises(engine):
    """An insert the engine does not store raises: a view's exception, a CHECK constraint."""
    src, dst = _failing_view(engine, "failing")
    with pytest.raises(EngineError) as info:
        engine.insert_raw(src, b"".join(b"%d\n" % i for i in range(10)), "TabSeparated")
    _assert_clickhouse_error(info.value, 395)
    assert engine.query_value(f"SELECT count() FROM {dst}") == 0
    with pytest.raises(EngineError) as info:
        engine.insert_raw(src, [b"6\n", b"7\n", b"8\n"], "TabSeparated")
    _assert_clickhouse_error(info.value, 469)  # VIOLATED_CONSTRAINT
    assert engine.query_value(f"SELECT count() FROM {dst}") == 0
    engine.insert_raw(src, b'{"n": 6}\n{"n": 8}\n', "JSONEachRow")
    assert engine.query_value(f"SELECT count() FROM {dst}") == 2
    assert engine.ping()


def check_capabilities(engine):
    assert isinstance(engine, Engine)  # the Protocol, checked at run time
    caps = engine.capabilities
    assert isinstance(caps, Capabilities)
    with pytest.raises(dataclasses.FrozenInstanceError):
        caps.has_rbac = not caps.has_rbac  # type: ignore[misc]
    assert caps.in_process != caps.over_http  # chDB here, or a server over HTTP
    assert not caps.via_serve or (caps.over_http and not caps.has_rbac)
    assert not caps.has_rbac or caps.over_http
    assert engine.describe()


def check_tables(engine):
    table = _fresh_table(engine, "listed_b")
    _fresh_table(engine, "listed_a")
    engine.command(f"CREATE OR REPLACE VIEW {sql_identifier(engine.database)}.listed_v AS SELECT id FROM {table}")
    names = engine.tables()
    assert {"listed_a", "listed_b", "listed_v"} <= set(names)
    assert names == sorted(names)
    assert engine.tables(engine.database) == names
    assert "tables" in engine.tables("system")
    assert engine.tables("no_such_database_here") == []


def check_parallel_writer(engine):
    table = _fresh_table(engine, "parallel")
    writer = engine.parallel_writer()
    try:
        assert writer is not engine
        assert writer.database == engine.database
        assert writer.capabilities == engine.capabilities
        errors: list[BaseException] = []

        def load(target, first):
            try:
                rows = b"".join(b"%d\tw\t2024-01-01 00:00:00\n" % i for i in range(first, first + 1000))
                target.insert_raw(table, rows, "TabSeparated", ["id", "name", "t"])
            except BaseException as exc:  # reported below, in the test's thread
                errors.append(exc)

        threads = [threading.Thread(target=load, args=(target, first))
                   for target, first in ((engine, 0), (writer, 1000))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert not errors, errors
        assert writer.query_value(f"SELECT count() FROM {table}") == 2000
    finally:
        writer.close()
    # Closing the writer leaves the engine it came from working.
    assert engine.query_value(f"SELECT uniqExact(id) FROM {table}") == 2000


ALL_CHECKS = [check_query_and_parameters, check_insert_and_types, check_raw_insert_and_raw_query,
              check_dedup_token, check_stream, check_command_and_errors, check_error_translation,
              check_failed_insert_raises, check_capabilities, check_tables, check_parallel_writer]
