"""The embedded engine passes the engine contract; errors are one clear line."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from cairn.config import load_config
from cairn.engine import EmbeddedEngine, RemoteEngine, open_engine
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


def test_engine_kinds():
    assert EmbeddedEngine.kind == "embedded" and RemoteEngine.kind == "server"
