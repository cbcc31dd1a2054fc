"""The free-space reserve: stop writing before the data directory's disk is full.

A full disk makes ClickHouse fail a write half-way (code 243); worse, a write that
fails that way used to be reported as done. So writers look first: below
``collector.min_free_mb`` free on the file system of the data directory, the
collector pauses (and looks again with backoff) and `cairn load` / `cairn backfill`
refuse to start the next batch. A datalake on a remote ClickHouse server lives on
the server's disks, which this process cannot see: no reserve there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from cairn.config import setting_named
from cairn.engine.datadir import free_bytes
from cairn.errors import CairnError

if TYPE_CHECKING:  # pragma: no cover
    from cairn.config import Config
    from cairn.engine import Engine

MIB = 1024 * 1024
ASK_ENGINE_BELOW = 2
"""The engine is asked what its merges hold only below this many times the room needed:
far from the reserve it cannot decide, and the collector looks before every send."""


class DiskReserveLow(CairnError):
    """Less free space than the reserve on the data directory's file system."""


@dataclass(frozen=True)
class DiskReserve:
    """``min_free`` bytes that must stay free on the file system of ``path``."""

    path: Path
    min_free: int
    engine_reserved: Callable[[], int] | None = field(default=None, compare=False)
    """Bytes the engine has promised to writes already under way (its merges, above all):
    free on disk, but not for the next batch. None: nothing to subtract."""

    def shortfall(self, upcoming: int = 0) -> str | None:
        """Why writing must wait (one line), or None when there is room.

        ``upcoming``: the raw size of the batch about to be written. The engine reserves
        about that much on disk for each table the batch is written to, so the room
        looked for is the reserve plus the batch (a check against the reserve alone
        passes at 61 MB free and the batch then fails half-way at the engine's own limit).
        """
        try:
            free = free_bytes(self.path)
        except OSError:
            return None  # cannot tell (directory not created yet): the engine will say
        needed = self.min_free + upcoming
        if free >= needed * ASK_ENGINE_BELOW:
            return None
        # Running merges have reserved space the next batch cannot have: the engine
        # refuses a part when its reservation fails, however much the disk shows free.
        reserved = self._engine_reserved()
        if free - reserved >= needed:
            return None
        return reserve_message(self.path, free, self.min_free, upcoming, reserved)

    def _engine_reserved(self) -> int:
        """``engine_reserved()``, or 0 when there is none or the engine cannot answer."""
        if self.engine_reserved is None:
            return 0
        try:
            return max(0, self.engine_reserved())
        except CairnError:
            return 0  # the engine cannot say: the disk's own figure stands

    def check(self, reason: str | None = None) -> None:
        """Raise :class:`DiskReserveLow` when below the reserve (before a batch starts).

        ``reason``: a :meth:`shortfall` the caller already has (no second look at the disk).
        """
        reason = reason or self.shortfall()
        if reason is not None:
            raise DiskReserveLow(f"{reason}; nothing was lost: free some space (or lower "
                                 "collector.min_free_mb), then run the same command again")


def reserve_message(path: Path, free: int, min_free: int, upcoming: int = 0, reserved: int = 0) -> str:
    """The one line saying how much is free against the reserve (and the next batch)."""
    batch = f", plus {upcoming / MIB:,.0f} MB for the next batch" if upcoming else ""
    held = f", {reserved / MIB:,.0f} MB of it held by the engine's merges" if reserved >= MIB else ""
    return (f"only {free / MIB:,.0f} MB free on the file system of {path}{held} "
            f"(reserve collector.min_free_mb = {min_free / MIB:,.0f}{batch})")


def min_free_bytes(config: "Config | None") -> int:
    """The reserve in bytes: ``collector.min_free_mb`` (0 turns the check off)."""
    # The setting is validated (a whole number >= 0); without a config, its registered default.
    mb = setting_named("collector.min_free_mb").default if config is None else config["collector.min_free_mb"]
    return int(mb) * MIB


def disk_reserve(engine: "Engine", config: "Config | None" = None,
                 data_dir: Path | None = None) -> DiskReserve | None:
    """The reserve to keep for writes through ``engine``, or None when there is none to check.

    Only a data directory on this machine can be looked at: the engine runs in this
    process, or behind a local `cairn serve`. ``data_dir`` defaults to the
    configuration's, then to the embedded engine's own.
    """
    if not (engine.capabilities.in_process or engine.capabilities.via_serve):
        return None
    folder = data_dir or (config.data_dir if config is not None else getattr(engine, "data_dir", None))
    minimum = min_free_bytes(config)
    if folder is None or minimum == 0:
        return None
    return DiskReserve(Path(folder), minimum, lambda: reserved_by(engine))


def reserved_by(engine: "Engine") -> int:
    """What the engine has reserved on its disks for parts being written (merges, inserts)."""
    result = engine.query("SELECT toInt64(sum(free_space) - sum(unreserved_space)) FROM system.disks")
    return int(result.rows[0][0]) if result.rows else 0
