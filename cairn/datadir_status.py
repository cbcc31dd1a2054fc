"""The data directory in `cairn status` (free space, reserve, modes) and its repair by `cairn migrate`.

Only for the embedded engine, whose data directory is on this machine
(``config.engine == "embedded"``); with a ClickHouse server, the server's disks are
the server's business. The measures come from ``cairn.engine.datadir``:
``free_bytes``, ``permission_problems`` and ``make_private``.

A provider module (``cairn.hooks.PROVIDERS``): importing it adds the section to
``cairn.hooks.STATUS_SECTIONS``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from cairn import hooks

if TYPE_CHECKING:  # pragma: no cover
    from cairn.config import Config

MIB = 1024 * 1024
# permission_problems lists this many paths at most: here, every one is counted.
EVERY_PATH = 1 << 62
# Open paths listed in `cairn status --json` (all are counted in "open_paths").
PROBLEMS_LISTED = 20
# The default of collector.min_free_mb (cairn/config.py), for configs built without it.
DEFAULT_MIN_FREE_MB = 256


def local_data_dir(config: "Config") -> Path | None:
    """The data directory when it is on this machine (embedded engine), else None."""
    return config.data_dir if config.engine == "embedded" else None


def _size(n: float) -> str:
    """1536 * 1024 -> "1.5 MiB" (binary units)."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} TiB"  # pragma: no cover - the loop always returns


def space_rows(data_dir: Path, free: int, min_free_mb: int) -> tuple[list[dict], list[str]]:
    """Rows for free space and the reserve, and a warning when free space is below the reserve."""
    reserve = min_free_mb * MIB
    low = bool(reserve) and free < reserve
    rows = [
        {"check": "free space", "value": f"{_size(free)} on the file system of {data_dir}",
         "state": "below the reserve" if low else "ok"},
        {"check": "reserve (collector.min_free_mb)",
         "value": f"{min_free_mb:,} MB" if reserve else "0 (no reserve)", "state": ""},
    ]
    warnings = []
    if low:
        warnings.append(f"free space on the file system of {data_dir} ({_size(free)}) is below the reserve of "
                        f"{min_free_mb:,} MB (collector.min_free_mb): the collector pauses and load/backfill refuse "
                        "to start a batch; free some space, or lower collector.min_free_mb")
    return rows, warnings


def permission_rows(data_dir: Path, problems: list[str]) -> tuple[list[dict], list[str]]:
    """A row for the modes of the data directory, and a warning naming the fix when some are open."""
    if not problems:
        return [{"check": "permissions", "value": "private to its owner", "state": "ok"}], []
    first = problems[0] + (f" (and {len(problems) - 1:,} more)" if len(problems) > 1 else "")
    row = {"check": "permissions", "value": f"{len(problems):,} path(s) open to group or others: {first}",
           "state": "run `cairn migrate`"}
    warning = (f"{len(problems):,} path(s) in {data_dir} can be read or written by other local users: "
               "run `cairn migrate` to make them private (0700 folders, 0600 files)")
    return [row], [warning]


@hooks.STATUS_SECTIONS.add
def data_directory_status(engine: Any, config: "Config") -> dict | None:
    """The `cairn status` section of the data directory (None with a server engine: nothing local)."""
    from cairn.engine.datadir import free_bytes, permission_problems

    data_dir = local_data_dir(config)
    if data_dir is None:
        return None
    free = free_bytes(data_dir)
    min_free_mb = config.get("collector.min_free_mb", DEFAULT_MIN_FREE_MB)
    problems = permission_problems(data_dir, limit=EVERY_PATH)
    rows, warnings = space_rows(data_dir, free, min_free_mb)
    more_rows, more_warnings = permission_rows(data_dir, problems)
    return {"title": f"data directory {data_dir}", "rows": rows + more_rows, "warnings": warnings + more_warnings,
            "free_bytes": free, "reserve_bytes": min_free_mb * MIB, "open_paths": len(problems),
            "permission_problems": problems[:PROBLEMS_LISTED]}


def make_data_dir_private(config: "Config", dry_run: bool = False) -> int | None:
    """Take group/other access off the local data directory (``cairn migrate``).

    Returns how many paths were fixed (with ``dry_run``: how many would be), or None
    when the data directory is not on this machine or does not exist yet.
    """
    data_dir = local_data_dir(config)
    if data_dir is None or not data_dir.is_dir():
        return None
    from cairn.engine.datadir import make_private, permission_problems

    if dry_run:
        return len(permission_problems(data_dir, limit=EVERY_PATH))
    return make_private(data_dir)
