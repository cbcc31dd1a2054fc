"""Exceptions that Cairn reports to users as one clear line."""

from __future__ import annotations


class CairnError(Exception):
    """An expected error: the CLI prints its message on one line and exits non-zero."""


class ConfigError(CairnError):
    """A configuration value is missing or invalid."""


class EngineError(CairnError):
    """The ClickHouse engine refused a statement or could not be reached."""

    def __init__(self, message: str, code: int | None = None):
        super().__init__(message)
        self.code = code


class EngineUnavailable(EngineError):
    """The engine cannot be reached right now (server down, data directory busy)."""


class MigrationError(CairnError):
    """A migration failed; earlier migrations stay applied."""
