"""How `cairn serve` listens and behaves (the ``serve.*`` settings and flags)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class ServeOptions:
    """How `cairn serve` listens and behaves."""

    host: str = "127.0.0.1"
    port: int = 8123
    workers: int = 2
    max_body_bytes: int = 256 * 1024 * 1024
    display_name: str = "cairn"
    buffer_bytes: int = 1024 * 1024  # results up to this size are sent with Content-Length
    shutdown_grace: float = 10.0
    session_timeout: float = 60.0
    query_timeout: float = 300.0
