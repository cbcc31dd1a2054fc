"""The data directory section of `cairn status` and the mode fix of `cairn migrate`, on a fake datadir module.

``cairn.engine.datadir`` measures (free space, open modes) and fixes (make_private);
here it is replaced by a fake so that only the wiring is tested: what is shown, when
it warns, and that nothing is shown or fixed for a server engine.
"""

from __future__ import annotations

import sys
import types

import pytest

from cairn import hooks
from cairn.config import load_config
from cairn.datadir_status import MIB, data_directory_status, make_data_dir_private


@pytest.fixture
def datadir(monkeypatch):
    """A fake ``cairn.engine.datadir``: set ``free``, ``problems``; ``fixed`` records make_private calls."""
    fake = types.ModuleType("cairn.engine.datadir")
    fake.free = 10 * 1024 * MIB
    fake.problems = []
    fake.fixed = []
    fake.free_bytes = lambda path: fake.free
    fake.permission_problems = lambda path, limit=20: list(fake.problems)[:limit]

    def make_private(path):
        fake.fixed.append(path)
        count, fake.problems = len(fake.problems), []
        return count

    fake.make_private = make_private
    monkeypatch.setitem(sys.modules, "cairn.engine.datadir", fake)
    import cairn.engine

    monkeypatch.setattr(cairn.engine, "datadir", fake, raising=False)
    return fake


def _config(tmp_path, **overrides):
    return load_config(None, {"data_dir": str(tmp_path), **overrides}, environ={})


def test_the_section_is_a_registered_provider():
    hooks.load_providers()
    assert "cairn.datadir_status" in hooks.PROVIDERS
    assert data_directory_status in hooks.STATUS_SECTIONS


def test_free_space_reserve_and_private_modes(tmp_path, datadir):
    section = data_directory_status(None, _config(tmp_path))
    assert section["title"] == f"data directory {tmp_path}"
    assert section["free_bytes"] == 10 * 1024 * MIB and section["reserve_bytes"] == 256 * MIB
    rows = {row["check"]: row for row in section["rows"]}
    assert rows["free space"]["value"] == f"10.0 GiB on the file system of {tmp_path}"
    assert rows["free space"]["state"] == "ok"
    assert rows["reserve (collector.min_free_mb)"]["value"] == "256 MB"
    assert rows["permissions"] == {"check": "permissions", "value": "private to its owner", "state": "ok"}
    assert section["warnings"] == []


def test_below_the_reserve_warns(tmp_path, datadir):
    datadir.free = 100 * MIB
    section = data_directory_status(None, _config(tmp_path, **{"collector.min_free_mb": "512"}))
    [warning] = section["warnings"]
    assert "100.0 MiB" in warning and "512 MB (collector.min_free_mb)" in warning
    assert "the collector pauses" in warning and "\n" not in warning
    assert {row["check"]: row for row in section["rows"]}["free space"]["state"] == "below the reserve"
    no_reserve = data_directory_status(None, _config(tmp_path, **{"collector.min_free_mb": "0"}))
    assert no_reserve["warnings"] == [] and no_reserve["reserve_bytes"] == 0


def test_open_modes_are_reported_with_the_fix(tmp_path, datadir):
    datadir.problems = [f"{tmp_path}/a (0644)", f"{tmp_path}/b (0755)"]
    section = data_directory_status(None, _config(tmp_path))
    row = {row["check"]: row for row in section["rows"]}["permissions"]
    assert row["value"].startswith("2 path(s) open to group or others:") and "(and 1 more)" in row["value"]
    assert row["state"] == "run `cairn migrate`"
    [warning] = section["warnings"]
    assert "run `cairn migrate`" in warning and str(tmp_path) in warning
    assert section["permission_problems"] == datadir.problems and section["open_paths"] == 2
    datadir.problems = [f"{tmp_path}/{n} (0644)" for n in range(100)]  # counted, not only the first 20
    section = data_directory_status(None, _config(tmp_path))
    assert section["open_paths"] == 100 and len(section["permission_problems"]) == 20
    assert "100 path(s)" in section["warnings"][0]


def test_migrate_fixes_the_modes_and_counts(tmp_path, datadir):
    datadir.problems = ["x", "y", "z"]
    config = _config(tmp_path)
    assert make_data_dir_private(config, dry_run=True) == 3 and datadir.fixed == []
    assert make_data_dir_private(config) == 3 and datadir.fixed == [tmp_path]
    assert make_data_dir_private(config) == 0
    assert make_data_dir_private(_config(tmp_path / "not-yet")) is None  # nothing to fix before it exists


def test_nothing_local_with_a_server_engine(tmp_path, datadir):
    config = _config(tmp_path, engine="server")
    assert data_directory_status(None, config) is None
    datadir.problems = ["x"]
    assert make_data_dir_private(config) is None and datadir.fixed == []
