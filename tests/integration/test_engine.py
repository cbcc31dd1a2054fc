"""The embedded engine passes the engine contract; errors are one clear line."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from cairn.config import load_config
from cairn.engine import Capabilities, EmbeddedEngine, EmbeddedSession, Session, open_engine
from cairn.errors import EngineUnavailable
from support.engine_contract import ALL_CHECKS


@pytest.mark.parametrize("check", ALL_CHECKS, ids=lambda f: f.__name__)
def test_embedded_engine_contract(engine, check):
    check(engine)


def test_embedded_data_persists_across_reopen(config):
    with open_engine(config) as first:
        first.command("CREATE DATABASE IF NOT EXISTS openedx")
        first.command("CREATE TABLE openedx.keep (x UInt8) ENGINE = MergeTree ORDER BY x")
        first.insert("openedx.keep", [[7]], ["x"])
    with open_engine(config) as second:
        assert second.query_value("SELECT x FROM openedx.keep") == 7
    assert (config.data_dir / "clickhouse").is_dir()


def test_second_process_on_same_data_dir_gets_a_clear_error(config):
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys, time
            from cairn.engine import EmbeddedEngine
            e = EmbeddedEngine({str(config.data_dir)!r}, "openedx")
            print("ready", flush=True)
            sys.stdin.read()
        """)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        with pytest.raises(EngineUnavailable) as info:
            EmbeddedEngine(config.data_dir, "openedx")
        message = str(info.value)
        assert str(config.data_dir) in message and f"pid {holder.pid}" in message
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)


def test_unreachable_server_names_host_port_and_cause():
    config = load_config(overrides={"engine": "server", "clickhouse.host": "127.0.0.1",
                                    "clickhouse.port": "1", "clickhouse.connect_timeout": "2"})
    with pytest.raises(EngineUnavailable) as info:
        open_engine(config)
    message = str(info.value)
    assert message.startswith("cannot reach ClickHouse at 127.0.0.1:1")
    assert "connection refused" in message
    assert "\n" not in message


def test_embedded_capabilities(engine):
    assert engine.capabilities == Capabilities(in_process=True, over_http=False, via_serve=False,
                                               has_rbac=False, parallel_inserts=True)


def test_embedded_parallel_writer_shares_the_data_directory(engine):
    writer = engine.parallel_writer()
    try:
        assert isinstance(writer, EmbeddedEngine)
        assert writer.data_dir == engine.data_dir and writer.database == engine.database
    finally:
        writer.close()


def test_embedded_session_declares_its_state(engine):
    session = engine.open_session(["SELECT 1"])
    try:
        assert isinstance(session, EmbeddedSession) and isinstance(session, Session)
        assert session.current_db is None and session.url_settings == {}
        assert session.created > 0
        assert session.execute("SELECT 1 + 1").data == b"2\n"
        assert b"".join(session.stream("SELECT number FROM numbers(3)")) == b"0\n1\n2\n"
    finally:
        session.close()
