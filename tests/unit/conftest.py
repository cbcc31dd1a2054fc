"""The fast layer: no chDB, no MariaDB.

When only this layer runs (``pytest tests/unit``), importing chDB or PyMySQL is an
error, so that a test needing the real parts cannot slip in here unnoticed.
"""

from __future__ import annotations

import importlib.abc
import sys
from pathlib import Path

BLOCKED = ("chdb", "pymysql")
UNIT_DIR = Path(__file__).parent


class _Blocked(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):  # noqa: D102 - import protocol
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"the unit layer must not import {name}: move the test to tests/integration/")
        return None


def pytest_collection_modifyitems(session, config, items):
    only_unit = items and all(UNIT_DIR in Path(str(item.fspath)).parents for item in items)
    if only_unit and not any(isinstance(finder, _Blocked) for finder in sys.meta_path):
        for name in [n for n in sys.modules if n.split(".")[0] in BLOCKED]:
            del sys.modules[name]
        sys.meta_path.insert(0, _Blocked())
