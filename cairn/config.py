"""Cairn configuration: defaults < TOML file < ``CAIRN_*`` environment < CLI flags.

Every setting has a dotted name (``clickhouse.port``) that is also its place in
the TOML file (``[clickhouse] port = 8123``) and, upper-cased with dots turned
into underscores, its environment variable (``CAIRN_CLICKHOUSE_PORT``).
Zero configuration works: the embedded engine keeps its data in ``./.cairn``.
"""

from __future__ import annotations

import json
import math
import os
import re
import stat
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from cairn import hooks
from cairn.catalog import MYSQL_TABLES
from cairn.errors import ConfigError

DEFAULT_CONFIG_FILE = "cairn.toml"


# ---------------------------------------------------------------------------
# Parsers: strict by type and range. A value comes typed from the TOML file (or from
# code), or as text from an environment variable or a flag: text is parsed, typed
# values must already be of the right type. Nothing is coerced (true is not 1, 8123.9
# is not 8123, 5 is not ["5"]); each parser says what it accepts in its ValueError.
# ---------------------------------------------------------------------------

_INTEGER_TEXT = re.compile(r"\s*[+-]?\d+\s*")
_NUMBER_TEXT = re.compile(r"\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*")


def _what(value: Any) -> str:
    """How a wrong value is described in a message ("got true/false", "got a list")."""
    if isinstance(value, bool):
        return "got true/false"
    if isinstance(value, float):
        return "got a fraction" if math.isfinite(value) else "got a non-finite number"
    if isinstance(value, (list, tuple)):
        return "got a list"
    if isinstance(value, dict):
        return "got a table"
    if isinstance(value, int):
        return "got a number"
    if isinstance(value, str):
        return "got text"
    return "got a date or time" if hasattr(value, "isoformat") else f"got {type(value).__name__}"


def _parse_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        text = value.strip().lower()
        if text in {"1", "true", "yes", "on"}:
            return True
        if text in {"0", "false", "no", "off"}:
            return False
    raise ValueError("expected true or false")


def integer(minimum: int, maximum: int, accepted: str) -> Callable[[Any], int]:
    """A parser of whole numbers from ``minimum`` to ``maximum`` (``accepted`` describes them).

    Refused: true/false, fractions (8123.9; 8123.0 is 8123), non-finite numbers, text
    that is not a whole number, anything out of range.
    """
    def parse(value: Any) -> int:
        if isinstance(value, bool):
            raise ValueError(f"expected {accepted}, {_what(value)}")
        if isinstance(value, int):
            number = value
        elif isinstance(value, float) and math.isfinite(value) and value.is_integer():
            number = int(value)
        elif isinstance(value, str) and _INTEGER_TEXT.fullmatch(value):
            number = int(value)
        else:
            raise ValueError(f"expected {accepted}, {_what(value)}" if not isinstance(value, str)
                             else f"expected {accepted}")
        if not minimum <= number <= maximum:
            raise ValueError(f"expected {accepted}")
        return number

    return parse


def number(minimum: float, maximum: float, accepted: str) -> Callable[[Any], float]:
    """A parser of finite numbers from ``minimum`` to ``maximum`` ("inf", "nan" and true/false refused)."""
    def parse(value: Any) -> float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            result = float(value)
        elif isinstance(value, str) and _NUMBER_TEXT.fullmatch(value):
            result = float(value)
        else:
            raise ValueError(f"expected {accepted}" + ("" if isinstance(value, str) else f", {_what(value)}"))
        if not math.isfinite(result) or not minimum <= result <= maximum:
            raise ValueError(f"expected {accepted}")
        return result

    return parse


def _port(minimum: int, accepted: str) -> Callable[[Any], int]:
    return integer(minimum, 65535, f"a port number {accepted}")


_parse_port = _port(1, "between 1 and 65535")
# A port to listen on: 0 asks the system for any free port.
_parse_listen_port = _port(0, "between 0 (any free port) and 65535")


def _seconds(minimum: float, maximum: float) -> Callable[[Any], float]:
    return number(minimum, maximum, f"a number of seconds from {minimum:g} to {maximum:g}")


def _text(*, empty: bool = True, what: str = "text") -> Callable[[Any], str]:
    """A parser of strings (no NUL character; not empty unless ``empty``)."""
    def parse(value: Any) -> str:
        if not isinstance(value, str):
            raise ValueError(f"expected {what} in quotes, {_what(value)}")
        if "\0" in value:
            raise ValueError(f"expected {what} without NUL characters")
        if not empty and not value.strip():
            raise ValueError(f"expected {what}, not an empty string")
        return value

    return parse


