"""The collector section of `cairn status`: per-source position, lag and line outcomes.

Sources a live collector follows come from its ``collector.json``; the others from
their last checkpoint in ``_checkpoints``.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING

from cairn import hooks
from cairn.engine import sql_identifier
from cairn.ingest.collector_state import read_state
from cairn.ingest.files import current_size

if TYPE_CHECKING:  # pragma: no cover
    from cairn.config import Config
    from cairn.engine import Engine

Counts = dict[str, int]


@hooks.STATUS_SECTIONS.add  # a provider module (cairn.hooks.PROVIDERS): adds its section when imported
def collector_status(engine: "Engine", config: "Config") -> dict:
    """Per-source position and lag (bytes, seconds) and line outcomes, for `cairn status`."""
    db = sql_identifier(engine.database)
    stats: dict[str, Counts] = {}
    for source, status, lines in engine.query_rows(
            f"SELECT source, status, sum(lines) FROM {db}._ingest_stats GROUP BY source, status"):
        stats.setdefault(source, {})[status] = int(lines)
    live = read_state(config.data_dir)
    rows = _live_rows(live, stats) if live else []
    listed = {row["source"] for row in rows}
    rows += _checkpoint_rows(engine, stats, listed)
    section = {"title": "collector sources" + (f" (collector pid {live['pid']} running)" if live else ""),
               "rows": rows}
    if live:
        # Why nothing is delivered, in the title (shown even with no source yet) and for --json.
        section["paused_reason"] = live.get("paused_reason", "")
        section["last_error"] = live.get("last_error", "")
        why = _waiting_reason(live)
        if why:
            section["title"] += f"; {why}"
    return section


def _waiting_reason(live: dict) -> str:
    """One line on why a live collector delivers nothing now, or "" when it delivers."""
    if live.get("paused_reason"):
        return f"paused: {live['paused_reason']}"
    if not live.get("engine_ok", True):
        return f"{live.get('failure') or 'engine unavailable'}, retrying: {live.get('last_error', '')}"
    return ""


def _source_state(live: dict, src: dict) -> str:
    """A source's state as a live collector sees it: paused and waiting trump following."""
    if live.get("paused_reason"):
        return "paused (free-space reserve)"
    if not live.get("engine_ok", True):
        return "retrying failed insert" if live.get("failure") == "insert failed" else "waiting for engine"
    return src["state"]


def _outcomes(counts: Counts) -> dict[str, str]:
    return {"events": f"{counts.get('event', 0):,}", "quarantined": f"{counts.get('quarantined', 0):,}",
            "skipped": f"{counts.get('skipped', 0):,}"}


def _live_rows(live: dict, stats: dict[str, Counts]) -> list[dict]:
    """Rows of the sources a running collector follows, from its ``collector.json``."""
    rows = []
    for src in live["sources"]:
        rows.append({"source": src["source"], "state": _source_state(live, src),
                     "read": f"{src['position']:,}", "lag bytes": f"{src['lag_bytes']:,}",
                     "lag s": src["lag_seconds"] if src["lag_seconds"] is not None else "-",
                     **_outcomes(stats.get(src["source"], {}))})
    return rows


def _checkpoint_rows(engine: "Engine", stats: dict[str, Counts], listed: set[str]) -> list[dict]:
    """Rows of the other sources, from their latest checkpoint (stdin runs left out)."""
    now = datetime.now(timezone.utc)
    checkpoints = engine.query_rows(
        f"SELECT argMax(source, updated_at) AS src, argMax(offset, updated_at), argMax(size, updated_at), "
        f"max(updated_at) FROM {sql_identifier(engine.database)}._checkpoints "
        "WHERE NOT startsWith(fingerprint, 'stdin-') GROUP BY fingerprint ORDER BY 4")
    # One row per path: the newest content at a path (after rotations) wins.
    latest: dict[str, tuple] = {}
    for source, offset, size, updated in checkpoints:
        latest[source] = (offset, size, updated)
    rows = []
    for source, (offset, size, updated) in latest.items():
        if source in listed:
            continue
        lag = max(0, current_size(source, size) - offset)
        if updated is not None and updated.tzinfo is None:
            updated = updated.replace(tzinfo=timezone.utc)
        lag_seconds = round((now - updated).total_seconds(), 1) if lag and updated else 0
        rows.append({"source": source, "state": "not followed", "read": f"{offset:,}", "lag bytes": f"{lag:,}",
                     "lag s": lag_seconds, **_outcomes(stats.get(source, {}))})
    return rows
