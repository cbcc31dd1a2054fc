"""Tracking-log files on disk: what may be loaded, opening (gzip or plain), identity, size, JSON documents.

Only regular files are loaded (``loadable_file``): a FIFO or a device cannot be
read again from a checkpoint, and opening a FIFO blocks until a writer comes.

A file's *fingerprint* is a hash of its first line: the first line of a log never
changes once written, and survives renames and compression. It only finds the
candidates; which stream a file is, among those sharing its first line, is decided by
its bytes before the position loaded (``identity.py``, ``window_before``).

Besides JSON lines, a file may be one JSON document holding one event, a list of
events or an object of events (event-routing-backends fixtures; both the on-disk
and the in-process shape): ``document_events`` finds those.
"""

from __future__ import annotations

import errno
import gzip
import hashlib
import json
import os
import stat
import struct
from pathlib import Path
from typing import BinaryIO, Iterable

from cairn.errors import CairnError

GZIP_MAGIC = b"\x1f\x8b"
FINGERPRINT_BYTES = 4096
ANCHOR_BYTES = 4096
"""How many bytes before a checkpoint's position identify the file there (see ``identity.py``)."""
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


class UnloadableFile(CairnError):
    """A path given to `cairn load` or `cairn backfill` that is not a log file to read."""


# What each kind of non-regular file is, and what to do instead. A FIFO or a device
# never ends and cannot be read again from an offset: checkpoints cannot apply.
_NOT_REGULAR = (
    (stat.S_ISFIFO, "is a named pipe (FIFO), not a file: it cannot be resumed or read twice; "
                    "pipe the lines into `cairn collect -` instead"),
    (stat.S_ISCHR, "is a character device, not a log file; give a regular file"),
    (stat.S_ISBLK, "is a block device, not a log file; give a regular file"),
    (stat.S_ISSOCK, "is a socket, not a log file; give a regular file"),
)


def loadable_file(path: Path | str, folders: str = "give the log files inside it") -> Path:
    """``path`` when it is a regular file (or a link to one) that can be read, else :class:`UnloadableFile`.

    Checked before anything opens the path: opening a FIFO blocks until a writer
    appears, and a device reads forever. ``folders`` says what to do with a folder.
    """
    path = Path(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            raise UnloadableFile(f"{path}: a symbolic link to {os.readlink(path)}, which does not exist; "
                                 "fix the link or give the file itself") from None
        raise UnloadableFile(f"{path}: no such file; check the path") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UnloadableFile(f"{path}: symbolic link loop (the link leads back to itself); "
                                 "point it at a log file or give the file itself") from None
        raise UnloadableFile(f"{path}: cannot read: {exc.strerror}") from None
    if stat.S_ISDIR(st.st_mode):
        raise UnloadableFile(f"{path} is a folder; {folders}")
    for test, what in _NOT_REGULAR:
        if test(st.st_mode):
            raise UnloadableFile(f"{path} {what}")
    if not stat.S_ISREG(st.st_mode):
        raise UnloadableFile(f"{path} is not a regular file; give a log file")
    if not os.access(path, os.R_OK):
        raise UnloadableFile(f"{path}: permission denied; make it readable by this user")
    return path


def backfill_files(paths: Iterable[Path]) -> list[Path]:
    """The files to backfill: given files, and the files inside given folders, oldest first.

    Oldest first, so that the events arrive roughly in time order. Inside a folder
    only regular files count (a FIFO or socket next to the logs is not one of them);
    a path given by name must be one (see ``loadable_file``).
    """
    files: list[Path] = []
    for path in paths:
        path = Path(path)
        if os.path.isdir(path):
            files.extend(sorted(p for p in path.iterdir() if p.is_file()))
        else:
            files.append(loadable_file(path))
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
    """A hash of a log file's first line (None when empty): the key of the streams it may be.

    The first line of a log never changes once written, and survives renames and
    compression; files that share it are told apart by ``identity.resolve_stream``.
    """
    with open_log(path) as handle:
        head = handle.read(FINGERPRINT_BYTES)
    return fingerprint_of_head(head, complete)


def anchor_of(window: bytes) -> str:
    """The stored form of the bytes before a position (empty for position 0)."""
    return hashlib.sha256(window).hexdigest()[:32] if window else ""


def window_before(path: Path | str, offset: int) -> bytes | None:
    """The (decompressed) bytes ``offset - ANCHOR_BYTES .. offset`` of a file; None when it is shorter."""
    with open_log(path) as handle:
        return read_window(handle, offset)


def read_window(handle: BinaryIO, offset: int) -> bytes | None:
    """``window_before`` on an open file (its position moves)."""
    start = max(0, offset - ANCHOR_BYTES)
    handle.seek(start)
    window = handle.read(offset - start)
    if len(window) < offset - start:
        return None
    return window


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
