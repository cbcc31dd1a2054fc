"""Strict configuration: every setting checked by type and range, nothing coerced.

Each refusal is one line naming the key, where the value came from (file, environment
variable, flag) and what is accepted. Special paths (an empty data directory, a device,
a FIFO, a file) and unusable config files (a device, a FIFO, a huge file) are refused
before anything is read or created.
"""

from __future__ import annotations

import os
import threading

import pytest

from cairn.config import MAX_CONFIG_BYTES, SETTINGS, load_config
from cairn.errors import ConfigError


def _toml(tmp_path, text: str):
    path = tmp_path / "cairn.toml"
    path.write_text(text)
    return path


def _refused(tmp_path=None, toml: str | None = None, env: dict | None = None, flags: dict | None = None) -> str:
    """The one-line message of the ConfigError raised for this configuration."""
    path = _toml(tmp_path, toml) if toml is not None else None
    with pytest.raises(ConfigError) as info:
        load_config(path, flags, environ=env or {})
    message = str(info.value)
    assert "\n" not in message, message
    return message


# -- whole numbers ---------------------------------------------------------------

@pytest.mark.parametrize("value, why", [("true", "got true/false"), ("false", "got true/false"),
                                        ("8123.9", "got a fraction"), ('"8123x"', ""), ("[8123]", "got a list"),
                                        ("nan", ""), ("inf", "")])
def test_port_in_toml_is_not_coerced(tmp_path, value, why):
    message = _refused(tmp_path, f"[serve]\nport = {value}\n")
    assert "serve.port" in message and str(tmp_path / "cairn.toml") in message
    assert "between 0 (any free port) and 65535" in message and why in message


def test_integral_values_are_accepted_from_toml_env_and_flags(tmp_path):
    cfg = load_config(_toml(tmp_path, "[serve]\nport = 8124\n[clickhouse]\nport = 9000.0\n"), environ={})
    assert cfg["serve.port"] == 8124 and cfg["clickhouse.port"] == 9000
    assert isinstance(cfg["clickhouse.port"], int)
    cfg = load_config(None, {"mysql.port": "3307"}, environ={"CAIRN_SERVE_PORT": " 8125 "})
    assert cfg["serve.port"] == 8125 and cfg["mysql.port"] == 3307


@pytest.mark.parametrize("env_value", ["8123.9", "8123.0", "true", "", "0x1f90", "1e3"])
def test_port_from_environment_must_be_a_whole_number(env_value):
    message = _refused(env={"CAIRN_CLICKHOUSE_PORT": env_value})
    assert "clickhouse.port" in message and "CAIRN_CLICKHOUSE_PORT" in message and "65535" in message


def test_workers_true_is_refused(tmp_path):
    message = _refused(tmp_path, "[serve]\nworkers = true\n")
    assert "serve.workers" in message and "got true/false" in message and "from 1 to 1024" in message
    assert "serve.workers (flag)" in _refused(flags={"serve.workers": True})
    assert _refused(env={"CAIRN_SERVE_WORKERS": "0"})


@pytest.mark.parametrize("key", ["collector.batch_bytes", "serve.max_body_bytes", "mysql.refresh_seconds",
                                 "mysql.tables.users.refresh_seconds", "collector.min_free_mb"])
def test_every_integer_setting_refuses_booleans_and_fractions(tmp_path, key):
    section, name = key.rsplit(".", 1)
    for value in ("true", "1.5", '"abc"', "-1"):
        assert key in _refused(tmp_path, f"[{section}]\n{name} = {value}\n")


# -- lists -----------------------------------------------------------------------

@pytest.mark.parametrize("value", ["5", "true", "[5]", '["a.log", 5]', '[""]', "1.5"])
def test_sources_must_be_a_list_of_strings(tmp_path, value):
    message = _refused(tmp_path, f"[collector]\nsources = {value}\n")
    assert "collector.sources" in message and "a list of strings" in message


