"""The data directory's privacy and free space, on plain folders (no engine)."""

from __future__ import annotations

import os
import stat

from cairn.engine.datadir import free_bytes, make_private, open_paths


def _tree(root):
    (root / "a" / "b").mkdir(parents=True)
    (root / "a" / "secret.sql").write_text("PASSWORD")
    (root / "a" / "b" / "part.bin").write_bytes(b"x")
    (root / "link").symlink_to(root / "a")
    for path in (root, root / "a", root / "a" / "b"):
        os.chmod(path, 0o755)
    os.chmod(root / "a" / "secret.sql", 0o644)
    os.chmod(root / "a" / "b" / "part.bin", 0o660)


def test_problems_listed_capped_and_fixed(tmp_path):
    root = tmp_path / "data"
    _tree(root)
    problems, total = open_paths(root)
    assert f"{root / 'a' / 'secret.sql'} (0644)" in problems
    assert len(problems) == total == 5  # root, a, b, two files; the link is not a problem
    capped, total = open_paths(root, limit=2)
    assert len(capped) == 2 and total == 5
    assert make_private(root) == 5
    assert open_paths(root) == ([], 0)
    assert stat.S_IMODE(os.stat(root / "a").st_mode) == 0o700
    assert stat.S_IMODE(os.stat(root / "a" / "secret.sql").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(root / "a" / "b" / "part.bin").st_mode) == 0o600
    assert make_private(root) == 0


def test_missing_directory(tmp_path):
    assert open_paths(tmp_path / "none") == ([], 0)
    assert make_private(tmp_path / "none") == 0
    assert free_bytes(tmp_path / "none" / "deeper") > 0