def _parse_list(value: Any) -> list[str]:
    """Lists come as TOML arrays of strings, or as comma/os.pathsep-separated strings (environment)."""
    accepted = "a list of strings, or one string of comma-separated items"
    if isinstance(value, (list, tuple)):
        if not all(isinstance(item, str) and item and "\0" not in item for item in value):
            raise ValueError(f"expected {accepted} (every item a non-empty string)")
        return list(value)
    if not isinstance(value, str):
        raise ValueError(f"expected {accepted}, {_what(value)}")
    return [part.strip() for part in re.split(r"[,%s]" % re.escape(os.pathsep), value) if part.strip()]


def _file_kind(mode: int) -> str:
    for test, kind in ((stat.S_ISREG, "a regular file"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a named pipe (FIFO)"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a folder")):
        if test(mode):
            return kind
    return "not a regular file"


def _folder(*, empty: bool) -> Callable[[Any], str]:
    """A parser of folder paths: missing (created later) or an existing folder, never a file or device."""
    text = _text(empty=empty, what="a folder path")

    def parse(value: Any) -> str:
        path = text(value)
        if not path:
            return path
        try:
            mode = os.stat(os.path.expanduser(path)).st_mode
        except FileNotFoundError:
            return path
        except OSError as exc:
            raise ValueError(f"expected a folder path, but {path} cannot be used: {exc.strerror}") from None
        if not stat.S_ISDIR(mode):
            raise ValueError(f"expected a folder path, but {path} is {_file_kind(mode)}")
        return path

    return parse


def _parse_identifier(value: Any) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value):
        raise ValueError("expected a name of letters, digits and underscores, not starting with a digit")
    return value


def _parse_optional_identifier(value: Any) -> str:
    return "" if value == "" else _parse_identifier(value)


def _choice(*choices: str) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        text = value.strip().lower() if isinstance(value, str) else None
        if text not in choices:
            raise ValueError("expected one of: " + ", ".join(choices))
        return text

    return parse


def _parse_table_mode(value: Any) -> str:
    text = value.strip().lower() if isinstance(value, str) else None
    if text not in ("", "synced", "live"):
        raise ValueError('expected synced, live, or "" (use mysql.mode)')
    return text


_parse_non_negative_int = integer(0, 2**31 - 1, "a whole number, 0 or more")
_parse_bytes = integer(1, 2**40, "a number of bytes, from 1 to 2**40")


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
    Setting("data_dir", ".cairn", _folder(empty=False), "where the embedded engine and Cairn's local state live"),
    Setting("database", "openedx", _parse_identifier, "ClickHouse database of the datalake"),
    Setting("migrations_folders", [], _parse_list,
            "extra folders of your own .sql migrations, merged with Cairn's in name order"),
    Setting("clickhouse.host", "127.0.0.1", _text(empty=False, what="a host name"), "ClickHouse server host (server engine)"),
    Setting("clickhouse.port", 8123, _parse_port, "ClickHouse HTTP(S) port"),
    Setting("clickhouse.user", "default", _text(empty=False, what="a user name"), "ClickHouse user"),
    Setting("clickhouse.password", "", _text(what="a password"), "ClickHouse password", secret=True),
    Setting("clickhouse.secure", False, _parse_bool, "use HTTPS to reach ClickHouse"),
    Setting("clickhouse.cluster", "", _parse_optional_identifier,
            "cluster name: DDL runs ON CLUSTER and tables are replicated"),
    Setting("clickhouse.connect_timeout", 10.0, _seconds(0.1, 3600), "seconds to wait for a connection"),
    Setting("mysql.host", "127.0.0.1", _text(empty=False, what="a host name"), "Open edX MySQL host"),
    Setting("mysql.port", 3306, _parse_port, "Open edX MySQL port"),
    Setting("mysql.user", "root", _text(empty=False, what="a user name"), "Open edX MySQL user (read access is enough)"),
    Setting("mysql.password", "", _text(what="a password"), "Open edX MySQL password", secret=True),
    Setting("mysql.database", "openedx", _text(empty=False, what="a database name"), "Open edX MySQL database"),
    Setting("mysql.enabled", True, _parse_bool,
            "bring the Open edX MySQL tables into the datalake (false: events only; tables stay empty)"),
    Setting("mysql.mode", "synced", _choice("synced", "live"),
            "synced (copied into ClickHouse every mysql.refresh_seconds) or live (every query reads MySQL)"),
    Setting("mysql.refresh_seconds", 60, integer(1, 86400 * 366, "a whole number of seconds, 1 or more"), "seconds between two copies of a synced table"),
    *(Setting(f"mysql.tables.{_table}.mode", "", _parse_table_mode,
              f"mode of openedx.{_table} (empty: mysql.mode)") for _table in MYSQL_DATALAKE_TABLES),
    *(Setting(f"mysql.tables.{_table}.refresh_seconds", 0, _parse_non_negative_int,
              f"refresh period of openedx.{_table} when synced (0: mysql.refresh_seconds)")
      for _table in MYSQL_DATALAKE_TABLES),
    Setting("courses.exports_dir", "", _folder(empty=True),
            "folder of OLX course exports (.tar.gz, folders, .jsonl dumps) that `cairn import-course --watch` "
            "and `cairn refresh-courses` re-import when they change"),
    Setting("courses.dump_command", "", _text(what="a command"),
            "command printing a course's blocks as JSON lines ({course_id} replaced), e.g. "
            "tutor local run lms python /cairn/cairn_dump_course_blocks.py {course_id}; "
            "used by `cairn refresh-courses`"),
    Setting("courses.poll_interval", 60.0, _seconds(0.1, 86400),
            "seconds between checks for published courses (course_overviews.modified) or changed exports"),
    Setting("serve.host", "127.0.0.1", _text(empty=False, what="an address"), "address `cairn serve` listens on (0.0.0.0 for every interface)"),
    Setting("serve.port", 8123, _parse_listen_port, "port of `cairn serve` (ClickHouse HTTP interface)"),
    Setting("serve.workers", max(2, os.cpu_count() or 2), integer(1, 1024, "a whole number from 1 to 1024"),
            "statements `cairn serve` runs in the engine at once, more wait their turn (default: cores)"),
    Setting("serve.max_body_bytes", 256 * 1024 * 1024, _parse_bytes,
            "largest HTTP request body `cairn serve` accepts (bytes)"),
    Setting("serve.display_name", "cairn", _text(what="a name"), "server name sent in X-ClickHouse-Server-Display-Name"),
    Setting("collector.sources", [], _parse_list,
            "tracking-log files or globs that `cairn collect`/`cairn serve` follow"),
    Setting("collector.flush_interval", 0.2, _seconds(0.01, 3600),
            "seconds between inserts while following (keeps events queryable within a second)"),
    Setting("collector.batch_bytes", 4 * 1024 * 1024, _parse_bytes,
            "bytes of log read per insert during backfill"),
    Setting("collector.min_free_mb", 256, integer(0, 1024 * 1024, "a whole number of MB from 0 (no reserve) to 1048576"),
            "free space (MB) kept on the data directory's file system: below it the collector pauses and "
            "load/backfill refuse to start a batch (0: no reserve)"),
)
SETTINGS_BY_NAME = {setting.name: setting for setting in SETTINGS}


