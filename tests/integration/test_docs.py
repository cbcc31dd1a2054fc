"""The documentation stays true to the code."""

from __future__ import annotations

import subprocess
import sys

from support.paths import PROJECT_ROOT


def test_schema_reference_documents_every_table_and_column():
    """docs/schema.md is generated from the migrations; a stale copy fails here."""
    result = subprocess.run([sys.executable, str(PROJECT_ROOT / "scripts" / "gen_schema_doc.py"), "--check"],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr


def test_every_product_column_has_a_description():
    from cairn.config import load_config
    from cairn.engine import open_engine
    from cairn.schema.migrator import Migrator
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        config = load_config(overrides={"data_dir": folder})
        with open_engine(config) as engine:
            Migrator(engine, config).run()
            missing = engine.query_rows(
                "SELECT table, name FROM system.columns c WHERE database = 'openedx' AND comment = '' "
                "AND NOT startsWith(table, '_') "
                "AND table IN (SELECT name FROM system.tables WHERE database = 'openedx' "
                "AND engine NOT IN ('MaterializedView', 'View'))")
    assert missing == []
