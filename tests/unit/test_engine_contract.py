"""Both engines implement the whole contract, and say what they can do (no engine opened)."""

from __future__ import annotations

import inspect

import pytest

from cairn.engine import Capabilities, EmbeddedEngine, EmbeddedSession, Engine, RemoteEngine, Session
from cairn.engine import remote as remote_module


@pytest.mark.parametrize("implementation", [EmbeddedEngine, RemoteEngine])
def test_engines_implement_every_method_of_the_contract(implementation):
    for name, member in vars(Engine).items():
        if not callable(member) or name.startswith("_") and name not in ("__enter__", "__exit__"):
            continue
        method = getattr(implementation, name)
        expected = list(inspect.signature(member).parameters)
        assert list(inspect.signature(method).parameters) == expected, name
    assert set(Engine.__annotations__) == {"database", "capabilities"}


def test_the_session_implements_the_session_contract():
    for name, member in vars(Session).items():
        if callable(member) and not name.startswith("_"):
            assert list(inspect.signature(getattr(EmbeddedSession, name)).parameters) == \
                list(inspect.signature(member).parameters), name
    # The state `cairn serve` keeps on a session is declared on the class, not attached from outside.
    assert {"created", "current_db", "url_settings"} <= set(EmbeddedSession.__annotations__)


def test_capabilities_of_each_engine():
    assert EmbeddedEngine.capabilities == Capabilities(in_process=True, over_http=False, via_serve=False,
                                                       has_rbac=False, parallel_inserts=True)
    assert remote_module.SERVER == Capabilities(in_process=False, over_http=True, via_serve=False,
                                                has_rbac=True, parallel_inserts=False)
    assert remote_module.SERVE == Capabilities(in_process=False, over_http=True, via_serve=True,
                                               has_rbac=False, parallel_inserts=False)
    assert [f.name for f in Capabilities.__dataclass_fields__.values()] == \
        ["in_process", "over_http", "via_serve", "has_rbac", "parallel_inserts"]


class _FakeClient:
    server_version = "0.0"

    def __init__(self, **kwargs):
        self.kwargs = kwargs

    def close(self):
        pass


@pytest.mark.parametrize("via_serve", [False, True])
def test_remote_parallel_writer_connects_the_same_way(monkeypatch, via_serve):
    import clickhouse_connect

    clients: list[_FakeClient] = []
    monkeypatch.setattr(clickhouse_connect, "get_client", lambda **kw: clients.append(_FakeClient(**kw)) or clients[-1])
    engine = RemoteEngine("db.example", 8443, "u", "p", "openedx", secure=True, connect_timeout=3,
                          settings={"max_threads": 2}, via_serve=via_serve)
    writer = engine.parallel_writer()
    assert writer is not engine and isinstance(writer, RemoteEngine)
    assert writer.capabilities == engine.capabilities and writer.capabilities.via_serve is via_serve
    assert writer.database == "openedx" and writer.describe() == "ClickHouse server at https://db.example:8443"
    assert clients[0].kwargs == clients[1].kwargs
    assert clients[1].kwargs["username"] == "u" and clients[1].kwargs["settings"] == {"max_threads": 2}