def all_settings() -> tuple[Setting, ...]:
    """The built-in settings, then those added to the ``cairn.hooks.SETTINGS`` extension point.

    The built-in providers (``hooks.PROVIDERS``: serve.*, superset.*) are imported first,
    so a configuration loaded by a library user knows the same settings as the CLI.
    """
    hooks.load_providers()
    extra = tuple(s for s in hooks.SETTINGS.items() if s.name not in SETTINGS_BY_NAME)
    return SETTINGS + extra


def setting_named(name: str) -> Setting | None:
    """The setting called ``name`` (built-in or added through ``cairn.hooks.SETTINGS``), or None."""
    found = SETTINGS_BY_NAME.get(name)
    if found is None:
        hooks.load_providers()
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
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"invalid value {_shown(raw)} for {name} ({origin}): {exc}") from None


def _shown(raw: Any) -> str:
    """A value as written in TOML (true, 8123.9, "text"), cut short so that the message stays one line."""
    if isinstance(raw, bool):
        return "true" if raw else "false"
    text = json.dumps(raw, default=str) if isinstance(raw, (str, list, dict, int, float)) else repr(raw)
    return text if len(text) <= 80 else text[:77] + "..."


# The config file must be a regular file of at most this size (read with a bounded read).
MAX_CONFIG_BYTES = 1024 * 1024


def _read_at_most(fd: int, limit: int) -> bytes:
    """Up to ``limit`` bytes of the open file ``fd`` (a bounded read)."""
    chunks, size = [], 0
    while size < limit:
        chunk = os.read(fd, min(65536, limit - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def read_config_file(path: Path) -> str:
    """The text of the config file ``path``: a regular UTF-8 file of at most ``MAX_CONFIG_BYTES``.

    Opened without blocking (a FIFO does not hang) and checked on the open descriptor,
    so a device (``/dev/zero``), a FIFO or a folder is refused before anything is read.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise ConfigError(f"config file {path} is {_file_kind(mode)}, not a regular file: "
                              "give the path of a TOML file")
        data = _read_at_most(fd, MAX_CONFIG_BYTES + 1)
    finally:
        os.close(fd)
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(f"config file {path} is larger than {MAX_CONFIG_BYTES // 1024} KiB: "
                          "give a TOML file of Cairn settings")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path} is not UTF-8 text: give a TOML file") from None


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
            document = tomllib.loads(read_config_file(path))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
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
