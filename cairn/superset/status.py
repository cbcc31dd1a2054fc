"""Superset's section of `cairn status` (a ``cairn.hooks.PROVIDERS`` module)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cairn import hooks
from cairn.superset.settings import superset_settings

if TYPE_CHECKING:  # pragma: no cover
    from cairn.config import Config
    from cairn.engine import Engine


@hooks.STATUS_SECTIONS.add
def superset_section(engine: "Engine", config: "Config") -> dict | None:
    """Where Superset is installed, whether it is prepared and answering (None when off and absent)."""
    from cairn.superset.operations import superset_status

    settings = superset_settings(config)
    if not settings.enabled and not (settings.venv / "bin" / "superset").exists():
        return None
    return superset_status(config)
