"""Configuration: defaults, precedence file < environment < flags, validation."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cairn.config import SETTINGS, load_config
from cairn.errors import ConfigError


def test_zero_config_uses_embedded_engine_in_dot_cairn():
    config = load_config()
    assert config.engine == "embedded"
    assert config.data_dir == (Path.cwd() / ".cairn").resolve()
    assert config.database == "openedx"
    assert config["clickhouse.port"] == 8123
    assert config.file is None
    assert set(config.origins.values()) == {"default"}


def test_precedence_file_then_environment_then_flags(tmp_path):
    path = tmp_path / "cairn.toml"
    path.write_text('engine = "server"\ndatabase = "fromfile"\n[clickhouse]\nhost = "ch-file"\nport = 9000\n'
                    '[mysql]\nhost = "db-file"\n')
    env = {"CAIRN_CLICKHOUSE_HOST": "ch-env", "CAIRN_DATABASE": "fromenv"}
    config = load_config(path, overrides={"database": "fromflag"}, environ=env)
    assert config.engine == "server"                      # file
    assert config["clickhouse.port"] == 9000               # file
    assert config["mysql.host"] == "db-file"               # file
    assert config["clickhouse.host"] == "ch-env"           # env beats file
    assert config.database == "fromflag"                   # flag beats env
    assert config.origins["clickhouse.host"] == "CAIRN_CLICKHOUSE_HOST"
    assert config.origins["database"] == "flag"
    assert config.origins["engine"] == str(path)


def test_default_config_file_is_found_in_working_directory():
    Path("cairn.toml").write_text('data_dir = "elsewhere"\n')
    config = load_config(environ={})
    assert config.data_dir == (Path.cwd() / "elsewhere").resolve()
    assert config.file == Path("cairn.toml")


def test_data_dir_from_environment(tmp_path):
    config = load_config(environ={"CAIRN_DATA_DIR": str(tmp_path / "x")})
    assert config.data_dir == (tmp_path / "x").resolve()


@pytest.mark.parametrize("env, key, accepted", [
    ({"CAIRN_CLICKHOUSE_PORT": "abc"}, "clickhouse.port", "port number"),
    ({"CAIRN_CLICKHOUSE_PORT": "70000"}, "clickhouse.port", "port number"),
    ({"CAIRN_ENGINE": "sqlite"}, "engine", "embedded, server"),
    ({"CAIRN_CLICKHOUSE_SECURE": "maybe"}, "clickhouse.secure", "true or false"),
    ({"CAIRN_DATABASE": "drop table;"}, "database", "letters, digits and underscores"),
    ({"CAIRN_CLICKHOUSE_CLUSTER": "a b"}, "clickhouse.cluster", "letters, digits"),
])
def test_bad_values_name_the_key_and_what_is_accepted(env, key, accepted):
    with pytest.raises(ConfigError) as info:
        load_config(environ=env)
    message = str(info.value)
    assert key in message and accepted in message
    assert next(iter(env)) in message  # where the bad value came from


def test_unknown_key_in_file_is_reported(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[clickhouse]\nhots = 'x'\n")
    with pytest.raises(ConfigError, match="unknown setting 'clickhouse.hots'"):
        load_config(path, environ={})


def test_invalid_toml_and_missing_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("engine = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad, environ={})
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.toml", environ={})


def test_secrets_are_masked_and_lists_parse_from_environment():
    config = load_config(environ={"CAIRN_CLICKHOUSE_PASSWORD": "s3cret", "CAIRN_MYSQL_PASSWORD": "",
                                  "CAIRN_MIGRATIONS_FOLDER": "/a,/b"})
    redacted = config.redacted()
    assert redacted["clickhouse.password"] == "********"
    assert redacted["mysql.password"] == ""
    assert "s3cret" not in repr(redacted)
    assert config["clickhouse.password"] == "s3cret"
    assert config["migrations_folders"] == ["/a", "/b"]


def test_every_setting_has_help_and_env_var():
    for setting in SETTINGS:
        assert setting.help
        assert setting.env_var.startswith("CAIRN_") and setting.env_var.isupper()


def _cairn(*args, cwd, env=None):
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("CAIRN_")}
    full_env.update(env or {})
    return subprocess.run([str(Path(sys.executable).with_name("cairn")), *args], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("args, env, expected", [
    (["--set", "serve.port=true", "config"], {}, "serve.port (flag)"),
    (["config"], {"CAIRN_COLLECTOR_FLUSH_INTERVAL": "inf"}, "collector.flush_interval (CAIRN_COLLECTOR_FLUSH_INTERVAL)"),
    (["config"], {"CAIRN_DATA_DIR": ""}, "data_dir (CAIRN_DATA_DIR)"),
    (["status"], {"CAIRN_DATA_DIR": "/dev/null"}, "/dev/null is a character device"),
    (["config"], {"CAIRN_CONFIG": "/dev/zero"}, "/dev/zero is a character device, not a regular file"),
])
def test_cli_prints_one_error_line(tmp_path, args, env, expected):
    result = _cairn(*args, cwd=tmp_path, env=env)
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr.startswith("Error: ") and result.stderr.count("\n") == 1, result.stderr
    assert expected in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / ".cairn").exists()  # nothing created in the working directory


def test_cli_refuses_a_coerced_toml_value(tmp_path):
    (tmp_path / "cairn.toml").write_text("[serve]\nport = 8123.9\n")
    result = _cairn("config", cwd=tmp_path)
    assert result.returncode == 1 and result.stderr.count("\n") == 1
    assert "invalid value 8123.9 for serve.port (in cairn.toml)" in result.stderr
    assert "between 0 (any free port) and 65535, got a fraction" in result.stderr
