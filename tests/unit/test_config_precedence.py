"""Configuration without an engine: precedence and validation messages."""

from __future__ import annotations

import pytest

from cairn import hooks
from cairn.config import MYSQL_DATALAKE_TABLES, Setting, load_config, setting_named
from cairn.errors import ConfigError


def _toml(tmp_path, text: str):
    path = tmp_path / "cairn.toml"
    path.write_text(text)
    return path


def test_precedence_defaults_toml_env_flags(tmp_path):
    path = _toml(tmp_path, "[clickhouse]\nport = 9000\nhost = 'toml-host'\nuser = 'toml-user'\n")
    env = {"CAIRN_CLICKHOUSE_HOST": "env-host", "CAIRN_CLICKHOUSE_USER": "env-user"}
    cfg = load_config(path, {"clickhouse.user": "flag-user"}, environ=env)
    assert cfg["clickhouse.password"] == "" and cfg.origins["clickhouse.password"] == "default"
    assert cfg["clickhouse.port"] == 9000 and cfg.origins["clickhouse.port"] == str(path)
    assert cfg["clickhouse.host"] == "env-host" and cfg.origins["clickhouse.host"] == "CAIRN_CLICKHOUSE_HOST"
    assert cfg["clickhouse.user"] == "flag-user" and cfg.origins["clickhouse.user"] == "flag"


def test_invalid_value_names_key_origin_and_accepted_values(tmp_path):
    with pytest.raises(ConfigError) as exc:
        load_config(_toml(tmp_path, "[clickhouse]\nport = 70000\n"), environ={})
    message = str(exc.value)
    assert "clickhouse.port" in message and str(tmp_path / "cairn.toml") in message
    assert "between 1 and 65535" in message
    with pytest.raises(ConfigError) as exc:
        load_config(None, environ={"CAIRN_ENGINE": "cloud"})
    assert "engine" in str(exc.value) and "CAIRN_ENGINE" in str(exc.value) and "embedded, server" in str(exc.value)
    with pytest.raises(ConfigError) as exc:
        load_config(None, {"serve.port": "x"}, environ={})
    assert "serve.port (flag)" in str(exc.value)


def test_unknown_key_lists_known_settings(tmp_path):
    with pytest.raises(ConfigError) as exc:
        load_config(_toml(tmp_path, "[clickhouse]\nprot = 1\n"), environ={})
    assert "unknown setting 'clickhouse.prot'" in str(exc.value) and "clickhouse.port" in str(exc.value)


def test_missing_explicit_file_and_bad_toml(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "absent.toml", environ={})
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(_toml(tmp_path, "[clickhouse\n"), environ={})


def test_mysql_table_settings_follow_the_catalog():
    for table in MYSQL_DATALAKE_TABLES:
        assert setting_named(f"mysql.tables.{table}.mode") is not None
        assert setting_named(f"mysql.tables.{table}.refresh_seconds") is not None
    cfg = load_config(None, {"mysql.tables.users.mode": "LIVE"}, environ={})
    assert cfg["mysql.tables.users.mode"] == "live"


def test_secrets_are_masked_and_listed():
    cfg = load_config(None, {"mysql.password": "pw1", "clickhouse.password": "pw2"}, environ={})
    assert sorted(cfg.secret_values()) == ["pw1", "pw2"]
    assert cfg.redacted()["mysql.password"] == "********"


def test_settings_hook_adds_a_validated_setting(tmp_path):
    extra = Setting("example_plugin.port", 8088, int, "port of an example plugin")
    hooks.SETTINGS.add(extra)
    try:
        cfg = load_config(None, environ={"CAIRN_EXAMPLE_PLUGIN_PORT": "9999"})
        assert cfg["example_plugin.port"] == 9999 and cfg.origins["example_plugin.port"] == "CAIRN_EXAMPLE_PLUGIN_PORT"
    finally:
        hooks.SETTINGS.remove(extra)
    with pytest.raises(ConfigError, match="unknown setting"):
        load_config(None, {"example_plugin.port": 1}, environ={})
