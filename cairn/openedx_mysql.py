"""The Open edX MySQL database: its schema, connections, and its tables in the datalake.

``create_openedx_tables`` creates the Open edX LMS tables (real column
definitions, ``cairn/sql/mysql/openedx_tables.sql``) in a MySQL/MariaDB
database; ``cairn demo`` and the tests use it.
"""

from __future__ import annotations

import re
from importlib import resources
from typing import Any, Mapping

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
    """The text of ``cairn/sql/mysql/openedx_tables.sql``."""
    return resources.files("cairn").joinpath("sql", "mysql", OPENEDX_TABLES_SQL).read_text()


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
    params = connection_settings(connection_params)
    if create_database:
        conn = connect_mysql(params, database=False)
        try:
            with conn.cursor() as cur:
                cur.execute("CREATE DATABASE IF NOT EXISTS %s CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
                            % quote_mysql_identifier(params["database"]))
        finally:
            conn.close()
    conn = connect_mysql(params)
    names = []
    try:
        with conn.cursor() as cur:
            for statement in split_sql(openedx_tables_sql()):
                cur.execute(statement)
                match = re.search(r"CREATE TABLE IF NOT EXISTS `(\w+)`", statement)
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
