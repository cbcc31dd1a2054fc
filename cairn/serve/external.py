"""Queries sent as HTML forms, and external data tables (``clickhouse-client --external``).

A ``multipart/form-data`` body carries fields (``query``, ``param_*``, settings: read as
URL parameters, as ClickHouse does) and files: each file is an external table named by
its part's name, in the format of ``<name>_format`` (TabSeparated when not given), with
the columns of ``<name>_structure`` (``"id UInt32, name String"``) or ``<name>_types``
(``"UInt32,String"``: columns ``_1``, ``_2``...). The tables are temporary tables of the
session the query runs in, made before it and dropped after it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.parser import BytesParser
from email.policy import HTTP
from typing import TYPE_CHECKING, Mapping

from cairn.engine.sql import sql_identifier
from cairn.serve.wire import HttpError, decode_param

if TYPE_CHECKING:  # pragma: no cover
    from cairn.engine import EmbeddedSession

# A column type starts with its name; what follows must keep its parentheses balanced.
_TYPE_HEAD = re.compile(r"^[A-Za-z][A-Za-z0-9_]*\s*(?:\(|$)")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class ExternalTable:
    """One external data table: its name, format, column definitions (SQL) and data."""

    name: str
    fmt: str
    columns: str
    data: bytes


@dataclass
class FormBody:
    """A multipart/form-data request body: its text fields and its files (by part name)."""

    fields: dict[str, str]
    files: dict[str, bytes]


def is_form(content_type: str | None) -> bool:
    """Whether the body is multipart/form-data."""
    return (content_type or "").split(";")[0].strip().lower() == "multipart/form-data"


def parse_form(content_type: str, body: bytes) -> FormBody:
    """Fields and files of a multipart/form-data body (400 when it is not one)."""
    message = BytesParser(policy=HTTP).parsebytes(b"Content-Type: " + content_type.encode("latin-1", "replace")
                                                  + b"\r\n\r\n" + body)
    if not message.is_multipart():
        raise HttpError(27, "Cannot parse the multipart/form-data body (no boundary?)",
                        "CANNOT_PARSE_INPUT_ASSERTION_FAILED")
    fields: dict[str, str] = {}
    files: dict[str, bytes] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not name:
            continue
        payload = part.get_payload(decode=True) or b""
        if part.get_filename() is not None:
            files[str(name)] = payload
        else:
            # Query parameters may be binary (clickhouse-connect sends bytes escaped).
            fields[str(name)] = decode_param(payload, "backslashreplace" if str(name).startswith("param_")
                                             else "replace")
    return FormBody(fields, files)


def external_tables(files: Mapping[str, bytes], params: Mapping[str, str]) -> list[ExternalTable]:
    """The external tables of a form's files, with their ``<name>_format/_structure/_types``."""
    tables = []
    for name, data in files.items():
        if not _NAME.match(name):
            raise HttpError(36, f"Bad external table name {name!r}: letters, digits and _ only", "BAD_ARGUMENTS")
        structure, types = params.get(f"{name}_structure"), params.get(f"{name}_types")
        if structure:
            columns = _columns_of_structure(name, structure)
        elif types:
            columns = ", ".join(f"`_{i}` {_checked_type(name, t)}" for i, t in enumerate(_split(types), 1))
        else:
            raise HttpError(36, f"Neither structure nor types have been provided for external table {name}. "
                                f"Use fields {name}_structure or {name}_types to do so.", "BAD_ARGUMENTS")
        tables.append(ExternalTable(name, params.get(f"{name}_format") or "TabSeparated", columns, data))
    return tables


def external_param_names(files: Mapping[str, bytes]) -> set[str]:
    """The parameters that describe external tables (not ClickHouse settings)."""
    return {f"{name}_{suffix}" for name in files for suffix in ("format", "structure", "types")}


def create_tables(session: "EmbeddedSession", tables: list[ExternalTable]) -> list[str]:
    """Make and fill the temporary tables in ``session``; returns their names (to ``drop_tables``)."""
    made: list[str] = []
    try:
        for table in tables:
            ident = sql_identifier(table.name)
            session.execute(f"CREATE TEMPORARY TABLE {ident} ({table.columns}) ENGINE = Memory")
            made.append(table.name)
            if table.data:
                session.insert(f"INSERT INTO {ident}", table.fmt, [table.data])
    except BaseException:
        drop_tables(session, made)
        raise
    return made


def drop_tables(session: "EmbeddedSession", names: list[str]) -> None:
    """Drop the temporary tables ``create_tables`` made (the session goes back to its pool)."""
    for name in names:
        session.execute(f"DROP TEMPORARY TABLE IF EXISTS {sql_identifier(name)}")


def _split(text: str) -> list[str]:
    """Split on the commas outside parentheses and quotes."""
    parts, depth, quoted, start = [], 0, False, 0
    for i, char in enumerate(text):
        if char == "'" and (i == 0 or text[i - 1] != "\\"):
            quoted = not quoted
        elif not quoted and char == "(":
            depth += 1
        elif not quoted and char == ")":
            depth -= 1
        elif not quoted and depth == 0 and char == ",":
            parts.append(text[start:i].strip())
            start = i + 1
    parts.append(text[start:].strip())
    return [p for p in parts if p]


def _checked_type(table: str, column_type: str) -> str:
    """A column type as given, refused unless it is one type (nothing can close the column list)."""
    column_type = column_type.strip()
    depth, quoted = 0, False
    for i, char in enumerate(column_type):
        if char == "'" and (i == 0 or column_type[i - 1] != "\\"):
            quoted = not quoted
        elif not quoted and char == "(":
            depth += 1
        elif not quoted and char == ")":
            depth -= 1
            if depth < 0:
                break
        elif not quoted and depth == 0 and char in ",;`\"":
            depth = -1
            break
    if depth != 0 or quoted or not _TYPE_HEAD.match(column_type):
        raise HttpError(50, f"External table {table}: cannot read the type {column_type!r}", "UNKNOWN_TYPE")
    return column_type


def _columns_of_structure(table: str, structure: str) -> str:
    """``"a UInt32, b String"`` as column definitions, each name quoted and each type checked."""
    columns = []
    for item in _split(structure):
        name, _, column_type = item.partition(" ")
        if not name or not column_type.strip():
            raise HttpError(36, f"External table {table}: a column of the structure needs a name and a type: "
                                f"{item!r}", "BAD_ARGUMENTS")
        columns.append(f"{sql_identifier(name.strip('`'))} {_checked_type(table, column_type)}")
    return ", ".join(columns)
