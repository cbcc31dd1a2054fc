"""Leftover FIFO directories of killed inserting processes are removed; live processes' are kept."""

from __future__ import annotations

import os
import subprocess
import sys

from cairn.engine import infile


def test_directories_of_dead_processes_are_removed_and_live_ones_kept(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    gone = tmp_path / f"{infile.FIFO_PREFIX}{dead_pid}-abc123"
    (gone / "sub").mkdir(parents=True)
    (gone / "sub" / "f").write_text("x")
    mine = tmp_path / f"{infile.FIFO_PREFIX}{os.getpid()}-def456"
    mine.mkdir()
    other = tmp_path / "cairn-insert-notapid-x"
    other.mkdir()
    unrelated = tmp_path / f"something-{dead_pid}-x"
    unrelated.mkdir()
    assert infile.remove_stale_dirs(str(tmp_path)) == 1
    assert not gone.exists() and mine.exists() and other.exists() and unrelated.exists()
    assert infile.remove_stale_dirs(str(tmp_path)) == 0
