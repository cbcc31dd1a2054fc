"""Migration system: order, SKIP, dry-run, fake, extra folders, changed files, failures."""

from __future__ import annotations

import pytest

from cairn.errors import MigrationError
from cairn.schema.migrator import PACKAGE_MIGRATIONS, Migrator, discover, render, split_statements

PACKAGED = sorted(p.name for p in PACKAGE_MIGRATIONS.glob("*.sql"))


def run(engine, config, **kwargs):
    steps = []
    extra = kwargs.pop("extra_folders", ())
    Migrator(engine, config, extra_folders=extra).run(echo=lambda s, n, d: steps.append((s, n, d)), **kwargs)
    return steps


def tables(engine, database="openedx"):
    return {name for (name,) in engine.query_rows(
        "SELECT name FROM system.tables WHERE database = {db:String}", {"db": database})}


def test_fresh_run_applies_everything_in_name_order_then_skips(engine, config):
    first = run(engine, config)
    assert [s for s, _, _ in first] == ["APPLY"] * len(PACKAGED)
    assert [n for _, n, _ in first] == PACKAGED
    recorded = engine.query_rows("SELECT name, checksum, faked FROM openedx._migrations ORDER BY name")
    assert [r[0] for r in recorded] == PACKAGED
    assert all(len(r[1]) == 64 and r[2] is False for r in recorded)
    assert {"events", "video_events", "problem_events", "enrollment_events", "navigation_events",
            "grade_events", "forum_events", "completion_events", "certificate_events",
            "_quarantine", "_migrations"} <= tables(engine)
    second = run(engine, config)
    assert [s for s, _, _ in second] == ["SKIP"] * len(PACKAGED)
    assert engine.query_value("SELECT count() FROM openedx._migrations") == len(PACKAGED)


