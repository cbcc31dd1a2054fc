"""``collector.json``: what a running collector is doing, for `cairn status`.

The collector rewrites this file (atomically) about twice a second; `cairn status`
reads it to tell a live collector's positions and lags from the last checkpoints.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

log = logging.getLogger("cairn.ingest.collector")

STATE_FILE = "collector.json"


def state_path(data_dir: Path) -> Path:
    """Where a collector writing into ``data_dir`` publishes its state."""
    return Path(data_dir) / STATE_FILE


def write_state(path: Path, state: dict) -> None:
    """Replace the state file atomically (a reader never sees half a file); errors are only logged."""
    tmp = path.with_suffix(".tmp")
    try:
        tmp.write_text(json.dumps(state))
        os.replace(tmp, path)
    except OSError as exc:
        # A full or read-only disk must never stop the collector: the state is advisory.
        log.debug("cannot write %s: %s", path, exc)


def read_state(data_dir: Path) -> dict | None:
    """The live collector state, or None when no collector is running."""
    try:
        state = json.loads(state_path(data_dir).read_text())
    except (OSError, ValueError):
        return None
    if not state.get("running"):
        return None
    try:
        # A collector killed with SIGKILL leaves "running": check its process exists.
        os.kill(int(state["pid"]), 0)
    except (OSError, ValueError, KeyError):
        return None
    return state
