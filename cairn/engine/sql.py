"""Quoting for the few pieces of SQL that Cairn writes as text.

Values normally travel as server-side parameters (``{name:Type}``); these helpers
are for the places where ClickHouse takes no parameter: DDL, ``SET``, ``SETTINGS``
clauses, column lists and access statements. Every identifier and literal that
Cairn splices into SQL goes through one of them.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence


def sql_string(value: object) -> str:
    """A ClickHouse string literal for ``value`` (backslash and quote escaped)."""
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


def sql_identifier(name: str) -> str:
    """A back-quoted ClickHouse identifier."""
    return "`" + str(name).replace("\\", "\\\\").replace("`", "\\`") + "`"


def setting_literal(value: Any) -> str:
    """The literal for a setting's value: booleans as 0/1, numbers bare, the rest as strings."""
    # bool first: it is an int subclass, and ClickHouse wants 1/0, not True/False.
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, (int, float)):
        return str(value)
    return sql_string(value)


def settings_clause(settings: Mapping[str, Any] | None) -> str:
    """`` SETTINGS a = 1, b = 'x'`` for a statement, or ``""`` when there are none."""
    if not settings:
        return ""
    return " SETTINGS " + settings_list(settings)


def settings_list(settings: Mapping[str, Any] | None) -> str:
    """``a = 1, b = 'x'`` (what follows SETTINGS), or ``""`` when there are none."""
    return ", ".join(f"{sql_identifier(name)} = {setting_literal(value)}" for name, value in (settings or {}).items())


def column_list(column_names: Sequence[str] | None) -> str:
    """`` (`a`, `b`)`` after ``INSERT INTO table``, or ``""`` for all columns."""
    if not column_names:
        return ""
    return " (" + ", ".join(sql_identifier(name) for name in column_names) + ")"
