"""Integration fixtures: a fresh data directory, a real chDB engine and a migrated datalake per test."""

from __future__ import annotations

import pytest

from cairn.config import load_config
from cairn.engine import open_engine
from cairn.schema.migrator import Migrator


@pytest.fixture
def config(tmp_path):
    """Zero-config settings with the embedded engine in a fresh folder."""
    return load_config(overrides={"data_dir": str(tmp_path / "data")})


@pytest.fixture
def engine(config):
    """An embedded engine on a fresh data directory."""
    eng = open_engine(config)
    yield eng
    eng.close()


@pytest.fixture
def datalake(engine, config):
    """An engine whose datalake schema is migrated."""
    Migrator(engine, config).run()
    return engine