def test_sources_from_toml_or_environment():
    cfg = load_config(None, environ={"CAIRN_COLLECTOR_SOURCES": "a.log, b/*.log"})
    assert cfg["collector.sources"] == ["a.log", "b/*.log"]
    assert load_config(None, {"collector.sources": ["x.log"]}, environ={})["collector.sources"] == ["x.log"]


# -- numbers of seconds ----------------------------------------------------------

@pytest.mark.parametrize("value", ['"inf"', '"nan"', "inf", "nan", "-inf", "1e-9", "0", "-1", "1e9", "true",
                                   '"0.2s"'])
def test_flush_interval_must_be_finite_and_sane(tmp_path, value):
    message = _refused(tmp_path, f"[collector]\nflush_interval = {value}\n")
    assert "collector.flush_interval" in message and "from 0.01 to 3600" in message


@pytest.mark.parametrize("env_value", ["inf", "nan", "NaN", "Infinity", "1e-9", "", "0.2s"])
def test_flush_interval_from_environment(env_value):
    message = _refused(env={"CAIRN_COLLECTOR_FLUSH_INTERVAL": env_value})
    assert "CAIRN_COLLECTOR_FLUSH_INTERVAL" in message and "from 0.01 to 3600" in message


def test_flush_interval_bounds_are_accepted(tmp_path):
    assert load_config(_toml(tmp_path, "[collector]\nflush_interval = 0.01\n"), environ={})[
        "collector.flush_interval"] == 0.01
    assert load_config(None, environ={"CAIRN_COLLECTOR_FLUSH_INTERVAL": "3600"})["collector.flush_interval"] == 3600
    assert load_config(None, {"collector.flush_interval": "1"}, environ={})["collector.flush_interval"] == 1.0


@pytest.mark.parametrize("setting", [s for s in SETTINGS if isinstance(s.default, float)], ids=lambda s: s.name)
def test_every_float_setting_is_finite(setting):
    for value in ("inf", "-inf", "nan", "1e999"):
        assert setting.name in _refused(env={setting.env_var: value})
    for value in (float("inf"), float("nan")):
        assert setting.name in _refused(flags={setting.name: value})


# -- booleans and text -----------------------------------------------------------

def test_booleans_and_text_are_not_coerced(tmp_path):
    assert "expected true or false" in _refused(tmp_path, "[clickhouse]\nsecure = 1\n")
    assert "got a number" in _refused(tmp_path, "[clickhouse]\nhost = 5\n")
    assert "clickhouse.password" in _refused(tmp_path, "[clickhouse]\npassword = 12345678\n")
    assert "engine" in _refused(tmp_path, "engine = true\n")
    assert "database" in _refused(tmp_path, "database = 5\n")
    assert "mysql.host" in _refused(env={"CAIRN_MYSQL_HOST": " "})
    assert load_config(None, environ={"CAIRN_CLICKHOUSE_SECURE": "yes"})["clickhouse.secure"] is True


# -- the free-space reserve ------------------------------------------------------

def test_min_free_mb_setting():
    assert load_config(None, environ={})["collector.min_free_mb"] == 256
    assert load_config(None, environ={"CAIRN_COLLECTOR_MIN_FREE_MB": "0"})["collector.min_free_mb"] == 0
    assert load_config(None, {"collector.min_free_mb": "1024"}, environ={})["collector.min_free_mb"] == 1024
    message = _refused(env={"CAIRN_COLLECTOR_MIN_FREE_MB": "-5"})
    assert "collector.min_free_mb" in message and "0 (no reserve)" in message
    assert "collector.min_free_mb" in _refused(env={"CAIRN_COLLECTOR_MIN_FREE_MB": "2.5"})


# -- the data directory ----------------------------------------------------------

@pytest.mark.parametrize("value", ["", "   ", "a\0b"])
def test_empty_data_dir_is_refused(value):
    message = _refused(env={"CAIRN_DATA_DIR": value})
    assert "data_dir" in message and "CAIRN_DATA_DIR" in message and "folder path" in message
    assert "data_dir (flag)" in _refused(flags={"data_dir": value})


