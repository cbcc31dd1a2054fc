"""The limits of `cairn serve` are validated settings registered through cairn.hooks.SETTINGS."""

from __future__ import annotations

import pytest

from cairn import hooks
from cairn.config import load_config
from cairn.errors import ConfigError
from cairn.serve import settings as serve_settings


def test_the_limits_are_hook_settings_provided_by_the_serve_module():
    assert "cairn.serve.settings" in hooks.PROVIDERS
    names = {setting.name for setting in hooks.SETTINGS}
    assert {"serve.pool_sessions", "serve.max_sessions", "serve.max_query_size", "serve.max_result_bytes",
            "serve.failed_logins_per_user", "serve.max_session_timeout", "serve.drain_bytes"} <= names


def test_environment_values_reach_the_server_options(tmp_path):
    config = load_config(environ={"CAIRN_SERVE_MAX_SESSIONS": "7", "CAIRN_SERVE_FAILED_LOGIN_WINDOW": "2.5",
                                  "CAIRN_DATA_DIR": str(tmp_path)}, config_file=None)
    options = serve_settings.options_from(config)
    assert options.max_sessions == 7 and options.failed_login_window == 2.5
    assert options.max_query_size == 256 * 1024  # the default


@pytest.mark.parametrize("name, value", [("CAIRN_SERVE_POOL_SESSIONS", "0"), ("CAIRN_SERVE_MAX_QUERY_SIZE", "12"),
                                         ("CAIRN_SERVE_SESSION_TIMEOUT", "inf"),
                                         ("CAIRN_SERVE_MAX_SESSIONS", "many")])
def test_bad_values_are_refused_with_one_line(tmp_path, name, value):
    with pytest.raises(ConfigError) as caught:
        load_config(environ={name: value, "CAIRN_DATA_DIR": str(tmp_path)}, config_file=None)
    assert name in str(caught.value) and "\n" not in str(caught.value)
