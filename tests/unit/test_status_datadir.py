"""The data directory section of `cairn status` and the mode fix of `cairn migrate`, on real files.

Only free space is faked (a number cannot be made small on the test machine's disk).
"""

from __future__ import annotations

import os

import pytest

from cairn import hooks, status
from cairn.config import load_config
from cairn.status import data_directory_status, make_data_dir_private

MIB = 1 << 20


def _config(data_dir, **overrides):
    return load_config(None, {"data_dir": str(data_dir), **overrides}, environ={})


@pytest.fixture
def data_dir(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir(mode=0o700)
    (folder / "events.bin").write_bytes(b"x")
    os.chmod(folder / "events.bin", 0o600)
    return folder


def test_the_section_is_registered_by_its_provider():
    hooks.load_providers()
    assert "cairn.status" in hooks.PROVIDERS
    assert data_directory_status in hooks.STATUS_SECTIONS


def test_space_held_by_the_engines_merges_counts_as_in_the_writers(data_dir, monkeypatch):
    from types import SimpleNamespace

    import cairn.ingest.reserve as reserve

    monkeypatch.setattr(status, "free_bytes", lambda path: 300 * MIB)
    monkeypatch.setattr(reserve, "free_bytes", lambda path: 300 * MIB)
    holding = SimpleNamespace(query=lambda sql: SimpleNamespace(rows=[(100 * MIB,)]))
    section = data_directory_status(holding, _config(data_dir))  # 300 MB free, 100 of it held, reserve 256
    [warning] = section["warnings"]
    assert "only 300 MB free" in warning and "100 MB of it held by the engine's merges" in warning
    idle = SimpleNamespace(query=lambda sql: SimpleNamespace(rows=[(0,)]))
    assert data_directory_status(idle, _config(data_dir))["warnings"] == []


def test_free_space_reserve_and_private_modes(data_dir, monkeypatch):
    monkeypatch.setattr(status, "free_bytes", lambda path: 10 * 1024 * MIB)
    section = data_directory_status(None, _config(data_dir))
    assert section["title"] == f"data directory {data_dir}"
    assert section["free_bytes"] == 10 * 1024 * MIB and section["reserve_bytes"] == 256 * MIB
    rows = {row["check"]: row for row in section["rows"]}
    assert rows["free space"]["value"] == f"10.0 GiB on the file system of {data_dir}"
    assert rows["free space"]["state"] == "ok"
    assert rows["reserve (collector.min_free_mb)"]["value"] == "256 MB"
    assert rows["permissions"] == {"check": "permissions", "value": "private to its owner", "state": "ok"}
    assert section["warnings"] == [] and section["open_paths"] == 0


def test_below_the_reserve_warns(data_dir, monkeypatch):
    free = {"bytes": 100 * MIB}
    monkeypatch.setattr(status, "free_bytes", lambda path: free["bytes"])
    import cairn.ingest.reserve as reserve

    monkeypatch.setattr(reserve, "free_bytes", lambda path: free["bytes"])
    section = data_directory_status(None, _config(data_dir, **{"collector.min_free_mb": "512"}))
    [warning] = section["warnings"]
    assert "only 100 MB free" in warning and "collector.min_free_mb = 512" in warning
    assert "the collector pauses" in warning and "\n" not in warning
    assert {row["check"]: row for row in section["rows"]}["free space"]["state"] == "below the reserve"
    no_reserve = data_directory_status(None, _config(data_dir, **{"collector.min_free_mb": "0"}))
    assert no_reserve["warnings"] == [] and no_reserve["reserve_bytes"] == 0


def test_open_modes_are_counted_listed_and_fixed_by_migrate(data_dir):
    for n in range(30):
        path = data_dir / f"part-{n}"
        path.write_bytes(b"")
        os.chmod(path, 0o644)
    os.chmod(data_dir, 0o755)
    config = _config(data_dir)
    section = data_directory_status(None, config)
    row = {row["check"]: row for row in section["rows"]}["permissions"]
    assert row["value"].startswith("31 path(s) open to group or others:") and "(and 30 more)" in row["value"]
    assert row["state"] == "run `cairn migrate`"
    assert section["open_paths"] == 31 and len(section["permission_problems"]) == 20
    assert any("run `cairn migrate`" in w and str(data_dir) in w for w in section["warnings"])
    assert make_data_dir_private(config, dry_run=True) == 31
    assert os.stat(data_dir).st_mode & 0o077  # a dry run changes nothing
    assert make_data_dir_private(config) == 31
    assert make_data_dir_private(config) == 0
    assert os.stat(data_dir / "part-7").st_mode & 0o777 == 0o600 and os.stat(data_dir).st_mode & 0o777 == 0o700
    assert make_data_dir_private(_config(data_dir / "not-yet")) is None  # nothing to fix before it exists


def test_nothing_local_with_a_server_engine(data_dir):
    os.chmod(data_dir / "events.bin", 0o644)
    config = _config(data_dir, engine="server")
    assert data_directory_status(None, config) is None
    assert make_data_dir_private(config) is None
    assert os.stat(data_dir / "events.bin").st_mode & 0o777 == 0o644
