"""The rendered superset_config.py, loaded by Superset's own Python: its connection mutator
gives each Superset user the delegation token `cairn serve` expects, and nothing to others."""

from __future__ import annotations

import json
import os
import stat
import subprocess

import pytest

from cairn.config import load_config
from cairn.serve.delegation import DELEGATED_ADMIN, token
from cairn.superset.home import config_path, prepare_home
from cairn.superset.settings import superset_settings

# Runs in Superset's environment: real SQLAlchemy 1.4 URLs; a stand-in security manager
# (the real one needs a whole Flask app; the e2e layer covers it).
PROBE = r"""
import importlib.util, json, sys
from types import SimpleNamespace
from sqlalchemy.engine.url import make_url
spec = importlib.util.spec_from_file_location("superset_config", sys.argv[1])
config = importlib.util.module_from_spec(spec); spec.loader.exec_module(config)
people = {"alice": ["Gamma", "sql_lab", "Cairn"], "root": ["Admin"], "gone": None}
class Security:
    def find_user(self, username):
        roles = people.get(username)
        if username not in people: return None
        return SimpleNamespace(username=username, is_active=roles is not None,
                               roles=[SimpleNamespace(name=r) for r in roles or []])
out = {}
for label, uri, user in [("alice", sys.argv[2], "alice"), ("admin", sys.argv[2], "root"),
                         ("inactive", sys.argv[2], "gone"), ("nobody", sys.argv[2], None),
                         ("elsewhere", "clickhousedb://superset@evil.example:8123/openedx", "alice")]:
    url, params = config.DB_CONNECTION_MUTATOR(make_url(uri), {}, user, Security(), None)
    out[label] = [url.username, url.password]
out["data_cache"] = config.DATA_CACHE_CONFIG
print(json.dumps(out))
"""


@pytest.fixture
def rendered(tmp_path):
    config = load_config(overrides={"data_dir": str(tmp_path / "data"), "serve.port": 18123})
    settings = superset_settings(config)
    if not (settings.venv / "bin" / "python").exists():
        pytest.fail(f"Superset is not installed in {settings.venv}: run `make setup-superset`")
    prepare_home(settings)
    return settings


def test_the_mutator_gives_each_user_their_own_token(rendered):
    key = (rendered.home.parent / "delegation.key").read_text().strip().encode()
    done = subprocess.run([str(rendered.venv / "bin" / "python"), "-c", PROBE, str(config_path(rendered)),
                           "clickhousedb://superset@127.0.0.1:18123/openedx"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["alice"] == ["alice", token(key, "alice")]
    assert out["admin"] == [DELEGATED_ADMIN, token(key, DELEGATED_ADMIN)]
    assert out["inactive"] == ["superset", None] and out["nobody"] == ["superset", None]
    assert out["elsewhere"] == ["superset", None]  # another server never receives a token
    assert out["data_cache"]["CACHE_TYPE"] == "FileSystemCache" and out["data_cache"]["CACHE_DEFAULT_TIMEOUT"] == 10


def test_the_home_is_private(rendered):
    for path in (rendered.home, config_path(rendered), rendered.home / "secret_key",
                 rendered.home.parent / "delegation.key"):
        assert stat.S_IMODE(os.stat(path).st_mode) in (0o600, 0o700), path
    before = (rendered.home / "secret_key").read_text()
    prepare_home(rendered)  # every start renders again, keeps the keys
    assert (rendered.home / "secret_key").read_text() == before
