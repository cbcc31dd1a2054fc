"""The data directory's privacy and free space, on plain folders (no engine)."""

from __future__ import annotations

import os
import stat

from cairn.engine.datadir import free_bytes, make_private, permission_problems


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
    problems = permission_problems(root)
    assert f"{root / 'a' / 'secret.sql'} (0644)" in problems
    assert len(problems) == 5  # root, a, b, two files; the link is not a problem
    capped = permission_problems(root, limit=2)
    assert capped[-1] == "... and 3 more" and len(capped) == 3
    assert make_private(root) == 5
    assert permission_problems(root) == []
    assert stat.S_IMODE(os.stat(root / "a").st_mode) == 0o700
    assert stat.S_IMODE(os.stat(root / "a" / "secret.sql").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(root / "a" / "b" / "part.bin").st_mode) == 0o600
    assert make_private(root) == 0


def test_missing_directory(tmp_path):
    assert permission_problems(tmp_path / "none") == []
    assert make_private(tmp_path / "none") == 0
    assert free_bytes(tmp_path / "none" / "deeper") > 0
