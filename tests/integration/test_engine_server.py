"""The server engine passes the same contract as the embedded one, against a running `cairn serve`.

The engine is opened the way every cairn command opens it: `open_engine` on the served
data directory finds the server's endpoint and admin credential in serve.json.
"""

from __future__ import annotations

import pytest

from cairn.config import load_config
from cairn.engine import Capabilities, RemoteEngine, open_engine
from cairn.errors import EngineError
from support.engine_contract import ALL_CHECKS
from support.serve import shared_server


@pytest.fixture(scope="module")
def server_engine():
    served = shared_server()
    config = load_config(overrides={"data_dir": str(served.data_dir), "database": "contract_db"})
    engine = open_engine(config)
    yield engine
    engine.close()


def test_open_engine_routes_to_the_running_server(server_engine):
    assert isinstance(server_engine, RemoteEngine)
    assert server_engine.describe().startswith("ClickHouse server at http://127.0.0.1:")
    # Found through serve.json: reconnect through it, and access is Cairn's, not ClickHouse RBAC.
    assert server_engine.capabilities == Capabilities(in_process=False, over_http=True, via_serve=True,
                                                      has_rbac=False, parallel_inserts=False)


def test_parallel_writer_reaches_the_same_server(server_engine):
    writer = server_engine.parallel_writer()
    try:
        assert isinstance(writer, RemoteEngine)
        assert (writer.host, writer.port, writer.database) == \
            (server_engine.host, server_engine.port, server_engine.database)
        assert writer.capabilities.via_serve
    finally:
        writer.close()


@pytest.mark.parametrize("check", ALL_CHECKS, ids=lambda f: f.__name__)
def test_server_engine_contract(server_engine, check):
    check(server_engine)


def test_server_engine_raw_formats_and_errors(server_engine):
    server_engine.command("CREATE DATABASE IF NOT EXISTS contract_db")
    server_engine.command("DROP TABLE IF EXISTS contract_db.fmt")
    server_engine.command("CREATE TABLE contract_db.fmt (id UInt32, name String) ENGINE = MergeTree ORDER BY id")
    server_engine.insert_raw("contract_db.fmt", b'{"id": 1, "name": "x\\ty"}\n{"id": 2, "name": "z"}\n',
                             "JSONEachRow")
    server_engine.insert_raw("contract_db.fmt", (b"%d\tn%d\n" % (i, i) for i in range(3, 6)), "TabSeparated")
    assert server_engine.raw_query("SELECT id, name FROM contract_db.fmt ORDER BY id", fmt="TabSeparated") == \
        b"1\tx\\ty\n2\tz\n3\tn3\n4\tn4\n5\tn5\n"
    assert server_engine.raw_query("SELECT count() AS c FROM contract_db.fmt", fmt="JSONEachRow") == b'{"c":"5"}\n' \
        or server_engine.raw_query("SELECT count() AS c FROM contract_db.fmt", fmt="JSONEachRow") == b'{"c":5}\n'
    frame = server_engine.query_df("SELECT id FROM contract_db.fmt ORDER BY id")
    assert list(frame["id"]) == [1, 2, 3, 4, 5]
    with pytest.raises(EngineError) as info:
        server_engine.command("CREATE TABLE contract_db.fmt (id UInt32) ENGINE = MergeTree ORDER BY id")
    assert info.value.code == 57  # TABLE_ALREADY_EXISTS, as ClickHouse says it
    assert "already exists" in str(info.value)
