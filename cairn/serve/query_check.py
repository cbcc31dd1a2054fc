"""Query checks for restricted users of `cairn serve`, with ClickHouse's own parser.

ClickHouse normalises the text, ``EXPLAIN AST`` says what kind of statement it is and
which functions it calls, and ``EXPLAIN QUERY TREE`` resolves every table it reads; the
rules those are checked against are declared in ``cairn.serve.access``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Sequence

from cairn.serve.access import AccessDenied, READONLY, SAFE_OUTPUT_FORMATS, SAFE_TABLE_FUNCTIONS, DENIED_FUNCTIONS, DENIED_FUNCTION_PREFIXES, system_filters, param_value, visible_tables
from cairn.engine.errors import clickhouse_error
from cairn.serve.statement import Statement

if TYPE_CHECKING:  # pragma: no cover
    from cairn.engine import EmbeddedSession


@dataclass
class CheckedQuery:
    """A query cleared to run: its statement (what runs is ``statement.core``), its AST root, the tables it reads."""

    statement: Statement
    kind: str
    tables: list[str] = field(default_factory=list)

    @property
    def sql(self) -> str:
        """The text to execute: ClickHouse's normalised form, without its FORMAT clause."""
        return self.statement.core

    @property
    def fmt(self) -> str | None:
        """The output format of the FORMAT clause (None: the request's default)."""
        return self.statement.format


_AST_LINE = re.compile(r"^(\s*)(\S+)(?: (.*?))?(?: \(children \d+\))?\s*$")
_QT_TABLE = re.compile(r"\bTABLE id: \d+(?:, alias: [^,]+)?, table_name: ([^,\s]+)")
_QT_TABLE_FUNCTION = re.compile(r"\bTABLE_FUNCTION id: \d+(?:, alias: [^,]+)?, table_function_name: ([^,\s]+)")


def _parse_ast(text: str) -> list[tuple[int, str, str]]:
    """EXPLAIN AST output as (depth, node, argument) triples."""
    nodes = []
    for line in text.splitlines():
        if not line.strip():
            continue
        match = _AST_LINE.match(line)
        if not match:
            raise AccessDenied("query shape not understood")
        nodes.append((len(match.group(1)), match.group(2), (match.group(3) or "").strip()))
    return nodes


def _split_name(name: str, database: str) -> tuple[str, str]:
    name = name.strip()
    if "." in name:
        db, _, table = name.partition(".")
        return db.strip("`"), table.strip("`")
    return database, name.strip("`")


def check_query(session: "EmbeddedSession", sql: str, database: str, tables: Sequence[str],
                default_format: str | None = None, params: dict | None = None) -> CheckedQuery:
    """Clear ``sql`` for a restricted user, or raise AccessDenied / EngineError.

    ``session`` is the user's own read-only filtered session: ClickHouse parses and
    normalises the text (``formatQuerySingleLine``, which also rejects several
    statements at once), ``EXPLAIN AST`` tells what kind of statement it is and which
    functions and table functions it calls, and ``EXPLAIN QUERY TREE`` resolves every
    table it reads (through aliases and CTEs). What is checked is exactly what runs: the
    normalised text.
    """
    allowed = set(visible_tables(tables))
    normalised = session.execute("SELECT formatQuerySingleLine({q:String})", "TabSeparatedRaw",
                                 {"q": param_value(sql)}).data.decode("utf-8").rstrip("\n")
    if not normalised:
        raise clickhouse_error(62, "Empty query", "SYNTAX_ERROR")
    statement = Statement.parse(normalised, normalised=True)
    fmt, core = statement.format, statement.core
    if fmt is not None and fmt.lower() not in SAFE_OUTPUT_FORMATS:
        raise AccessDenied(f"output format {fmt} is not allowed")
    if default_format is not None and default_format.lower() not in SAFE_OUTPUT_FORMATS:
        raise AccessDenied(f"output format {default_format} is not allowed")
    ast = _parse_ast(session.execute("EXPLAIN AST " + core, "TabSeparatedRaw", params).data.decode("utf-8"))
    if not ast:
        raise AccessDenied("empty statement")
    root = ast[0][1]
    checked = CheckedQuery(statement, root)
    if root in ("SelectWithUnionQuery", "SelectIntersectExceptQuery"):
        _check_select_ast(ast)
        _check_ast_tables(ast, database, set(tables), allowed)
        _check_query_tree(session, core, database, allowed, checked, params)
        return checked
    if root == "ShowTables":
        # SHOW TABLES / SHOW DATABASES read system.tables / system.databases, which the
        # session filters to the user's tables; refuse LIKE tricks on other databases.
        for _, node, arg in ast[1:]:
            if node == "Identifier" and arg not in (database,):
                raise AccessDenied(f"database {arg} is not accessible")
        return checked
    if root in ("DescribeQuery", "ExistsTableQuery", "ShowCreateTableQuery", "ExistsViewQuery",
                "ShowCreateViewQuery"):
        names = []
        for depth, node, arg in ast[1:]:
            if node == "TableIdentifier":
                names.append(_split_name(arg, database))
            elif node == "Function":
                raise AccessDenied("DESCRIBE of a table function is not allowed")
        if root != "DescribeQuery":
            idents = [arg for _, node, arg in ast[1:] if node == "Identifier"]
            if len(idents) == 2:
                names.append((idents[0], idents[1]))
            elif len(idents) == 1:
                names.append((database, idents[0]))
        if not names:
            raise AccessDenied("statement target not understood")
        for db, table in names:
            if db != database or table not in allowed:
                raise AccessDenied(f"table {db}.{table} is not accessible")
        checked.tables = [t for _, t in names]
        return checked
    if root in ("InsertQuery", "AlterQuery", "CreateQuery", "DropQuery", "RenameQuery", "OptimizeQuery",
                "SystemQuery", "KillQueryQuery", "Set", "TruncateQuery", "UseQuery", "DeleteQuery",
                "UpdateQuery", "GrantQuery", "CreateUserQuery", "UndropQuery", "CheckQuery", "WatchQuery"):
        raise AccessDenied(f"this user is read-only: {root.replace('Query', '').upper()} is not allowed", READONLY)
    raise AccessDenied(f"statement {root} is not allowed")


