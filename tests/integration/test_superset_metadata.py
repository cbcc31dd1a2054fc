"""Superset configured with PostgreSQL for its metadata and Redis for its caches (both real,
local services): initialised by Cairn, logins managed in PostgreSQL, chart data cached in Redis."""

from __future__ import annotations

import os
import subprocess

import pytest

from cairn.config import load_config
from cairn.superset.logins import create_login, delete_login, list_logins
from cairn.superset.settings import superset_settings
from cairn.superset.setup import initialise
from cairn.superset.venv import environment

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"

# Runs in Superset's environment: its app, its data cache as configured by Cairn.
CACHE_PROBE = r"""
import logging; logging.disable(logging.WARNING)
from superset.app import create_app
app = create_app()
with app.app_context():
    from superset.extensions import cache_manager
    cache_manager.data_cache.set("cairn-probe", "cached", timeout=30)
    print(type(cache_manager.data_cache.cache).__name__, cache_manager.data_cache.get("cairn-probe"))
"""


def _superset_python(settings, code: str, *args: str) -> str:
    done = subprocess.run([str(settings.venv / "bin" / "python"), "-c", code, *args], capture_output=True,
                          text=True, timeout=600, env=environment(settings), cwd=settings.home)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip().splitlines()[-1]


def _postgres(settings, statement: str) -> None:
    _superset_python(settings, "import psycopg2, sys\nc = psycopg2.connect(sys.argv[1]); c.autocommit = True\n"
                               "c.cursor().execute(sys.argv[2]); print('ok')", PG_ADMIN, statement)


@pytest.fixture
def settings(tmp_path):
    database = f"cairn_superset_{os.getpid()}"
    config = load_config(overrides={
        "data_dir": str(tmp_path / "data"),
        "superset.metadata_uri": f"postgresql://postgres@127.0.0.1:5432/{database}",
        "superset.redis_url": "redis://127.0.0.1:6379/5",
        "superset.admin_password": "pg-admin-password"})
    resolved = superset_settings(config)
    if not (resolved.venv / "bin" / "python").exists():
        pytest.fail(f"Superset is not installed in {resolved.venv}: run `make setup-superset`")
    resolved.home.mkdir(parents=True)
    _postgres(resolved, f'CREATE DATABASE "{database}"')
    yield config
    _postgres(resolved, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def test_postgresql_metadata_and_redis_caches(settings):
    resolved = superset_settings(settings)
    done = initialise(resolved, say=lambda line: None)
    assert done.admin_created and done.new_admin_password is None  # configured, so nothing to print
    assert not (resolved.home / "superset.db").exists()  # the metadata is in PostgreSQL
    assert create_login(settings, "pg_user", "pg-user@example.com", "pg-user-password")
    logins = {login["username"]: login for login in list_logins(settings)}
    assert set(logins) == {"admin", "pg_user"}
    assert logins["pg_user"]["roles"] == ["Cairn", "Gamma", "sql_lab"] and logins["admin"]["roles"] == ["Admin"]
    assert delete_login(settings, "pg_user")
    assert {login["username"] for login in list_logins(settings)} == {"admin"}
    assert _superset_python(resolved, CACHE_PROBE) == "RedisCache cached"
    keys = subprocess.run(["redis-cli", "-n", "5", "--scan", "--pattern", "cairn_data_*"], capture_output=True,
                          text=True, timeout=30).stdout.split()
    assert "cairn_data_cairn-probe" in keys
    subprocess.run(["redis-cli", "-n", "5", "DEL", *keys], capture_output=True, timeout=30)
