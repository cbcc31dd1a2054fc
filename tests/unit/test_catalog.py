"""The catalog of tables: one declaration read by configuration, access, the MySQL sync and docs."""

from __future__ import annotations

import pytest

from cairn import catalog, hooks
from cairn.config import MYSQL_DATALAKE_TABLES


def test_entries_are_unique_and_well_formed():
    names = [t.name for t in catalog.TABLES]
    assert len(names) == len(set(names))
    for entry in catalog.TABLES:
        assert entry.kind in catalog.KINDS and entry.description
        assert entry.name.startswith("_") == (entry.kind == "internal"), entry.name
        if entry.kind in ("event", "course"):
            assert entry.course_column, entry.name
        if entry.kind == "learner":
            assert entry.learner_column, entry.name


def test_every_event_table_is_course_and_org_scoped():
    assert catalog.EVENT_TABLES[0] == "events" and len(catalog.EVENT_TABLES) == 9
    for name in catalog.EVENT_TABLES:
        entry = catalog.table(name)
        assert (entry.course_column, entry.org_column) == ("course_id", "org")


def test_mysql_tables_are_read_by_config_and_sync():
    from cairn.demo.platform import TABLES as DEMO_TABLES
    from cairn.sources.openedx_mysql import DATALAKE_TABLES, copy_table, refresh_view

    assert tuple(catalog.MYSQL_TABLES) == MYSQL_DATALAKE_TABLES == tuple(DATALAKE_TABLES)
    assert DATALAKE_TABLES["users"] == "auth_user"
    assert DEMO_TABLES == tuple(catalog.MYSQL_TABLES.values())
    assert copy_table("users") == "_mysql_users_copy" and refresh_view("users") == "_mysql_users_refresh"
    with pytest.raises(ValueError):
        catalog.backing_table("users", "other")


def test_mysql_migration_lists_the_catalog_tables():
    """0100_mysql_tables.sql keeps its own list (its text is checksummed): both must agree."""
    from cairn.schema.migrator import PACKAGE_MIGRATIONS

    text = (PACKAGE_MIGRATIONS / "0100_mysql_tables.sql").read_text()
    for name, source in catalog.MYSQL_TABLES.items():
        assert f'("{name}", "{source}",' in text, name


def test_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="unknown kind"):
        catalog.Table("x", "weird", "no")


def test_status_sections_are_registered_by_domain_modules():
    hooks.load_providers()
    names = [getattr(fn, "__name__", "") for fn in hooks.STATUS_SECTIONS]
    assert {"collector_status", "users_status", "status_section"} <= set(names)


def test_every_hook_is_documented():
    for hook in (hooks.STATUS_SECTIONS, hooks.MIGRATION_FOLDERS, hooks.SETTINGS, hooks.CLI_COMMANDS):
        assert hook.__doc__ and len(hook.__doc__) > 40
    probe = hooks.Hook("probe", "A test hook.")
    assert probe.add(len) is len and probe.add(len) is len and probe.items() == [len]
    probe.remove(len)
    assert probe.items() == []