@pytest.mark.skipif(not os.path.exists("/dev/null"), reason="needs /dev/null")
def test_special_data_dirs_are_refused(tmp_path):
    assert "/dev/null is a character device" in _refused(env={"CAIRN_DATA_DIR": "/dev/null"})
    plain = tmp_path / "file"
    plain.write_text("x")
    assert "is a regular file" in _refused(env={"CAIRN_DATA_DIR": str(plain)})
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    assert "named pipe" in _refused(env={"CAIRN_DATA_DIR": str(fifo)})
    assert "data_dir" in _refused(env={"CAIRN_DATA_DIR": str(plain / "below")})  # a file as a parent
    assert "data_dir" in _refused(tmp_path, "data_dir = 5\n")


def test_missing_or_existing_folders_are_fine_as_data_dir(tmp_path):
    assert load_config(None, environ={"CAIRN_DATA_DIR": str(tmp_path / "new")}).data_dir == tmp_path / "new"
    assert load_config(None, environ={"CAIRN_DATA_DIR": str(tmp_path)}).data_dir == tmp_path


# -- the config file -------------------------------------------------------------

def _load_within(seconds: float, path) -> BaseException | None:
    """Load ``path`` in a thread; fail the test if it takes longer than ``seconds`` (a hang)."""
    outcome: list = []

    def run():
        try:
            load_config(path, environ={})
            outcome.append(None)
        except BaseException as exc:  # noqa: BLE001 - handed back to the test
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert outcome, f"loading {path} did not finish within {seconds} s"
    return outcome[0]


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_config_file_that_is_a_device_is_refused_without_reading_it():
    error = _load_within(5, "/dev/zero")
    assert isinstance(error, ConfigError) and "not a regular file" in str(error)
    error = _load_within(5, "/dev/null")
    assert isinstance(error, ConfigError) and "character device" in str(error)


def test_config_file_that_is_a_fifo_is_refused_without_hanging(tmp_path):
    fifo = tmp_path / "cairn.fifo"
    os.mkfifo(fifo)
    error = _load_within(5, fifo)
    assert isinstance(error, ConfigError) and "named pipe" in str(error)


def test_config_file_that_is_a_folder_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="is a folder, not a regular file"):
        load_config(None, environ={"CAIRN_CONFIG": str(tmp_path)})


def test_config_file_size_limit(tmp_path):
    big = tmp_path / "big.toml"
    big.write_text("# padding\n" * (MAX_CONFIG_BYTES // 10 + 1))
    error = _load_within(5, big)
    assert isinstance(error, ConfigError) and "larger than 1024 KiB" in str(error)
    fits = tmp_path / "fits.toml"
    fits.write_text("# padding\n" * (MAX_CONFIG_BYTES // 10 - 10) + "[serve]\nport = 9\n")
    assert load_config(fits, environ={})["serve.port"] == 9


def test_config_file_must_be_utf8(tmp_path):
    path = tmp_path / "latin1.toml"
    path.write_bytes(b"[mysql]\npassword = '\xe9t\xe9'\n")
    with pytest.raises(ConfigError, match="not UTF-8 text"):
        load_config(path, environ={})


def test_long_values_are_cut_in_messages(tmp_path):
    message = _refused(env={"CAIRN_SERVE_PORT": "9" * 5000})
    assert len(message) < 400 and "serve.port" in message


def test_a_library_user_knows_the_settings_the_extensions_add(tmp_path):
    # A fresh interpreter: only `cairn.config` is imported, as a script using the library would.
    import subprocess
    import sys

    config = _toml(tmp_path, "[serve]\nworkers = 3\n[superset]\nport = 9000\n")
    done = subprocess.run([sys.executable, "-c", "import sys; from cairn.config import load_config; "
                           "c = load_config(sys.argv[1], environ={}); print(c['serve.workers'], c['superset.port'])",
                           str(config)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["3", "9000"]
