"""Shared fixtures: a fresh data directory, engine and migrated datalake per test."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cairn.config import load_config
from cairn.engine import open_engine
from cairn.migrations import Migrator

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED = PROJECT_ROOT.parent / "shared" / "openedx"
EVENTS = SHARED / "events"


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch, tmp_path_factory):
    """Tests never see the developer's CAIRN_* variables or ./cairn.toml."""
    for name in list(os.environ):
        if name.startswith("CAIRN_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))


@pytest.fixture
def shared() -> Path:
    """The read-only Open edX reference data (../shared/openedx)."""
    if not SHARED.is_dir():
        pytest.fail(f"reference data missing: {SHARED}")
    return SHARED


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
