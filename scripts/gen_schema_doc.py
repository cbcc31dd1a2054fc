"""Write docs/schema.md from a freshly migrated datalake (table and column comments).

Usage: python scripts/gen_schema_doc.py [--check]
With --check, exit 1 when docs/schema.md is not up to date (used by the tests).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import jinja2

from cairn import catalog
from cairn.config import load_config
from cairn.engine import open_engine
from cairn.schema.migrator import Migrator

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "docs" / "schema.md.j2"
OUTPUT = ROOT / "docs" / "schema.md"


def describe_datalake(engine) -> list[dict]:
    """Tables and views of the datalake with their columns, as documented by their comments."""
    tables = engine.query(
        "SELECT name, engine, comment, sorting_key, partition_key FROM system.tables "
        "WHERE database = {db:String} AND engine != 'MaterializedView' "
        "AND NOT startsWith(name, '.') "
        "ORDER BY startsWith(name, '_'), name", {"db": engine.database}).dicts()
    columns = engine.query(
        "SELECT table, name, type, comment, default_kind FROM system.columns WHERE database = {db:String} "
        "ORDER BY table, position", {"db": engine.database}).dicts()
    for table in tables:
        table["columns"] = [
            {"name": c["name"], "type": c["type"], "comment": c["comment"].replace("|", "\\|"),
             "kind": c["default_kind"] if c["default_kind"] in ("ALIAS", "MATERIALIZED") else ""}
            for c in columns if c["table"] == table["name"]]
    return tables


def render() -> str:
    """The text of docs/schema.md: the template filled from a freshly migrated datalake and the catalog."""
    with tempfile.TemporaryDirectory() as folder:
        config = load_config(overrides={"data_dir": folder})
        with open_engine(config) as engine:
            Migrator(engine, config).run()
            tables = describe_datalake(engine)
    template = jinja2.Template(TEMPLATE.read_text(), trim_blocks=True, lstrip_blocks=True,
                               keep_trailing_newline=True)
    return template.render(tables=tables, database=config.database, catalog=catalog.TABLES)


def main() -> int:
    """Write docs/schema.md, or with --check only say whether it is current (exit 1 if not)."""
    text = render()
    if "--check" in sys.argv:
        if not OUTPUT.exists() or OUTPUT.read_text() != text:
            print("docs/schema.md is out of date: run python scripts/gen_schema_doc.py", file=sys.stderr)
            return 1
        return 0
    OUTPUT.write_text(text)
    print(f"wrote {OUTPUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
