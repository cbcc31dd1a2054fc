"""Cairn configuration: defaults < TOML file < ``CAIRN_*`` environment < CLI flags.

Every setting has a dotted name (``clickhouse.port``) that is also its place in
the TOML file (``[clickhouse] port = 8123``) and, upper-cased with dots turned
into underscores, its environment variable (``CAIRN_CLICKHOUSE_PORT``).
Zero configuration works: the embedded engine keeps its data in ``./.cairn``.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from cairn import hooks
from cairn.catalog import MYSQL_TABLES
from cairn.errors import ConfigError

DEFAULT_CONFIG_FILE = "cairn.toml"


def _parse_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"1", "true", "yes", "on"}:
        return True
    if text in {"0", "false", "no", "off"}:
        return False
    raise ValueError("expected true or false")


def _port(minimum: int, accepted: str) -> Callable[[Any], int]:
    def parse(value: Any) -> int:
        try:
            port = int(value)
        except (TypeError, ValueError):
            raise ValueError(f"expected a port number {accepted}") from None
        if not minimum <= port <= 65535:
            raise ValueError(f"expected a port number {accepted}")
        return port

    return parse


_parse_port = _port(1, "between 1 and 65535")
# A port to listen on: 0 asks the system for any free port.
_parse_listen_port = _port(0, "between 0 (any free port) and 65535")


def _parse_positive_float(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError("expected a positive number") from None
    if number <= 0:
        raise ValueError("expected a positive number")
    return number


def _parse_positive_int(value: Any) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ValueError("expected a positive integer") from None
    if number <= 0:
        raise ValueError("expected a positive integer")
    return number


def _parse_list(value: Any) -> list[str]:
    """Lists come as TOML arrays, or as comma/os.pathsep-separated strings from the environment."""
    if isinstance(value, (list, tuple)):
        return [str(item) for item in value]
    text = str(value).strip()
    if not text:
        return []
    return [part.strip() for part in re.split(r"[,%s]" % re.escape(os.pathsep), text) if part.strip()]


def _parse_identifier(value: Any) -> str:
    text = str(value)
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", text):
        raise ValueError("expected a name of letters, digits and underscores, not starting with a digit")
    return text


def _parse_optional_identifier(value: Any) -> str:
    return "" if str(value) == "" else _parse_identifier(value)


def _choice(*choices: str) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        text = str(value).strip().lower()
        if text not in choices:
            raise ValueError("expected one of: " + ", ".join(choices))
        return text

    return parse


def _parse_non_negative_int(value: Any) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ValueError("expected a whole number, 0 or more") from None
    if number < 0:
        raise ValueError("expected a whole number, 0 or more")
    return number


def _parse_table_mode(value: Any) -> str:
    text = str(value).strip().lower()
    if text not in ("", "synced", "live"):
        raise ValueError('expected synced, live, or "" (use mysql.mode)')
    return text


# The Open edX MySQL tables as named in the datalake: each gets its own mode and refresh
# period settings. Declared in the catalog (cairn/catalog.py).
MYSQL_DATALAKE_TABLES = tuple(MYSQL_TABLES)


@dataclass(frozen=True)
class Setting:
    """One configuration key: its default, how to parse it, and what it means."""

    name: str
    default: Any
    parse: Callable[[Any], Any]
    help: str
    secret: bool = False

    @property
    def env_var(self) -> str:
        return "CAIRN_" + self.name.upper().replace(".", "_")


SETTINGS: tuple[Setting, ...] = (
    Setting("engine", "embedded", _choice("embedded", "server"),
            "embedded (chDB in this process, the default) or server (a ClickHouse server over HTTP)"),
    Setting("data_dir", ".cairn", str, "where the embedded engine and Cairn's local state live"),
    Setting("database", "openedx", _parse_identifier, "ClickHouse database of the datalake"),
    Setting("migrations_folders", [], _parse_list,
            "extra folders of your own .sql migrations, merged with Cairn's in name order"),
    Setting("clickhouse.host", "127.0.0.1", str, "ClickHouse server host (server engine)"),
    Setting("clickhouse.port", 8123, _parse_port, "ClickHouse HTTP(S) port"),
    Setting("clickhouse.user", "default", str, "ClickHouse user"),
    Setting("clickhouse.password", "", str, "ClickHouse password", secret=True),
    Setting("clickhouse.secure", False, _parse_bool, "use HTTPS to reach ClickHouse"),
    Setting("clickhouse.cluster", "", _parse_optional_identifier,
            "cluster name: DDL runs ON CLUSTER and tables are replicated"),
    Setting("clickhouse.connect_timeout", 10.0, _parse_positive_float, "seconds to wait for a connection"),
    Setting("mysql.host", "127.0.0.1", str, "Open edX MySQL host"),
    Setting("mysql.port", 3306, _parse_port, "Open edX MySQL port"),
    Setting("mysql.user", "root", str, "Open edX MySQL user (read access is enough)"),
    Setting("mysql.password", "", str, "Open edX MySQL password", secret=True),
    Setting("mysql.database", "openedx", str, "Open edX MySQL database"),
    Setting("mysql.enabled", True, _parse_bool,
            "bring the Open edX MySQL tables into the datalake (false: events only; tables stay empty)"),
    Setting("mysql.mode", "synced", _choice("synced", "live"),
            "synced (copied into ClickHouse every mysql.refresh_seconds) or live (every query reads MySQL)"),
    Setting("mysql.refresh_seconds", 60, _parse_positive_int, "seconds between two copies of a synced table"),
    *(Setting(f"mysql.tables.{_table}.mode", "", _parse_table_mode,
              f"mode of openedx.{_table} (empty: mysql.mode)") for _table in MYSQL_DATALAKE_TABLES),
    *(Setting(f"mysql.tables.{_table}.refresh_seconds", 0, _parse_non_negative_int,
              f"refresh period of openedx.{_table} when synced (0: mysql.refresh_seconds)")
      for _table in MYSQL_DATALAKE_TABLES),
    Setting("courses.exports_dir", "", str,
            "folder of OLX course exports (.tar.gz, folders, .jsonl dumps) that `cairn import-course --watch` "
            "and `cairn refresh-courses` re-import when they change"),
    Setting("courses.dump_command", "", str,
            "command printing a course's blocks as JSON lines ({course_id} replaced), e.g. "
            "tutor local run lms python /cairn/cairn_dump_course_blocks.py {course_id}; "
            "used by `cairn refresh-courses`"),
    Setting("courses.poll_interval", 60.0, _parse_positive_float,
            "seconds between checks for published courses (course_overviews.modified) or changed exports"),
    Setting("serve.host", "127.0.0.1", str, "address `cairn serve` listens on (0.0.0.0 for every interface)"),
    Setting("serve.port", 8123, _parse_listen_port, "port of `cairn serve` (ClickHouse HTTP interface)"),
    Setting("serve.workers", max(2, os.cpu_count() or 2), _parse_positive_int,
            "statements `cairn serve` runs in the engine at once, more wait their turn (default: cores)"),
    Setting("serve.max_body_bytes", 256 * 1024 * 1024, _parse_positive_int,
            "largest HTTP request body `cairn serve` accepts (bytes)"),
    Setting("serve.display_name", "cairn", str, "server name sent in X-ClickHouse-Server-Display-Name"),
    Setting("collector.sources", [], _parse_list,
            "tracking-log files or globs that `cairn collect`/`cairn serve` follow"),
    Setting("collector.flush_interval", 0.2, _parse_positive_float,
            "seconds between inserts while following (keeps events queryable within a second)"),
    Setting("collector.batch_bytes", 4 * 1024 * 1024, _parse_positive_int,
            "bytes of log read per insert during backfill"),
)
SETTINGS_BY_NAME = {setting.name: setting for setting in SETTINGS}


def all_settings() -> tuple[Setting, ...]:
    """The built-in settings, then those added to the ``cairn.hooks.SETTINGS`` extension point."""
    extra = tuple(s for s in hooks.SETTINGS.items() if s.name not in SETTINGS_BY_NAME)
    return SETTINGS + extra


def setting_named(name: str) -> Setting | None:
    """The setting called ``name`` (built-in or added through ``cairn.hooks.SETTINGS``), or None."""
    found = SETTINGS_BY_NAME.get(name)
    if found is None:
        found = next((s for s in hooks.SETTINGS.items() if s.name == name), None)
    return found

# Old names kept working: Cairn's predecessors used a singular variable for migrations.
ENV_ALIASES = {"CAIRN_MIGRATIONS_FOLDER": "migrations_folders"}


@dataclass
class Config:
    """The effective configuration and where each value came from."""

    values: dict[str, Any]
    origins: dict[str, str] = field(default_factory=dict)
    file: Path | None = None

    def __getitem__(self, name: str) -> Any:
        return self.values[name]

    def get(self, name: str, default: Any = None) -> Any:
        return self.values.get(name, default)

    @property
    def engine(self) -> str:
        return self.values["engine"]

    @property
    def database(self) -> str:
        return self.values["database"]

    @property
    def data_dir(self) -> Path:
        return Path(self.values["data_dir"]).expanduser().resolve()

    def section(self, prefix: str) -> dict[str, Any]:
        """All settings under ``prefix.`` without the prefix: ``section("mysql")["host"]``."""
        return {name[len(prefix) + 1:]: value for name, value in self.values.items()
                if name.startswith(prefix + ".")}

    def with_overrides(self, overrides: Mapping[str, Any], origin: str = "flag") -> "Config":
        """A copy with some values replaced (validated like any other source)."""
        values, origins = dict(self.values), dict(self.origins)
        for name, raw in overrides.items():
            values[name] = _validate(name, raw, origin)
            origins[name] = origin
        return Config(values, origins, self.file)

    def secret_values(self) -> list[str]:
        """The values of secret settings that are set (to mask them in anything printed)."""
        return [value for name, value in self.values.items()
                if value and (setting := setting_named(name)) is not None and setting.secret]

    def redacted(self) -> dict[str, Any]:
        """The values with secrets masked, for printing."""
        out = {}
        for name, value in self.values.items():
            setting = setting_named(name)
            out[name] = ("********" if value else "") if setting.secret else value
        return out


def _validate(name: str, raw: Any, origin: str) -> Any:
    setting = setting_named(name)
    if setting is None:
        known = ", ".join(sorted(s.name for s in all_settings()))
        raise ConfigError(f"unknown setting {name!r} ({origin}); known settings: {known}")
    try:
        return setting.parse(raw)
    except ValueError as exc:
        raise ConfigError(f"invalid value {raw!r} for {name} ({origin}): {exc}") from None


def _flatten(table: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in table.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def load_config(
    config_file: str | os.PathLike | None = None,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Config:
    """Build the effective configuration.

    ``config_file`` defaults to ``$CAIRN_CONFIG`` or ``./cairn.toml`` when it exists.
    ``overrides`` are CLI flags, the highest precedence.
    """
    environ = os.environ if environ is None else environ
    settings = all_settings()
    values = {s.name: (list(s.default) if isinstance(s.default, list) else s.default) for s in settings}
    origins = {s.name: "default" for s in settings}

    explicit = config_file or environ.get("CAIRN_CONFIG")
    path = Path(explicit) if explicit else Path(DEFAULT_CONFIG_FILE)
    used_file: Path | None = None
    if path.exists():
        try:
            document = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
        except OSError as exc:
            raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
        for name, raw in _flatten(document).items():
            values[name] = _validate(name, raw, f"in {path}")
            origins[name] = str(path)
        used_file = path
    elif explicit:
        raise ConfigError(f"config file {path} does not exist")

    for setting in settings:
        if setting.env_var in environ:
            values[setting.name] = _validate(setting.name, environ[setting.env_var], setting.env_var)
            origins[setting.name] = setting.env_var
    for env_var, name in ENV_ALIASES.items():
        if env_var in environ and SETTINGS_BY_NAME[name].env_var not in environ:
            values[name] = _validate(name, environ[env_var], env_var)
            origins[name] = env_var

    config = Config(values, origins, used_file)
    if overrides:
        config = config.with_overrides({k: v for k, v in overrides.items() if v is not None})
    return config
