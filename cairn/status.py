"""What `cairn status` reports: engine, tables, freshness, migrations, quarantine, then the sections."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cairn import catalog, hooks
from cairn.engine import sql_identifier
from cairn.schema.migrator import Migrator

if TYPE_CHECKING:  # pragma: no cover
    from cairn.config import Config
    from cairn.engine import Engine

# The sections after the tables (collector lag, MySQL sync age, ...): an extension point,
# declared and documented in cairn.hooks; domain modules add their own.
STATUS_SECTIONS = hooks.STATUS_SECTIONS


def collect_status(engine: "Engine", config: "Config") -> dict[str, Any]:
    """The status of the datalake as plain data (printed by the CLI, or as JSON)."""
    db = engine.database
    migrator = Migrator(engine, config)
    states = [s.state for s in migrator.status()]
    info: dict[str, Any] = {
        "engine": engine.describe(),
        "version": engine.server_version(),
        "database": db,
        "migrations": {"applied": states.count("applied"), "pending": states.count("pending"),
                       "changed": states.count("changed")},
        "tables": [],
        "lines": {},
        "last_event_time": None,
    }
    tables = engine.query(
        "SELECT name, engine, total_rows, total_bytes FROM system.tables "
        "WHERE database = {db:String} AND engine NOT IN ('Null', 'MaterializedView') AND NOT is_temporary "
        "AND NOT startsWith(name, '.') "
        "ORDER BY startsWith(name, '_'), name", {"db": db}).rows
    info["tables"] = [{"name": name, "engine": eng, "rows": int(rows or 0), "bytes": int(size or 0),
                       "kind": _kind(name)} for name, eng, rows, size in tables]
    names = {row["name"] for row in info["tables"]}
    if "events" in names:
        info["last_event_time"] = engine.query_value(
            f"SELECT max(time) FROM {sql_identifier(db)}.events HAVING count() > 0")
    if "_ingest_stats" in names:
        info["lines"] = {status: int(n) for status, n in engine.query_rows(
            f"SELECT status, sum(lines) FROM {sql_identifier(db)}._ingest_stats GROUP BY status")}
    info["sections"] = []
    hooks.load_providers()
    for section in hooks.STATUS_SECTIONS:
        try:
            shown = section(engine, config)
        except Exception as exc:  # a broken optional source must not hide the rest
            shown = {"title": getattr(section, "__name__", "section"), "rows": [{"error": str(exc)}]}
        if shown is not None:  # None: the section does not apply (e.g. no local data directory)
            info["sections"].append(shown)
    return info


def _kind(name: str) -> str:
    """The catalog kind of a table (undeclared ones and MySQL backing tables are internal)."""
    entry = catalog.table(name)
    return entry.kind if entry is not None else "internal"
