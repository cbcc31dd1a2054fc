"""What `cairn status` reports: engine, tables, freshness, migrations, quarantine, then the sections.

The sections after the tables (collector lag, MySQL sync age, ...) are an extension
point, declared and documented in ``cairn.hooks``; domain modules add their own. The
data directory's section (free space, reserve, file modes) is here, with its repair
by `cairn migrate`: it is about the datalake as a whole.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from cairn import catalog, hooks
from cairn.engine import sql_identifier
from cairn.engine.datadir import PROBLEMS_SHOWN, free_bytes, make_private, open_paths
from cairn.ingest.reserve import DiskReserve, min_free_bytes, reserved_by
from cairn.schema.migrator import Migrator

if TYPE_CHECKING:  # pragma: no cover
    from cairn.config import Config
    from cairn.engine import Engine


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


def human_bytes(n: float) -> str:
    """1536 -> "1.5 KiB" (binary units, bytes without decimals)."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


# ---------------------------------------------------------------------------
# The data directory: free space against the reserve, file modes
# ---------------------------------------------------------------------------

def local_data_dir(config: "Config") -> Path | None:
    """The data directory when it is on this machine (embedded engine, or `cairn serve` over it), else None."""
    return config.data_dir if config.engine == "embedded" else None


@hooks.STATUS_SECTIONS.add
def data_directory_status(engine: Any, config: "Config") -> dict | None:
    """The `cairn status` section of the data directory (None with a server engine: nothing local)."""
    data_dir = local_data_dir(config)
    if data_dir is None:
        return None
    free = free_bytes(data_dir)
    # The same rule as the writers: space the engine holds for its merges is not free.
    reserve = DiskReserve(data_dir, min_free_bytes(config), (lambda: reserved_by(engine)) if engine is not None else None)
    low = reserve.shortfall() if reserve.min_free else None
    rows = [{"check": "free space", "value": f"{human_bytes(free)} on the file system of {data_dir}",
             "state": "below the reserve" if low else "ok"},
            {"check": "reserve (collector.min_free_mb)",
             "value": f"{reserve.min_free >> 20:,} MB" if reserve.min_free else "0 (no reserve)", "state": ""}]
    warnings = [f"{low}: the collector pauses and load/backfill refuse to start a batch; free some space, "
                "or lower collector.min_free_mb"] if low else []
    listed, total = open_paths(data_dir, PROBLEMS_SHOWN)
    if total:
        more = f" (and {total - 1:,} more)" if total > 1 else ""
        rows.append({"check": "permissions", "value": f"{total:,} path(s) open to group or others: {listed[0]}{more}",
                     "state": "run `cairn migrate`"})
        warnings.append(f"{total:,} path(s) in {data_dir} can be read or written by other local users: "
                        "run `cairn migrate` to make them private (0700 folders, 0600 files)")
    else:
        rows.append({"check": "permissions", "value": "private to its owner", "state": "ok"})
    return {"title": f"data directory {data_dir}", "rows": rows, "warnings": warnings, "free_bytes": free,
            "reserve_bytes": reserve.min_free, "open_paths": total, "permission_problems": listed}


def make_data_dir_private(config: "Config", dry_run: bool = False) -> int | None:
    """Take group/other access off the local data directory (``cairn migrate``).

    Returns how many paths were fixed (with ``dry_run``: how many would be), or None
    when the data directory is not on this machine or does not exist yet.
    """
    data_dir = local_data_dir(config)
    if data_dir is None or not data_dir.is_dir():
        return None
    return open_paths(data_dir, 0)[1] if dry_run else make_private(data_dir)
