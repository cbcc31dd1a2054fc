"""The limits of `cairn serve` as validated settings (``serve.*``), registered through ``cairn.hooks.SETTINGS``.

The listening settings (``serve.host``, ``serve.port``, ``serve.workers``,
``serve.max_body_bytes``, ``serve.display_name``) are built-in; the limits below are
added by this module (listed in ``cairn.hooks.PROVIDERS``), read, validated and reported
like any other setting (TOML, ``CAIRN_SERVE_*``, ``--set``, ``cairn config``).
``options_from(config)`` turns them all into the ``ServeOptions`` the server runs with.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cairn import hooks
from cairn.config import Setting, _parse_bool, integer, number
from cairn.serve.options import ServeOptions

if TYPE_CHECKING:  # pragma: no cover
    from cairn.config import Config

_MIB = 1024 * 1024

SERVE_SETTINGS: tuple[Setting, ...] = (
    Setting("serve.pool_sessions", 32, integer(1, 1024, "a whole number from 1 to 1024"),
            "chDB sessions kept per pool of `cairn serve` (admins share one, each restricted user has one); "
            "a slow reader holds a session, not a worker"),
    Setting("serve.session_timeout", 60.0, number(1, 86400, "a number of seconds from 1 to 86400"),
            "seconds a client session (session_id) stays open while idle, unless the client sends session_timeout"),
    Setting("serve.max_session_timeout", 3600.0, number(1, 86400 * 7, "a number of seconds from 1 to 604800"),
            "largest session_timeout a client may ask for (ClickHouse's max_session_timeout; beyond: code 374)"),
    Setting("serve.max_sessions", 1000, integer(1, 100_000, "a whole number from 1 to 100000"),
            "client sessions (session_id) open at once in all (beyond: code 700)"),
    Setting("serve.max_sessions_per_user", 100, integer(1, 100_000, "a whole number from 1 to 100000"),
            "client sessions (session_id) open at once per user (beyond: code 700)"),
    Setting("serve.max_query_size", 256 * 1024, integer(1024, 64 * _MIB, "a number of bytes from 1024 to 67108864"),
            "longest query text of a restricted user, compressed or not (beyond: 413, code 307)"),
    Setting("serve.max_result_bytes", 256 * _MIB, integer(_MIB, 2**40, "a number of bytes from 1048576 to 2**40"),
            "largest result run whole (JSON, Parquet...) and any restricted user's result (beyond: code 396)"),
    Setting("serve.query_timeout", 300.0, number(1, 86400, "a number of seconds from 1 to 86400"),
            "longest a restricted user's query may run (max_execution_time of their sessions)"),
    Setting("serve.failed_logins_per_user", 5, integer(1, 10_000, "a whole number from 1 to 10000"),
            "failed logins per user name in serve.failed_login_window before logins are refused (429)"),
    Setting("serve.failed_logins_per_address", 30, integer(1, 100_000, "a whole number from 1 to 100000"),
            "failed logins per client address in serve.failed_login_window before logins are refused (429)"),
    Setting("serve.failed_login_window", 60.0, number(1, 86400, "a number of seconds from 1 to 86400"),
            "seconds over which failed logins are counted"),
    Setting("serve.drain_bytes", 16 * _MIB, integer(0, 2**31 - 1, "a number of bytes from 0 to 2147483647"),
            "most of a request body left unread by an error that is still read to keep the connection"),
    Setting("serve.buffer_bytes", _MIB, integer(0, 1024 * _MIB, "a number of bytes from 0 to 1073741824"),
            "results up to this size are sent whole with Content-Length and a summary; larger ones stream"),
    Setting("serve.shutdown_grace", 10.0, number(0, 3600, "a number of seconds from 0 to 3600"),
            "seconds running queries get to finish on SIGTERM before they are cancelled"),
    Setting("serve.query_log", True, _parse_bool,
            "keep a log of every statement `cairn serve` finishes in the internal table _query_log (admins only)"),
    Setting("serve.query_log_ttl_days", 30, integer(1, 3650, "a whole number of days from 1 to 3650"),
            "days the query log keeps a statement (the TTL of _query_log, set when `cairn serve` starts)"),
    Setting("serve.query_log_flush_interval", 5.0, number(0.1, 300, "a number of seconds from 0.1 to 300"),
            "seconds between writes of the query log (sooner when 1000 statements wait; always on shutdown)"),
)

for _setting in SERVE_SETTINGS:
    hooks.SETTINGS.add(_setting)


def options_from(config: "Config") -> ServeOptions:
    """The ``ServeOptions`` of ``config``'s ``serve.*`` settings (built-in and the limits above).

    A configuration loaded before this module registered its settings has none of them:
    their defaults apply.
    """
    fields = {name: config[f"serve.{name}"] for name in ("host", "port", "workers", "max_body_bytes",
                                                         "display_name")}
    for setting in SERVE_SETTINGS:
        fields[setting.name.removeprefix("serve.")] = config.get(setting.name, setting.default)
    return ServeOptions(**fields)
