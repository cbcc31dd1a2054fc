"""A small real file system for full-disk tests: a tmpfs mounted for one test (root only)."""

from __future__ import annotations

import contextlib
import os
import subprocess
from pathlib import Path
from typing import Iterator

import pytest


@contextlib.contextmanager
def small_tmpfs(parent: Path, size: str) -> Iterator[Path]:
    """Mount a tmpfs of ``size`` (e.g. ``"64m"``) under ``parent``; always unmounted afterwards.

    Skips the test when not root or when the mount is refused (a container without the right).
    """
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount = parent / "small"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        # A process still holding a file there makes a plain umount fail: detach it lazily then.
        if subprocess.run(["umount", str(mount)], capture_output=True, check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(mount)], capture_output=True, check=False)


def remount(mount: Path, size: str) -> None:
    """Grow (or shrink) a mounted tmpfs: how a test "frees space"."""
    subprocess.run(["mount", "-o", f"remount,size={size}", str(mount)], check=True, capture_output=True)