def _check_select_ast(ast: list[tuple[int, str, str]]) -> None:
    """Functions, table functions, SETTINGS and INTO OUTFILE in a SELECT's syntax tree."""
    root_depth = ast[0][0]
    table_expression_depth = None
    for index, (depth, node, arg) in enumerate(ast):
        if table_expression_depth is not None and depth <= table_expression_depth:
            table_expression_depth = None
        if node == "TableExpression":
            table_expression_depth = depth
            continue
        if node == "Set":
            raise AccessDenied("SETTINGS are not allowed for this user", READONLY)
        if node == "Function":
            name = arg.split(" ")[0].lower()
            in_table_position = (table_expression_depth is not None and depth == table_expression_depth + 1)
            if in_table_position:
                if name not in SAFE_TABLE_FUNCTIONS:
                    raise AccessDenied(f"table function {arg.split(' ')[0]} is not allowed")
            elif name in DENIED_FUNCTIONS or name.startswith(DENIED_FUNCTION_PREFIXES):
                raise AccessDenied(f"function {arg.split(' ')[0]} is not allowed")
        if depth == root_depth + 1 and node == "Literal":
            raise AccessDenied("INTO OUTFILE is not allowed")


def _check_ast_tables(ast: list[tuple[int, str, str]], database: str, tables: set[str], allowed: set[str]) -> None:
    """Every table named in the syntax tree, wherever it is.

    The query tree alone is not enough: the analyzer folds scalar subqueries into
    constants, and the table they read can vanish from the tree it prints. Unqualified
    names that are not datalake tables may be CTE names; the query tree resolves those.
    """
    system_allowed = system_filters(database, [])
    for _, node, arg in ast:
        if node != "TableIdentifier":
            continue
        name = arg.split(" ")[0]
        if "." in name:
            db, table = _split_name(name, database)
            if db == "system":
                if f"system.{table}" not in system_allowed:
                    raise AccessDenied(f"table system.{table} is not accessible")
            elif db != database or table not in allowed:
                raise AccessDenied(f"table {db}.{table} is not accessible")
        elif name.startswith(("_", ".")) or (name in tables and name not in allowed):
            raise AccessDenied(f"table {database}.{name} is not accessible")


def _check_query_tree(session: "EmbeddedSession", core: str, database: str, allowed: set[str],
                      checked: CheckedQuery, params: dict | None = None) -> None:
    tree = session.execute("EXPLAIN QUERY TREE " + core, "TabSeparatedRaw", params).data.decode("utf-8")
    system_allowed = system_filters(database, [])
    for line in tree.splitlines():
        function = _QT_TABLE_FUNCTION.search(line)
        if function:
            if function.group(1).lower() not in SAFE_TABLE_FUNCTIONS:
                raise AccessDenied(f"table function {function.group(1)} is not allowed")
            continue
        table = _QT_TABLE.search(line)
        if table:
            db, name = _split_name(table.group(1), database)
            if db == "system":
                if f"system.{name}" not in system_allowed:
                    raise AccessDenied(f"table system.{name} is not accessible")
            elif db != database or name not in allowed:
                raise AccessDenied(f"table {db}.{name} is not accessible")
            checked.tables.append(f"{db}.{name}")
        elif "TABLE id:" in line or "TABLE_FUNCTION id:" in line:
            raise AccessDenied("query shape not understood")