def test_extra_folders_merge_in_name_order(engine, config, tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    # 0002a sorts between Cairn's 0002 and 0003; it uses the events table created by 0002.
    (mine / "0002a_my_view.sql").write_text(
        "CREATE VIEW IF NOT EXISTS `{{ database }}`.my_daily AS\n"
        "SELECT toDate(time) AS day, count() AS n FROM `{{ database }}`.events GROUP BY day;\n")
    (mine / "9999_last.sql").write_text("CREATE TABLE `{{ database }}`.my_last (x UInt8) ENGINE = Memory")
    from_config = tmp_path / "from_config"
    from_config.mkdir()
    (from_config / "5000_cfg.sql").write_text("CREATE TABLE `{{ database }}`.cfg_table (x UInt8) ENGINE = Memory;")
    config = config.with_overrides({"migrations_folders": [str(from_config)]})
    steps = run(engine, config, extra_folders=[mine])
    names = [n for _, n, _ in steps]
    assert names == sorted(PACKAGED + ["0002a_my_view.sql", "9999_last.sql", "5000_cfg.sql"])
    assert names.index("0002a_my_view.sql") == names.index("0002_events.sql") + 1
    assert {"my_daily", "my_last", "cfg_table"} <= tables(engine)


def test_dry_run_changes_nothing_and_shows_rendered_sql(engine, config):
    steps = run(engine, config, dry_run=True)
    assert {s for s, _, _ in steps} == {"DRY-RUN"}
    events_sql = dict((n, d) for _, n, d in steps)["0002_events.sql"]
    assert "CREATE TABLE IF NOT EXISTS `openedx`.events" in events_sql
    assert "{{" not in events_sql and "{%" not in events_sql
    assert engine.query_value("SELECT count() FROM system.databases WHERE name = 'openedx'") == 0


def test_fake_records_without_running(engine, config, tmp_path):
    steps = run(engine, config, fake=True)
    assert {s for s, _, _ in steps} == {"FAKE"}
    assert "events" not in tables(engine)
    assert engine.query_value("SELECT countIf(faked) FROM openedx._migrations") == len(PACKAGED)
    assert {s for s, _, _ in run(engine, config)} == {"SKIP"}


def test_changed_file_is_reported_not_reapplied(engine, config, tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    migration = mine / "9000_mine.sql"
    migration.write_text("CREATE TABLE `{{ database }}`.mine (x UInt8) ENGINE = Memory;")
    run(engine, config, extra_folders=[mine])
    migration.write_text("CREATE TABLE `{{ database }}`.mine (x UInt8, y UInt8) ENGINE = Memory;")
    steps = run(engine, config, extra_folders=[mine])
    changed = [(s, d) for s, n, d in steps if n == "9000_mine.sql"]
    assert changed[0][0] == "CHANGED"
    assert "has changed" in changed[0][1]
    assert [c for (c,) in engine.query_rows("SELECT name FROM system.columns WHERE table = 'mine'")] == ["x"]
    statuses = {s.migration.name: s.state for s in Migrator(engine, config, [mine]).status()}
    assert statuses["9000_mine.sql"] == "changed"


def test_failure_stops_run_keeps_earlier_and_does_not_record_failed(engine, config, tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "9001_ok.sql").write_text("CREATE TABLE `{{ database }}`.ok1 (x UInt8) ENGINE = Memory;")
    (mine / "9002_bad.sql").write_text(
        "CREATE TABLE `{{ database }}`.ok2 (x UInt8) ENGINE = Memory;\n"
        "SELECT * FROM `{{ database }}`.no_such_table;\n"
        "CREATE TABLE `{{ database }}`.never (x UInt8) ENGINE = Memory;\n")
    (mine / "9003_after.sql").write_text("CREATE TABLE `{{ database }}`.after (x UInt8) ENGINE = Memory;")
    with pytest.raises(MigrationError) as info:
        run(engine, config, extra_folders=[mine])
    message = str(info.value)
    assert "9002_bad.sql" in message
    assert "statement 2 of 3" in message
    assert "no_such_table" in message
    assert "Code: 60" in message  # ClickHouse's own error
    recorded = {n for (n,) in engine.query_rows("SELECT name FROM openedx._migrations")}
    assert "9001_ok.sql" in recorded and "9002_bad.sql" not in recorded and "9003_after.sql" not in recorded
    assert {"ok1", "ok2"} <= tables(engine) and not {"never", "after"} & tables(engine)


def test_duplicate_names_and_missing_folder_are_errors(tmp_path):
    clash = tmp_path / "clash"
    clash.mkdir()
    (clash / PACKAGED[0]).write_text("SELECT 1")
    with pytest.raises(MigrationError, match="two migrations are named"):
        discover([clash])
    with pytest.raises(MigrationError, match="does not exist"):
        discover([tmp_path / "nope"])


def test_cluster_renders_on_cluster_and_replicated_engines(config):
    clustered = config.with_overrides({"clickhouse.cluster": "analytics"})
    migration = next(m for m in discover() if m.name == "0002_events.sql")
    sql = render(migration, clustered)
    assert "ON CLUSTER analytics" in sql
    assert "ReplicatedMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}')" in sql
    plain = render(migration, config)
    assert "ON CLUSTER" not in plain and "ENGINE = MergeTree()" in plain


def test_database_name_comes_from_configuration(engine, config):
    other = config.with_overrides({"database": "lake2"})
    Migrator(engine, other).run()
    assert "events" in tables(engine, "lake2")
    assert "events" not in tables(engine, "openedx")


def test_split_statements_respects_quotes_and_comments():
    sql = """
    -- a comment; with a semicolon
    SELECT 'a;b', "c;d", `e;f`; /* block ; comment */
    SELECT 'it\\'s; fine';
    ;
    -- only a comment
    """
    statements = split_statements(sql)
    assert len(statements) == 2
    assert statements[0].endswith("`e;f`")
    assert "it\\'s; fine" in statements[1]
