"""Fixtures shared by both layers: an isolated environment and the reference data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from support.paths import EVENTS, PROJECT_ROOT, SHARED  # noqa: F401  (re-exported for fixtures)


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
