"""The superset.* settings: defaults, validation in one line, and what they resolve to."""

from __future__ import annotations

import pytest

from cairn.config import load_config
from cairn.errors import ConfigError
from cairn.superset.home import database_uri, render_config
from cairn.superset.settings import superset_settings


def test_defaults_resolve_to_the_project_venv_and_the_data_directory(tmp_path):
    settings = superset_settings(load_config(overrides={"data_dir": str(tmp_path / "data")}, environ={}))
    assert settings.enabled and settings.port == 8088 and settings.workers >= 2
    assert settings.venv.name == ".venv-superset"
    assert settings.home == (tmp_path / "data" / "superset").resolve()
    assert settings.url == "http://127.0.0.1:8088"
    assert settings.data_cache_seconds <= 10  # real time: new events show within seconds


def test_the_venv_and_ports_come_from_the_environment(tmp_path):
    config = load_config(environ={"CAIRN_SUPERSET_VENV": str(tmp_path / "sv"), "CAIRN_SERVE_PORT": "9000",
                                  "CAIRN_SUPERSET_PORT": "9001"})
    settings = superset_settings(config)
    assert settings.venv == tmp_path / "sv" and settings.port == 9001 and settings.datalake_port == 9000
    assert database_uri(settings) == "clickhousedb://superset@127.0.0.1:9000/openedx"  # no secret in it


@pytest.mark.parametrize("name, value, expected", [
    ("CAIRN_SUPERSET_PORT", "http", "superset.port"),
    ("CAIRN_SUPERSET_REDIS_URL", "localhost:6379", "a Redis URL"),
    ("CAIRN_SUPERSET_METADATA_URI", "mysql://x", "a database URL"),
    ("CAIRN_SUPERSET_DATA_CACHE_SECONDS", "0", "from 1 to 86400"),
])
def test_bad_values_are_one_clear_line(name, value, expected):
    with pytest.raises(ConfigError) as caught:
        load_config(environ={name: value})
    assert expected in str(caught.value) and "\n" not in str(caught.value)


def test_the_rendered_configuration_names_its_caches_and_no_secret(tmp_path):
    config = load_config(overrides={"data_dir": str(tmp_path)},
                         environ={"CAIRN_SUPERSET_REDIS_URL": "redis://127.0.0.1:6379/3"})
    text = render_config(superset_settings(config), tmp_path / "delegation.key")
    assert '"CACHE_TYPE": "RedisCache"' in text and "redis://127.0.0.1:6379/3" in text
    assert "DATA_CACHE_CONFIG = _cache(\"data\", 10)" in text
    assert str(tmp_path / "delegation.key") in text and "SECRET_KEY = _read(" in text
    compile(text, "superset_config.py", "exec")  # valid Python
