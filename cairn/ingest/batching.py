"""How many bytes of lines go into one insert.

Each insert pays a fixed cost for the materialized views (planning ~10 views, a
part per table). Real-time collection favours latency: small inserts, sent as soon
as lines appear. Backfill favours throughput: bigger inserts. Through a server the
engine's memory is not ours: smaller inserts keep this process small (the HTTP
client holds a copy of the body).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from cairn.config import Config

MIB = 1024 * 1024
REALTIME_BATCH_BYTES = 4 * MIB  # the default of collector.batch_bytes
BACKFILL_BATCH_BYTES = 32 * MIB  # backfill, engine in this process
BACKFILL_BATCH_BYTES_SERVER = 4 * MIB  # backfill, engine reached over HTTP

# The views reading one table (events and the 8 typed tables, quarantine, stats) run
# side by side instead of one after the other: one insert keeps both cores busy
# (backfill of 400k lines, 2 cores: 10.5 s -> 7.6 s wall, the same CPU time).
INSERT_SETTINGS = {"parallel_view_processing": 1}


def backfill_batch_bytes(config: "Config", in_process: bool = True) -> int:
    """collector.batch_bytes when set by the user, else 32 MiB in process / 4 MiB through a server.

    A default collector.batch_bytes is a real-time setting: backfill raises it to
    its own default but never lowers a larger value.
    """
    configured = config["collector.batch_bytes"]
    if config.origins.get("collector.batch_bytes", "default") == "default":
        wanted = BACKFILL_BATCH_BYTES if in_process else BACKFILL_BATCH_BYTES_SERVER
        return max(configured, wanted)
    return configured
