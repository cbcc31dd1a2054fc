"""Tracking-log files on disk: opening (gzip or plain), identity, size, JSON documents.

A file is identified by its *fingerprint*: a hash of its first line. The first
line of a log never changes once written, and survives renames and compression,
so a rotated ``tracking.log.1.gz`` is recognised as the file that was
``tracking.log``.

Besides JSON lines, a file may be one JSON document holding one event, a list of
events or an object of events (event-routing-backends fixtures; both the on-disk
and the in-process shape): ``document_events`` finds those.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import struct
from pathlib import Path
from typing import BinaryIO, Iterable

from cairn.errors import CairnError

GZIP_MAGIC = b"\x1f\x8b"
FINGERPRINT_BYTES = 4096
MAX_DOCUMENT_BYTES = 256 * 1024 * 1024


def open_log(path: Path | str) -> BinaryIO:
    """Open a log file, decompressing gzip transparently (by magic number, not name)."""
    handle = open(path, "rb")
    magic = handle.read(2)
    handle.seek(0)
    if magic == GZIP_MAGIC:
        return gzip.GzipFile(fileobj=handle, mode="rb")  # type: ignore[return-value]
    return handle


def open_followed(path: str, compressed: bool) -> BinaryIO:
    """Open a file the collector follows: gzip-decoded, or unbuffered when plain.

    Unbuffered, every read asks the kernel, so bytes appended later are seen.
    """
    if compressed:
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return open(path, "rb", buffering=0)  # type: ignore[return-value]


def is_gzip(path: Path | str) -> bool:
    """True when the file starts with the gzip magic number."""
    with open(path, "rb") as handle:
        return handle.read(2) == GZIP_MAGIC


def uncompressed_size(path: Path) -> int:
    """Bytes the file holds once decompressed (gzip ISIZE trailer; exact below 4 GiB)."""
    size = path.stat().st_size
    with open(path, "rb") as handle:
        # 18 bytes: the smallest gzip member (10-byte header, empty body, 8-byte trailer).
        if handle.read(2) != GZIP_MAGIC or size < 18:
            return size
        handle.seek(-4, os.SEEK_END)
        return struct.unpack("<I", handle.read(4))[0]


def current_size(source: str, recorded: int) -> int:
    """Size of a plain file now; ``recorded`` for a gzip file (it no longer grows) or a missing one."""
    try:
        if is_gzip(source):
            return recorded
        return os.path.getsize(source)
    except OSError:
        return recorded


def backfill_files(paths: Iterable[Path]) -> list[Path]:
    """The files to backfill: given files, and the files inside given folders, oldest first.

    Oldest first, so that the events arrive roughly in time order.
    """
    files: list[Path] = []
    for path in paths:
        if not path.exists():
            raise CairnError(f"{path}: no such file")
        if path.is_dir():
            files.extend(sorted(p for p in path.iterdir() if p.is_file()))
        else:
            files.append(path)
    files.sort(key=lambda p: p.stat().st_mtime)
    return files


def fingerprint_of_head(head: bytes, complete: bool = True) -> str | None:
    """Fingerprint from the first bytes of a file (see ``fingerprint``).

    With ``complete=False`` (a file still being written) a first line that has not
    reached its newline, and is shorter than FINGERPRINT_BYTES, gives None: hashing
    it now would give a different identity once it is finished.
    """
    head = head[:FINGERPRINT_BYTES]
    if not head:
        return None
    newline = head.find(b"\n")
    if newline == -1 and not complete and len(head) < FINGERPRINT_BYTES:
        return None
    first = head if newline == -1 else head[:newline + 1]
    return hashlib.sha256(first).hexdigest()[:32]


def fingerprint(path: Path | str, complete: bool = True) -> str | None:
    """Identity of a log file's content: a hash of its first line (None when empty).

    The first line of a log never changes once written, and survives renames and
    compression, so a rotated ``tracking.log.1.gz`` is recognised as the file that
    was ``tracking.log``.
    """
    with open_log(path) as handle:
        head = handle.read(FINGERPRINT_BYTES)
    return fingerprint_of_head(head, complete)


def document_fingerprint(content: bytes) -> str:
    """Identity of a JSON document file: a hash of its whole content.

    The ``doc-`` prefix keeps it apart from line-file fingerprints in ``_checkpoints``.
    """
    return "doc-" + hashlib.sha256(content).hexdigest()[:28]


def document_events(path: Path) -> list[bytes] | None:
    """Events of a file that is one JSON document (not JSON lines), else None."""
    with open_log(path) as handle:
        head = handle.read(FINGERPRINT_BYTES)
        stripped = head.lstrip()
        if not stripped.startswith((b"{", b"[")):
            return None
        first_line = stripped.split(b"\n", 1)[0].strip()
        try:
            json.loads(first_line)
            return None  # the first line is a whole JSON value: JSON lines
        except ValueError:
            pass
        if os.path.getsize(path) > MAX_DOCUMENT_BYTES:
            return None
        rest = head + handle.read()
    try:
        document = json.loads(rest)
    except ValueError:
        return None  # not a document after all: load it line by line (bad lines are quarantined)
    events = events_of_document(document)
    if events is None:
        return None
    return [json.dumps(event, separators=(", ", ": ")).encode() for event in events]


def events_of_document(document: object) -> list | None:
    """The events a parsed JSON document holds (one event, a list, an object of events), else None."""
    if isinstance(document, dict) and ("name" in document or "event_type" in document):
        return [document]
    if isinstance(document, dict) and document and all(isinstance(v, dict) for v in document.values()):
        return list(document.values())
    if isinstance(document, list):
        return document
    return None
