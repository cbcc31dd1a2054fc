"""The embedded data directory as files: free space and privacy.

The datalake holds every event, the argon2id hashes of Cairn's users and the
credentials of named collections (the MySQL password): nothing in it may be
readable or writable by group or others. :class:`~cairn.engine.embedded.EmbeddedEngine`
creates it private (umask 0o077); these helpers report and repair a directory
made before that, or widened by hand (`cairn status`, `cairn migrate`).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Iterator

PROBLEMS_SHOWN = 20
"""At most this many paths are listed by :func:`open_paths`; the rest are counted."""


def free_bytes(data_dir: str | os.PathLike) -> int:
    """Bytes free for this user on the file system of ``data_dir`` (its nearest existing parent)."""
    path = Path(data_dir)
    while not path.exists() and path != path.parent:
        path = path.parent
    st = os.statvfs(path)
    # f_bavail, not f_bfree: the blocks reserved for root are not ours to fill.
    return st.f_bavail * st.f_frsize


def _entries(data_dir: Path) -> Iterator[tuple[str, os.stat_result]]:
    """``data_dir`` and everything under it, without following symbolic links."""
    yield str(data_dir), os.lstat(data_dir)
    for root, dirs, files in os.walk(data_dir, onerror=lambda exc: None):
        for name in dirs + files:
            path = os.path.join(root, name)
            try:
                yield path, os.lstat(path)
            except OSError:  # removed meanwhile (the engine merges parts while we walk)
                continue


def _is_open(st: os.stat_result) -> bool:
    # Symbolic links have no modes of their own (they are 0777 on Linux); their targets are walked.
    return not stat.S_ISLNK(st.st_mode) and bool(st.st_mode & 0o077)


def open_paths(data_dir: str | os.PathLike, limit: int = PROBLEMS_SHOWN) -> tuple[list[str], int]:
    """Paths under ``data_dir`` (itself included) with any group or other permission bit.

    Returns at most ``limit`` of them, each as ``"<path> (0644)"``, and how many there
    are in all. ``([], 0)``: the directory is private (or does not exist).
    """
    data_dir = Path(data_dir)
    if not data_dir.exists():
        return [], 0
    listed: list[str] = []
    total = 0
    for path, st in _entries(data_dir):
        if not _is_open(st):
            continue
        total += 1
        if len(listed) < limit:
            listed.append(f"{path} ({stat.S_IMODE(st.st_mode):04o})")
    return listed, total



def make_private(data_dir: str | os.PathLike) -> int:
    """Remove every group and other permission bit under ``data_dir``; returns how many paths changed.

    Directories become at most 0700 and files at most 0600 (the owner's bits are
    kept). Symbolic links are not followed.
    """
    data_dir = Path(data_dir)
    if not data_dir.exists():
        return 0
    changed = 0
    for path, st in _entries(data_dir):
        if not _is_open(st):
            continue
        try:
            os.chmod(path, stat.S_IMODE(st.st_mode) & 0o700)
        except FileNotFoundError:
            continue
        changed += 1
    return changed
