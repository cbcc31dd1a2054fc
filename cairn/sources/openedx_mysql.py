"""The Open edX MySQL database: its schema, connections, and its tables in the datalake.

* ``create_openedx_tables`` creates the Open edX LMS tables (real column definitions,
  ``cairn/sources/openedx_tables.sql``) in a MySQL/MariaDB database; ``cairn demo``
  and the tests use it.
* The datalake side (``users``, ``enrollments``, ... in live or synced mode) is defined by
  migration ``0100_mysql_tables.sql``; ``apply`` re-runs it after a configuration change,
  ``sync`` copies now, ``check_schema`` compares columns, ``sync_status`` says how old
  each copy is. See docs/mysql.md.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from cairn import catalog, hooks
from cairn.engine import sql_identifier
from cairn.errors import CairnError

OPENEDX_TABLES_SQL = "openedx_tables.sql"


class MySQLUnavailable(CairnError):
    """The Open edX MySQL server cannot be reached."""


def connection_settings(source: Any) -> dict[str, Any]:
    """host/port/user/password/database from a Config (``mysql.*`` settings) or a plain mapping."""
    if hasattr(source, "section"):
        params = source.section("mysql")
    else:
        params = dict(source)
    return {
        "host": str(params.get("host", "127.0.0.1")),
        "port": int(params.get("port", 3306)),
        "user": str(params.get("user", "root")),
        "password": str(params.get("password", "") or ""),
        "database": str(params.get("database", "openedx")),
    }


def connect_mysql(source: Any, database: bool = True, connect_timeout: float = 5.0):
    """A pymysql connection (autocommit) or a one-line MySQLUnavailable naming host and port."""
    import pymysql

    params = connection_settings(source)
    try:
        return pymysql.connect(
            host=params["host"], port=params["port"], user=params["user"],
            password=params["password"], database=params["database"] if database else None,
            charset="utf8mb4", autocommit=True, connect_timeout=connect_timeout,
        )
    except pymysql.err.OperationalError as exc:
        code = exc.args[0] if exc.args else None
        reason = exc.args[1] if len(exc.args) > 1 else str(exc)
        if code == 1049:  # unknown database
            raise MySQLUnavailable(
                f"MySQL at {params['host']}:{params['port']} has no database {params['database']!r}") from None
        if code in (1045, 1044, 1698):
            raise MySQLUnavailable(
                f"MySQL at {params['host']}:{params['port']} refused user {params['user']!r}: "
                f"{_one_line(reason)}") from None
        raise MySQLUnavailable(
            f"cannot reach MySQL at {params['host']}:{params['port']}: {_one_line(reason)}") from None


def _one_line(text: Any) -> str:
    return " ".join(str(text).split())


def openedx_tables_sql() -> str:
    """The text of ``cairn/sources/openedx_tables.sql``."""
    return resources.files("cairn.sources").joinpath(OPENEDX_TABLES_SQL).read_text()


def split_sql(text: str) -> list[str]:
    """Split a SQL script into statements: ``--`` comment lines dropped, ``;`` at line end separates."""
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("--")]
    statements = re.split(r";\s*$", "\n".join(lines), flags=re.MULTILINE)
    return [s.strip() for s in statements if s.strip()]


def create_openedx_tables(connection_params: Any, create_database: bool = True) -> list[str]:
    """Create the Open edX MySQL tables (IF NOT EXISTS) in ``connection_params``' database.

    ``connection_params`` is a Config or a mapping with host/port/user/password/database.
    The database itself is created first when ``create_database``. Returns the table names.
    """
    import pymysql

    params = connection_settings(connection_params)
    where = f"MySQL at {params['host']}:{params['port']}"
    if create_database:
        conn = connect_mysql(params, database=False)
        try:
            with conn.cursor() as cur:
                cur.execute("CREATE DATABASE IF NOT EXISTS %s CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
                            % quote_mysql_identifier(params["database"]))
        except pymysql.MySQLError as exc:
            raise CairnError(f"{where}: cannot create database {params['database']!r}: "
                             f"{_one_line(exc.args[-1] if exc.args else exc)}") from None
        finally:
            conn.close()
    conn = connect_mysql(params)
    names = []
    try:
        with conn.cursor() as cur:
            for statement in split_sql(openedx_tables_sql()):
                match = re.search(r"CREATE TABLE IF NOT EXISTS `(\w+)`", statement)
                try:
                    cur.execute(statement)
                except pymysql.MySQLError as exc:
                    raise CairnError(f"{where}: cannot create table {match.group(1) if match else '?'} in "
                                     f"{params['database']!r}: {_one_line(exc.args[-1] if exc.args else exc)}") from None
                if match:
                    names.append(match.group(1))
    finally:
        conn.close()
    return names


def quote_mysql_identifier(name: str) -> str:
    """Backquote a MySQL identifier (database/table/column name)."""
    if not name or "\x00" in name:
        raise CairnError(f"invalid MySQL name {name!r}")
    return "`" + name.replace("`", "``") + "`"


# ---------------------------------------------------------------------------
# The Open edX MySQL tables in the datalake
# ---------------------------------------------------------------------------

#: datalake table (database ``openedx`` by default) -> Open edX MySQL table, from the catalog
DATALAKE_TABLES: dict[str, str] = dict(catalog.MYSQL_TABLES)
#: Columns of the MySQL tables deliberately not brought into the datalake.
NOT_COPIED: dict[str, frozenset[str]] = {"users": frozenset({"password"})}
#: The migration that defines the datalake objects; `apply` renders it again.
TABLES_MIGRATION = "0100_mysql_tables.sql"


def copy_table(name: str) -> str:
    """The MergeTree table holding the synced copy of ``name``."""
    return catalog.backing_table(name, "copy")


def refresh_view(name: str) -> str:
    """The refreshable materialized view copying ``name`` (synced mode)."""
    return catalog.backing_table(name, "refresh")


def collection_name(config: Any) -> str:
    """The ClickHouse named collection holding the MySQL credentials of this datalake."""
    return f"{config.database}_mysql"


def table_modes(config: Any) -> dict[str, str]:
    """Effective mode per datalake table: ``synced``, ``live``, or ``disabled`` (mysql.enabled false)."""
    modes = {}
    for name in DATALAKE_TABLES:
        if not config["mysql.enabled"]:
            modes[name] = "disabled"
        else:
            modes[name] = config[f"mysql.tables.{name}.mode"] or config["mysql.mode"]
    return modes


def refresh_seconds(config: Any, name: str) -> int:
    """Refresh period of a synced table (its own setting, else mysql.refresh_seconds)."""
    return config[f"mysql.tables.{name}.refresh_seconds"] or config["mysql.refresh_seconds"]


def _check_names(names: Any) -> list[str]:
    names = list(DATALAKE_TABLES) if not names else list(names)
    unknown = [n for n in names if n not in DATALAKE_TABLES]
    if unknown:
        raise CairnError(f"unknown MySQL datalake table {unknown[0]!r}; known: {', '.join(DATALAKE_TABLES)}")
    return names


def mysql_error(exc: Exception, config: Any) -> CairnError:
    """A ClickHouse error about MySQL as one line naming host and port."""
    text = " ".join(str(exc).split())
    text = text.split(", Stack trace")[0]
    where = f"{config['mysql.host']}:{config['mysql.port']}"
    if any(s in text for s in ("Connections to mysql failed", "ALL_CONNECTION_TRIES_FAILED", "mysqlxx::",
                               "Poco::Exception")):
        reason = re.search(r"ERROR \d+ : mysqlxx::\w+: (.*?)(?: \(\(nullptr\):0\)|: While executing|$)", text)
        detail = reason.group(1) if reason else text[:200]
        return MySQLUnavailable(f"cannot reach MySQL at {where} (database {config['mysql.database']!r}, "
                                f"user {config['mysql.user']!r}): {detail}")
    return CairnError(f"MySQL at {where}: {text[:300]}")


def apply(engine: Any, config: Any) -> dict[str, str]:
    """(Re)create the datalake objects of the MySQL tables for the current configuration.

    Renders ``0100_mysql_tables.sql`` again with the configuration and runs it: every
    statement there is idempotent and reconciling (mode, refresh period, credentials,
    enabled). Synced copies are kept; tables that become synced get a first copy started
    in the background. Needs migration 0100 applied (`cairn migrate`). Never waits for
    MySQL. Returns the effective mode per table.
    """
    from cairn.errors import EngineError
    from cairn.schema.migrator import Migrator, render, split_statements

    migrator = Migrator(engine, config)
    states = {s.migration.name: s for s in migrator.status()}
    status = states.get(TABLES_MIGRATION)
    if status is None or status.state == "pending":
        raise CairnError("the MySQL tables are not in the datalake yet; run `cairn migrate` first")
    before = set(engine.tables(config.database))
    sql = render(status.migration, config)
    for statement in split_statements(sql):
        try:
            engine.command(statement)
        except EngineError as exc:
            first = " ".join(statement.split())[:120]
            raise CairnError(f"applying the MySQL configuration failed at ({first}): {exc}") from None
    modes = table_modes(config)
    # Refresh views are created EMPTY (no copy inside the migration); start the first copy
    # of newly synced tables now, in the background: apply itself never waits for MySQL.
    for name, mode in modes.items():
        if mode == "synced" and refresh_view(name) not in before:
            engine.command(f"SYSTEM REFRESH VIEW {_qualified(config.database, refresh_view(name))}")
    return modes


def sync(engine: Any, config: Any, tables: Any = None) -> dict[str, int]:
    """Copy the synced tables from MySQL now and wait; returns rows per table copied.

    Live and disabled tables are skipped. A failure (MySQL down) raises a one-line
    error naming host and port; the previous copies stay as they were.
    """
    from cairn.errors import EngineError

    modes = table_modes(config)
    counts = {}
    for name in _check_names(tables):
        if modes[name] != "synced":
            continue
        view = _qualified(config.database, refresh_view(name))
        try:
            engine.command(f"SYSTEM REFRESH VIEW {view}")
            engine.command(f"SYSTEM WAIT VIEW {view}")
        except EngineError as exc:
            if exc.code == 60 or "UNKNOWN_TABLE" in str(exc):
                raise CairnError(f"{name} is not synced in the datalake yet; run `cairn mysql apply`") from None
            raise mysql_error(exc, config) from None
        counts[name] = int(engine.query_value(f"SELECT count() FROM {_qualified(config.database, copy_table(name))}"))
    return counts


@dataclass
class SchemaCheck:
    """How a MySQL table compares with what the datalake expects."""

    table: str
    mysql_table: str
    unknown: list[str] = field(default_factory=list)   # in MySQL, not in the datalake: ignored
    missing: list[str] = field(default_factory=list)   # expected, absent from MySQL: queries fail

    @property
    def ok(self) -> bool:
        """Whether the datalake can read the table (no expected column is missing)."""
        return not self.missing

    def describe(self) -> str:
        """The differences in one line (or "columns match")."""
        parts = []
        if self.unknown:
            parts.append(f"{len(self.unknown)} column(s) not brought into the datalake (newer Open edX?): "
                         + ", ".join(self.unknown))
        if self.missing:
            parts.append("missing in MySQL (older Open edX?), the table cannot be read: " + ", ".join(self.missing))
        return "; ".join(parts) or "columns match"


def check_schema(engine: Any, config: Any, tables: Any = None) -> list[SchemaCheck]:
    """Compare each MySQL table's columns with the datalake's, through ClickHouse.

    Unknown MySQL columns (a newer Open edX release) are reported, not fatal: the
    datalake reads the columns it knows by name. Missing ones are reported too.
    Raises MySQLUnavailable (one line, host and port) when MySQL cannot be reached.
    """
    from cairn.errors import EngineError

    if not config["mysql.enabled"]:
        raise CairnError("MySQL is disabled (mysql.enabled = false)")
    results = []
    for name in _check_names(tables):
        source = DATALAKE_TABLES[name]
        expected = [row[0] for row in engine.query_rows(
            "SELECT name FROM system.columns WHERE database = {db:String} AND table = {t:String} "
            "AND default_kind != 'MATERIALIZED' ORDER BY position",
            {"db": config.database, "t": copy_table(name)})]
        if not expected:
            raise CairnError("the MySQL tables are not in the datalake yet; run `cairn migrate` first")
        try:
            actual = [row[0] for row in engine.query_rows(
                f"DESCRIBE TABLE mysql({sql_identifier(collection_name(config))}, `table` = {{t:String}}, "
                "connect_timeout = 5, connection_max_tries = 1)", {"t": source})]
        except EngineError as exc:
            if "doesn't exist" in str(exc) or "1146" in str(exc):
                results.append(SchemaCheck(name, source, [], expected))
                continue
            raise mysql_error(exc, config) from None
        skipped = NOT_COPIED.get(name, frozenset())
        results.append(SchemaCheck(
            name, source,
            unknown=[c for c in actual if c not in expected and c not in skipped],
            missing=[c for c in expected if c not in actual]))
    return results


def schema_differences(engine: Any, config: Any, tables: Any = None) -> list[SchemaCheck]:
    """The tables whose MySQL columns differ from the datalake's (a newer or older Open edX).

    Reported after a sync, never fatal there: the datalake reads the columns it knows.
    """
    return [result for result in check_schema(engine, config, tables) if result.unknown or result.missing]


def sync_status(engine: Any, config: Any) -> list[dict[str, Any]]:
    """Per table: mode, rows of the copy, when it was last copied, how old, last error."""
    db = config.database
    refreshes = {row[0]: row[1:] for row in engine.query_rows(
        "SELECT view, status, last_success_time, next_refresh_time, exception FROM system.view_refreshes "
        "WHERE database = {db:String}", {"db": db})}
    existing = set(engine.tables(db))
    now = engine.query_value("SELECT now64(3, 'UTC')")
    rows = []
    for name, mode in table_modes(config).items():
        if copy_table(name) not in existing:
            continue
        count, synced_at = engine.query_rows(
            f"SELECT count(), max(_synced_at) FROM {_qualified(db, copy_table(name))}")[0]
        synced_at = synced_at if count else None
        state, error = "", ""
        refresh = refreshes.get(refresh_view(name))
        if refresh is not None:
            state, last_success, _next, exception = refresh
            if last_success is not None and last_success.year > 1970:
                last_success = last_success.replace(tzinfo=None)
                if synced_at is None or last_success > synced_at.replace(tzinfo=None):
                    synced_at = last_success
            if exception:
                error = str(mysql_error(Exception(exception), config))
        never = "unknown (empty)"  # an empty copy has no _synced_at; only this process's refreshes tell
        if (mode == "synced") != (refresh is not None):
            error = error or f"configured {mode}, not applied yet: run `cairn mysql apply`"
        row = {"table": name, "mode": mode, "copied rows": int(count),
               "last copy (UTC)": synced_at.strftime("%Y-%m-%d %H:%M:%S") if synced_at else never,
               "age": _age(now, synced_at) if synced_at else "",
               "refresh": f"every {refresh_seconds(config, name)} s" if mode == "synced" else "",
               "error": error}
        if mode == "live":
            row["age"] = "live: reads MySQL at query time"
        rows.append(row)
    return rows


def _age(now: Any, then: Any) -> str:
    seconds = max(0, int((now.replace(tzinfo=None) - then.replace(tzinfo=None)).total_seconds()))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    if seconds < 172800:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} days"


def status_section(engine: Any, config: Any) -> dict:
    """The `cairn status` section: mode of each table, rows copied, how old each copy is."""
    where = f"{config['mysql.host']}:{config['mysql.port']}/{config['mysql.database']}"
    title = f"Open edX MySQL ({where})" if config["mysql.enabled"] else "Open edX MySQL (disabled)"
    return {"title": title, "rows": sync_status(engine, config)}


def _qualified(database: str, name: str) -> str:
    return f"{sql_identifier(database)}.{sql_identifier(name)}"


# This module's section of `cairn status` (extension point declared in cairn.hooks).
hooks.STATUS_SECTIONS.add(status_section)
