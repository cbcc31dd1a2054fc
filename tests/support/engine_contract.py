"""The behaviour every Engine implementation must have (embedded and server).

Each function takes an engine on an empty, writable database and fails loudly if
the engine deviates. tests/test_engine.py runs them on the embedded engine; the
server tests run them against `cairn serve`.
"""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from cairn.errors import EngineError


def _fresh_table(engine, name="contract"):
    engine.command(f"CREATE DATABASE IF NOT EXISTS `{engine.database}`")
    engine.command(f"DROP TABLE IF EXISTS `{engine.database}`.{name}")
    engine.command(f"CREATE TABLE `{engine.database}`.{name} (id UInt32, name String, "
                   f"t DateTime64(6, 'UTC'), score Nullable(Float64)) ENGINE = MergeTree ORDER BY id")
    return f"`{engine.database}`.{name}"


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


ALL_CHECKS = [check_query_and_parameters, check_insert_and_types, check_raw_insert_and_raw_query,
              check_dedup_token, check_stream, check_command_and_errors]
