"""The Open edX MySQL tables in the datalake, against the real MariaDB on this machine.

Every test gets its own MariaDB database (``cairn_t_<session>_<n>``, dropped afterwards)
holding the Open edX tables, and its own embedded datalake.
"""

from __future__ import annotations

import itertools
import json
import socket
import time
import uuid
from datetime import datetime, timezone

import pymysql
import pytest

from cairn.sources import openedx_mysql as om
from cairn.config import load_config
from cairn.engine import open_engine
from cairn.errors import CairnError
from cairn.ingest.loader import Loader
from cairn.schema.migrator import Migrator

SESSION = uuid.uuid4().hex[:8]
_counter = itertools.count(1)
C1 = "course-v1:Cairn+DS101+2026_T1"
C2 = "course-v1:Other+PY200+2026_T1"
BLOCK = "block-v1:Cairn+DS101+2026_T1+type@video+block@intro"


def mysql_root(database: str | None = None):
    return pymysql.connect(host="127.0.0.1", port=3306, user="root", password="", database=database,
                           autocommit=True, charset="utf8mb4")


@pytest.fixture(scope="session", autouse=True)
def _drop_leftovers():
    """Drop every database and user this session created, even after failures."""
    yield
    conn = mysql_root()
    with conn.cursor() as cur:
        cur.execute("SHOW DATABASES LIKE %s", (f"cairn_t_{SESSION}_%",))
        for (name,) in cur.fetchall():
            cur.execute(f"DROP DATABASE `{name}`")
        cur.execute("SELECT user, host FROM mysql.user WHERE user LIKE %s", (f"cairn_t_{SESSION}%",))
        for user, host in cur.fetchall():
            cur.execute("DROP USER %s@%s", (user, host))
    conn.close()


def fill(db: str) -> None:
    """Three learners, two courses, grades, completion, a role, a certificate."""
    conn = mysql_root(db)
    t1, t2 = "2026-03-01 10:00:00.250000", "2026-03-02 11:00:00"
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO auth_user (id, password, last_login, is_superuser, username, first_name, last_name, "
            "email, is_staff, is_active, date_joined) VALUES (%s, 'pbkdf2_sha256$secret', %s, 0, %s, '', '', %s, %s, 1, %s)",
            [(1, t2, "alice", "alice@example.org", 0, t1), (2, None, "bob", "bob@example.org", 0, t1),
             (3, t2, "carol", "carol@example.org", 1, t1)])
        cur.executemany(
            "INSERT INTO auth_userprofile (user_id, name, meta, courseware, language, location, year_of_birth, "
            "gender, level_of_education, country) VALUES (%s, %s, '{}', 'course.xml', '', '', %s, %s, %s, %s)",
            [(1, "Alice Martin", 1990, "f", "m", "FR"), (2, "Bob Lee", None, None, None, None),
             (3, "Carol Diaz", 1985, "f", "p", "MX")])
        cur.executemany(
            "INSERT INTO student_courseenrollment (user_id, course_id, created, is_active, mode) VALUES (%s, %s, %s, %s, %s)",
            [(1, C1, t1, 1, "verified"), (2, C1, t1, 1, "audit"), (3, C2, t1, 0, "audit")])
        cur.executemany(
            "INSERT INTO grades_persistentcoursegrade (user_id, course_id, course_version, grading_policy_hash, "
            "percent_grade, letter_grade, passed_timestamp, created, modified) VALUES (%s, %s, 'v1', 'h', %s, %s, %s, %s, %s)",
            [(1, C1, 0.9, "Pass", t2, t1, t2), (2, C1, 0.4, "", None, t1, t2)])
        cur.execute(
            "INSERT INTO grades_persistentsubsectiongrade (user_id, course_id, usage_key, course_version, earned_all, "
            "possible_all, earned_graded, possible_graded, first_attempted, visible_blocks_hash, created, modified) "
            "VALUES (1, %s, 'block-v1:Cairn+DS101+2026_T1+type@sequential+block@hw1', 'v1', 3, 4, 3, 4, %s, 'x', %s, %s)",
            (C1, t1, t1, t2))
        cur.execute(
            "INSERT INTO completion_blockcompletion (created, modified, course_key, block_key, block_type, completion, user_id) "
            "VALUES (%s, %s, %s, %s, 'video', 1.0, 1)", (t1, t2, C1, BLOCK))
        cur.execute(
            "INSERT INTO course_overviews_courseoverview (created, modified, version, id, _location, org, display_name, "
            "display_number_with_default, display_org_with_default, start, `end`, banner_image_url, course_image_url, "
            "certificates_show_before_end, cert_html_view_enabled, has_any_active_web_certificate, cert_name_short, "
            "cert_name_long, lowest_passing_grade, mobile_available, visible_to_staff_only, _pre_requisite_courses_json, "
            "invitation_only, self_paced, eligible_for_financial_aid, enable_proctored_exams, allow_proctoring_opt_out, "
            "entrance_exam_enabled, entrance_exam_id, entrance_exam_minimum_score_pct, "
            "force_on_flexible_peer_openassessments) VALUES (%s, %s, 19, %s, '', 'Cairn', 'Data Science 101', 'DS101', "
            "'Cairn', %s, NULL, '', '', 0, 1, 1, '', '', 0.50, 1, 0, '[]', 0, 1, 0, 0, 0, 0, '', 0.65, 0)",
            (t1, t2, C1, t1))
        cur.execute("INSERT INTO student_courseaccessrole (org, course_id, role, user_id) VALUES ('Cairn', %s, 'staff', 3)", (C1,))
        cur.execute(
            "INSERT INTO certificates_generatedcertificate (user_id, course_id, verify_uuid, grade, `key`, distinction, "
            "status, mode, name, created_date, modified_date, download_uuid, download_url, error_reason) "
            "VALUES (1, %s, 'u1', '0.9', 'k1', 0, 'downloadable', 'verified', 'Alice Martin', %s, %s, '', '', '')",
            (C1, t2, t2))
    conn.close()


@pytest.fixture
def mysql_db():
    """A fresh MariaDB database with the Open edX tables, filled."""
    name = f"cairn_t_{SESSION}_{next(_counter)}"
    tables = om.create_openedx_tables({"database": name})
    assert len(tables) == 9
    fill(name)
    yield name
    conn = mysql_root()
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
    conn.close()


def make(tmp_path, mysql_db, **overrides):
    cfg = load_config(overrides={"data_dir": str(tmp_path / "data"), "mysql.database": mysql_db, **overrides})
    engine = open_engine(cfg)
    Migrator(engine, cfg).run()
    return cfg, engine


@pytest.fixture
def lake(tmp_path, mysql_db):
    """(config, engine) of a migrated datalake in the default synced mode, copies taken."""
    cfg, engine = make(tmp_path, mysql_db)
    om.sync(engine, cfg)
    yield cfg, engine
    engine.close()


def write_events(path, events) -> None:
    lines = []
    for user_id, username, course, name, when in events:
        lines.append(json.dumps({
            "name": name, "event_type": name, "time": when, "username": username, "event_source": "browser",
            "context": {"course_id": course, "org_id": course.split(":")[1].split("+")[0], "user_id": user_id,
                        "path": "/event"},
            "event": {}, "page": None, "session": "", "ip": "", "agent": "", "host": "", "referer": "",
            "accept_language": ""}))
    path.write_text("\n".join(lines) + "\n")


EVENTS = [
    (1, "alice", C1, "play_video", "2026-03-10T09:00:00+00:00"),
    (1, "alice", C1, "problem_check", "2026-03-10T09:05:00+00:00"),
    (1, "alice", C1, "seq_goto", "2026-03-12T18:00:00+00:00"),
    (2, "bob", C1, "seq_goto", "2026-03-11T08:00:00+00:00"),
    (3, "carol", C2, "play_video", "2026-03-11T08:30:00+00:00"),
]


def load_events(tmp_path, engine):
    log = tmp_path / "tracking.log"
    write_events(log, EVENTS)
    result = Loader(engine).load_file(log)
    assert result.counts.get("event") == len(EVENTS)


def wait_for(check, timeout):
    """Poll ``check()`` until true; return the seconds it took (fails after ``timeout``)."""
    start = time.monotonic()
    while True:
        if check():
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            pytest.fail(f"not seen within {timeout} s")
        time.sleep(0.1)


JOIN = """
SELECT u.username, e.mode, g.percent_grade, count() AS events
FROM openedx.events AS ev
JOIN openedx.users AS u ON u.id = ev.user_id
JOIN openedx.enrollments AS e ON e.user_id = u.id AND e.course_id = ev.course_id
LEFT JOIN openedx.course_grades AS g ON g.user_id = u.id AND g.course_id = ev.course_id
WHERE ev.course_id = {course:String}
GROUP BY u.username, e.mode, g.percent_grade
ORDER BY u.username
"""


# ---------------------------------------------------------------------------


def test_create_openedx_tables_real_columns(mysql_db):
    conn = mysql_root(mysql_db)
    with conn.cursor() as cur:
        cur.execute("SELECT column_name, column_type, is_nullable FROM information_schema.columns "
                    "WHERE table_schema = %s AND table_name = 'auth_user' ORDER BY ordinal_position", (mysql_db,))
        columns = {name: (ctype, nullable) for name, ctype, nullable in cur.fetchall()}
        cur.execute("SELECT index_name, GROUP_CONCAT(column_name ORDER BY seq_in_index) FROM information_schema.statistics "
                    "WHERE table_schema = %s AND table_name = 'completion_blockcompletion' AND non_unique = 0 "
                    "GROUP BY index_name", (mysql_db,))
        unique = sorted(cols for _, cols in cur.fetchall())
        cur.execute("SELECT column_type FROM information_schema.columns WHERE table_schema = %s "
                    "AND table_name = 'grades_persistentcoursegrade' AND column_name = 'id'", (mysql_db,))
        grade_id = cur.fetchone()[0]
    conn.close()
    assert columns["username"] == ("varchar(150)", "NO")
    assert columns["last_login"] == ("datetime(6)", "YES")
    assert columns["is_staff"][0] == "tinyint(1)"
    assert len(columns) == 11
    assert unique == ["course_key,block_key,user_id", "id"]
    assert grade_id == "bigint(20) unsigned"
    # idempotent
    assert len(om.create_openedx_tables({"database": mysql_db})) == 9


def test_synced_mode_joins_events_and_follows_mysql(tmp_path, mysql_db):
    cfg, engine = make(tmp_path, mysql_db, **{"mysql.refresh_seconds": 1})
    try:
        assert om.sync(engine, cfg)["users"] == 3
        load_events(tmp_path, engine)
        assert engine.query_rows(JOIN, {"course": C1}) == [("alice", "verified", 0.9, 3), ("bob", "audit", 0.4, 1)]
        assert engine.query_value("SELECT engine FROM system.tables WHERE database = 'openedx' "
                                  "AND name = '_mysql_users_copy'") == "MergeTree"
        # values and types survive the copy
        row = engine.query_rows("SELECT toString(date_joined), toTypeName(date_joined), toString(last_login), "
                                "is_staff FROM openedx.users WHERE id = 1")[0]
        assert row == ("2026-03-01 10:00:00.250000", "DateTime64(6, 'UTC')", "2026-03-02 11:00:00.000000", False)
        assert engine.query_value("SELECT toString(lowest_passing_grade) FROM openedx.course_overviews") == "0.5"

        conn = mysql_root(mysql_db)
        with conn.cursor() as cur:
            cur.execute("UPDATE grades_persistentcoursegrade SET percent_grade = 0.75 WHERE user_id = 2")
        conn.close()
        took = wait_for(lambda: engine.query_value(
            "SELECT percent_grade FROM openedx.course_grades WHERE user_id = 2") == 0.75, timeout=6)
        assert took < 6
        assert engine.query_rows(JOIN, {"course": C1})[1] == ("bob", "audit", 0.75, 1)
        status = {row["table"]: row for row in om.sync_status(engine, cfg)}
        assert status["course_grades"]["mode"] == "synced" and status["course_grades"]["error"] == ""
        assert status["course_grades"]["copied rows"] == 2
        assert status["course_grades"]["age"].endswith(" s")
    finally:
        engine.close()


def test_live_mode_sees_changes_at_once(tmp_path, mysql_db):
    cfg, engine = make(tmp_path, mysql_db, **{"mysql.mode": "live"})
    try:
        load_events(tmp_path, engine)
        assert engine.query_rows(JOIN, {"course": C1}) == [("alice", "verified", 0.9, 3), ("bob", "audit", 0.4, 1)]
        assert engine.query_value("SELECT count() FROM system.tables WHERE database = 'openedx' "
                                  "AND name LIKE '\\_mysql\\_%\\_refresh'") == 0
        conn = mysql_root(mysql_db)
        with conn.cursor() as cur:
            cur.execute("UPDATE student_courseenrollment SET mode = 'verified' WHERE user_id = 2")
            cur.execute("UPDATE grades_persistentcoursegrade SET percent_grade = 0.55 WHERE user_id = 2")
        conn.close()
        assert engine.query_rows(JOIN, {"course": C1})[1] == ("bob", "verified", 0.55, 1)
        assert om.sync(engine, cfg) == {}  # nothing to copy in live mode
        status = {row["table"]: row for row in om.sync_status(engine, cfg)}
        assert status["users"]["mode"] == "live" and status["users"]["error"] == ""
    finally:
        engine.close()


def test_per_table_mode_and_apply_switches(tmp_path, mysql_db):
    cfg, engine = make(tmp_path, mysql_db, **{"mysql.refresh_seconds": 3600})
    try:
        assert engine.query_value("SELECT count() FROM openedx.users") == 0  # created EMPTY: no copy yet
        om.sync(engine, cfg)
        conn = mysql_root(mysql_db)
        with conn.cursor() as cur:
            cur.execute("INSERT INTO auth_user VALUES (4, 'x', NULL, 0, 'dave', '', '', 'd@x', 0, 1, '2026-03-05')")
            cur.execute("INSERT INTO student_courseenrollment (user_id, course_id, created, is_active, mode) "
                        "VALUES (4, %s, NULL, 1, 'audit')", (C1,))
        conn.close()
        assert engine.query_value("SELECT count() FROM openedx.users") == 3  # synced copy, hourly
        live_users = cfg.with_overrides({"mysql.tables.users.mode": "live"})
        assert om.apply(engine, live_users)["users"] == "live"
        assert engine.query_value("SELECT count() FROM openedx.users") == 4
        assert engine.query_value("SELECT count() FROM openedx.enrollments") == 3  # still the copy
        refreshes = {r[0] for r in engine.query_rows(
            "SELECT name FROM system.tables WHERE database = 'openedx' AND name LIKE '%\\_refresh'")}
        assert "_mysql_users_refresh" not in refreshes and "_mysql_enrollments_refresh" in refreshes
        # status notices a configuration not applied yet
        pending = {r["table"]: r for r in om.sync_status(engine, cfg)}
        assert "cairn mysql apply" in pending["users"]["error"]
        # back to synced: a first copy is started at once (in the background)
        conn = mysql_root(mysql_db)
        with conn.cursor() as cur:
            cur.execute("INSERT INTO auth_user VALUES (5, 'x', NULL, 0, 'erin', '', '', 'e@x', 0, 1, '2026-03-06')")
        conn.close()
        om.apply(engine, cfg)
        assert engine.query_value("SELECT engine FROM system.tables WHERE database = 'openedx' "
                                  "AND name = '_mysql_users_refresh'") == "MaterializedView"
        wait_for(lambda: engine.query_value("SELECT count() FROM openedx._mysql_users_copy") == 5, timeout=10)
        assert engine.query_value("SELECT count() FROM openedx.enrollments") == 3  # untouched by apply
        om.sync(engine, cfg, ["users", "enrollments"])
        assert engine.query_value("SELECT count() FROM openedx.users") == 5
        assert engine.query_value("SELECT count() FROM openedx.enrollments") == 4
        with pytest.raises(CairnError, match="unknown MySQL datalake table 'nope'"):
            om.sync(engine, cfg, ["nope"])
        # disabling keeps the last copies and drops everything that reaches MySQL
        assert set(om.apply(engine, cfg.with_overrides({"mysql.enabled": "false"})).values()) == {"disabled"}
        assert engine.query_value("SELECT count() FROM openedx.users") == 5
        assert engine.query_value("SELECT count() FROM system.named_collections WHERE name = 'openedx_mysql'") == 0
        assert engine.query_value("SELECT count() FROM system.tables WHERE database = 'openedx' "
                                  "AND (name LIKE '%\\_live' OR name LIKE '%\\_refresh')") == 0
        om.apply(engine, cfg)  # and back
        assert engine.query_value("SELECT count() FROM system.named_collections WHERE name = 'openedx_mysql'") == 1
    finally:
        engine.close()


def test_convenience_views(lake, tmp_path):
    cfg, engine = lake
    load_events(tmp_path, engine)
    assert engine.query_rows(
        "SELECT username, full_name, course_id, org, mode, is_active, year_of_birth, gender, country "
        "FROM openedx.enrollments_with_profile ORDER BY user_id") == [
        ("alice", "Alice Martin", C1, "Cairn", "verified", True, 1990, "f", "FR"),
        ("bob", "Bob Lee", C1, "Cairn", "audit", True, None, None, None),
        ("carol", "Carol Diaz", C2, "Other", "audit", False, 1985, "f", "MX")]
    assert engine.query_rows(
        "SELECT username, email, percent_grade, passed, enrollment_mode FROM openedx.grades_with_learner "
        "ORDER BY user_id") == [("alice", "alice@example.org", 0.9, True, "verified"),
                                ("bob", "bob@example.org", 0.4, False, "audit")]
    activity = engine.query("SELECT * FROM openedx.learner_activity WHERE user_id = 1").dicts()
    assert len(activity) == 1
    alice = activity[0]
    assert (alice["course_id"], alice["username"], alice["events"], alice["active_days"]) == (C1, "alice", 3, 2)
    assert (alice["video_events"], alice["problem_events"], alice["navigation_events"]) == (1, 1, 1)
    assert alice["first_event"].isoformat().startswith("2026-03-10T09:00:00")
    assert alice["last_event"].isoformat().startswith("2026-03-12T18:00:00")
    assert dict(alice["events_by_name"]) == {"play_video": 1, "problem_check": 1, "seq_goto": 1}
    # completion with the course structure (openedx.course_blocks, filled by import-course)
    before = engine.query_rows("SELECT username, block_type, completion, display_name FROM openedx.completion_with_blocks")
    assert before == [("alice", "video", 1.0, "")]
    engine.command(
        "INSERT INTO openedx.course_blocks (course_id, block_key, block_type, display_name, section_name, "
        "subsection_name, unit_name, course_order, graded) VALUES "
        f"('{C1}', '{BLOCK}', 'video', 'Welcome video', 'Intro', 'Getting started', 'Video unit', 4, false)")
    assert engine.query_rows(
        "SELECT username, display_name, section_name, subsection_name, unit_name, course_order "
        "FROM openedx.completion_with_blocks") == [
        ("alice", "Welcome video", "Intro", "Getting started", "Video unit", 4)]


def test_all_nine_tables_copied(lake):
    cfg, engine = lake
    counts = {name: engine.query_value(f"SELECT count() FROM openedx.{name}") for name in om.DATALAKE_TABLES}
    assert counts == {"users": 3, "user_profiles": 3, "enrollments": 3, "course_grades": 2, "subsection_grades": 1,
                      "block_completion": 1, "course_overviews": 1, "course_access_roles": 1, "certificates": 1}
    assert engine.query_rows("SELECT role, org, course_id FROM openedx.course_access_roles") == [("staff", "Cairn", C1)]
    assert engine.query_rows("SELECT status, key, mode FROM openedx.certificates") == [("downloadable", "k1", "verified")]
    assert engine.query_rows("SELECT earned_graded / possible_graded FROM openedx.subsection_grades") == [(0.75,)]
    # the password hash is never brought in
    assert engine.query_value("SELECT count() FROM system.columns WHERE database = 'openedx' "
                              "AND name = 'password'") == 0


def test_mysql_down_keeps_copy_and_ingestion(tmp_path, mysql_db):
    cfg, engine = make(tmp_path, mysql_db)
    try:
        assert om.sync(engine, cfg)["users"] == 3
        with socket.socket() as s:  # a port nobody listens on
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        down = cfg.with_overrides({"mysql.port": port})
        om.apply(engine, down)
        with pytest.raises(om.MySQLUnavailable, match=rf"^cannot reach MySQL at 127\.0\.0\.1:{port} "):
            om.sync(engine, down)
        with pytest.raises(om.MySQLUnavailable, match=rf"127\.0\.0\.1:{port}"):
            om.check_schema(engine, down)
        # the last copies stay queryable; events still load
        assert engine.query_value("SELECT count() FROM openedx.users") == 3
        load_events(tmp_path, engine)
        assert engine.query_rows(JOIN, {"course": C1})[0] == ("alice", "verified", 0.9, 3)
        rows = {r["table"]: r for r in om.sync_status(engine, down)}
        assert rows["users"]["copied rows"] == 3
        assert rows["users"]["last copy (UTC)"][:4] == str(datetime.now(timezone.utc).year)
        assert rows["users"]["age"].endswith(" s")
        assert f"cannot reach MySQL at 127.0.0.1:{port}" in rows["users"]["error"]
        # live mode: the query error names host and port
        om.apply(engine, down.with_overrides({"mysql.mode": "live"}))
        with pytest.raises(CairnError, match=rf"127\.0\.0\.1:{port}"):
            engine.query_value("SELECT count() FROM openedx.users")
    finally:
        engine.close()


def test_migrate_without_mysql_gives_events_datalake(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = load_config(overrides={"data_dir": str(tmp_path / "data"), "mysql.port": port})
    engine = open_engine(cfg)
    try:
        started = time.monotonic()
        Migrator(engine, cfg).run()
        assert time.monotonic() - started < 30
        load_events(tmp_path, engine)
        assert engine.query_value("SELECT count() FROM openedx.events") == len(EVENTS)
        assert engine.query_value("SELECT sum(events) FROM openedx.learner_activity") == len(EVENTS)
        assert engine.query_value("SELECT count() FROM openedx.users") == 0
    finally:
        engine.close()


def test_disabled_creates_no_mysql_objects(tmp_path):
    cfg = load_config(overrides={"data_dir": str(tmp_path / "data"), "mysql.enabled": "false"})
    engine = open_engine(cfg)
    try:
        Migrator(engine, cfg).run()
        assert engine.query_value("SELECT count() FROM system.tables WHERE database = 'openedx' "
                                  "AND (name LIKE '%\\_live' OR name LIKE '%\\_refresh')") == 0
        assert engine.query_value("SELECT count() FROM system.named_collections WHERE name = 'openedx_mysql'") == 0
        assert engine.query_value("SELECT count() FROM openedx.grades_with_learner") == 0
        assert om.sync(engine, cfg) == {}
        assert {r["mode"] for r in om.sync_status(engine, cfg)} == {"disabled"}
        with pytest.raises(CairnError, match="disabled"):
            om.check_schema(engine, cfg)
    finally:
        engine.close()


def test_unknown_and_missing_columns_are_reported(lake, mysql_db):
    cfg, engine = lake
    conn = mysql_root(mysql_db)
    with conn.cursor() as cur:  # a newer Open edX release
        cur.execute("ALTER TABLE course_overviews_courseoverview ADD COLUMN complexity varchar(10) NULL, "
                    "ADD COLUMN faculty longtext NULL")
        cur.execute("ALTER TABLE certificates_generatedcertificate DROP COLUMN error_reason")
    conn.close()
    checks = {c.table: c for c in om.check_schema(engine, cfg)}
    assert checks["course_overviews"].unknown == ["complexity", "faculty"]
    assert checks["course_overviews"].ok and "complexity, faculty" in checks["course_overviews"].describe()
    assert checks["certificates"].missing == ["error_reason"] and not checks["certificates"].ok
    assert checks["users"].unknown == [] and checks["users"].ok  # password is deliberately not copied
    # the newer columns do not break the copy
    assert om.sync(engine, cfg, ["course_overviews"]) == {"course_overviews": 1}


def test_credentials_escaped_and_hidden(tmp_path, mysql_db):
    user, password = f"cairn_t_{SESSION}", "p'a\"ss\\w;rd -- x"
    conn = mysql_root()
    with conn.cursor() as cur:
        for host in ("localhost", "127.0.0.1", "%"):
            cur.execute("CREATE USER IF NOT EXISTS %s@%s IDENTIFIED BY %s", (user, host, password))
            cur.execute(f"GRANT SELECT ON `{mysql_db}`.* TO %s@%s", (user, host))
    conn.close()
    cfg, engine = make(tmp_path, mysql_db, **{"mysql.user": user, "mysql.password": password})
    try:
        assert om.sync(engine, cfg)["users"] == 3
        shown = " ".join(r[0] for r in engine.query_rows("SHOW CREATE TABLE openedx._mysql_users_live"))
        shown += " ".join(str(r) for r in engine.query_rows("SELECT * FROM system.named_collections"))
        assert "openedx_mysql" in shown and "ss\\" not in shown and "p'a" not in shown and "rd --" not in shown
        wrong = cfg.with_overrides({"mysql.password": "wrong"})
        om.apply(engine, wrong)
        with pytest.raises(om.MySQLUnavailable, match="127.0.0.1:3306"):
            om.sync(engine, wrong, ["users"])
    finally:
        engine.close()


def test_cli_sync_status_and_errors(tmp_path, mysql_db, capsys):
    from cairn.cli import main as cli_main

    def main(argv):
        try:
            return cli_main(argv)
        except SystemExit as exc:  # typer exits after a successful command
            return exc.code or 0

    base = ["--data-dir", str(tmp_path / "data"), "--set", f"mysql.database={mysql_db}"]
    assert main(base + ["migrate"]) == 0
    assert main(base + ["mysql", "sync"]) == 0
    out = capsys.readouterr().out
    assert "users                3 rows" in out and "course_grades        2 rows" in out
    assert main(base + ["--set", "mysql.tables.users.mode=live", "mysql", "apply"]) == 0
    assert "users                live" in capsys.readouterr().out
    assert main(base + ["status"]) == 0
    out = capsys.readouterr().out
    assert "Open edX MySQL" in out and "synced" in out and "live" in out
    assert main(base + ["--set", "mysql.port=1", "mysql", "apply"]) == 0
    capsys.readouterr()
    assert main(base + ["--set", "mysql.port=1", "mysql", "sync"]) == 1
    err = capsys.readouterr().err
    assert "cannot reach MySQL at 127.0.0.1:1" in err and len(err.strip().splitlines()) <= 2
    assert main(base + ["mysql", "apply"]) == 0
    assert main(base + ["mysql", "check"]) == 0
    assert "columns match" in capsys.readouterr().out
    conn = mysql_root(mysql_db)
    with conn.cursor() as cur:
        cur.execute("ALTER TABLE student_courseenrollment ADD COLUMN newer_field int NULL")
    conn.close()
    assert main(base + ["mysql", "sync", "enrollments"]) == 0
    captured = capsys.readouterr()
    assert "enrollments          3 rows" in captured.out
    assert "not brought into the datalake (newer Open edX?): newer_field" in captured.err


def test_docs_describe_every_column(tmp_path):
    """docs/mysql.md documents every column of the MySQL tables and views."""
    from support.paths import PROJECT_ROOT

    doc = (PROJECT_ROOT / "docs" / "mysql.md").read_text()
    cfg = load_config(overrides={"data_dir": str(tmp_path / "data"), "mysql.port": 1})
    engine = open_engine(cfg)
    try:
        Migrator(engine, cfg).run()
        names = list(om.DATALAKE_TABLES) + ["enrollments_with_profile", "grades_with_learner", "learner_activity",
                                            "completion_with_blocks"]
        undocumented = []
        for table in names:
            section = doc.split(f"### `{table}`", 1)
            assert len(section) == 2, f"no section for {table}"
            section = section[1].split("\n### ", 1)[0]
            for column, ctype in engine.query_rows(
                    "SELECT name, type FROM system.columns WHERE database = 'openedx' AND table = {t:String}",
                    {"t": table}):
                if f"| `{column}` | `{ctype}` |" not in section:
                    undocumented.append(f"{table}.{column} {ctype}")
        assert undocumented == []
    finally:
        engine.close()


def test_cluster_rendering():
    """On a cluster every statement runs ON CLUSTER and the copies stay per-node MergeTree."""
    from cairn.config import MYSQL_DATALAKE_TABLES
    from cairn.schema.migrator import discover, render, split_statements

    assert tuple(om.DATALAKE_TABLES) == MYSQL_DATALAKE_TABLES
    cfg = load_config(overrides={"clickhouse.cluster": "edx", "mysql.tables.users.mode": "live"})
    migration = next(m for m in discover() if m.name == om.TABLES_MIGRATION)
    statements = ["\n".join(line for line in s.splitlines() if not line.startswith("--")).strip()
                  for s in split_statements(render(migration, cfg))]
    assert all(" ON CLUSTER edx" in s for s in statements), [s[:80] for s in statements if "ON CLUSTER" not in s]
    copies = [s for s in statements if "_copy`" in s.split("(")[0] and s.startswith("CREATE TABLE")]
    assert len(copies) == 9 and all("ENGINE = MergeTree" in s for s in copies)
    assert not any("_mysql_users_refresh` ON CLUSTER edx\nREFRESH" in s for s in statements)
    assert sum(s.startswith("CREATE MATERIALIZED VIEW") for s in statements) == 8


def test_server_engine_live_and_synced(mysql_db):
    """The same DDL through the server engine (HTTP), against a running `cairn serve`."""
    from cairn.engine import RemoteEngine
    from support.serve import shared_server

    served = shared_server()
    database = f"mysql_srv_{SESSION}"
    cfg = load_config(overrides={"data_dir": str(served.data_dir), "database": database,
                                 "mysql.database": mysql_db, "mysql.refresh_seconds": 1,
                                 "mysql.tables.users.mode": "live"})
    engine = open_engine(cfg)
    try:
        assert isinstance(engine, RemoteEngine)
        Migrator(engine, cfg).run()
        om.sync(engine, cfg)
        join = JOIN.replace("openedx.", f"{database}.")
        engine.insert(f"{database}.events",
                      [[f"00000000-0000-0000-0000-{i:012d}", datetime(2026, 3, 10, 9, i), "seq_goto", "seq_goto",
                        "browser", C1, "Cairn", uid, name, "", "", "", "{}", "test", i]
                       for i, (uid, name) in enumerate([(1, "alice"), (1, "alice"), (2, "bob")], 1)],
                      ["event_id", "time", "name", "event_type", "event_source", "course_id", "org", "user_id",
                       "username", "session", "page", "path", "raw", "source", "source_offset"])
        assert engine.query_rows(join, {"course": C1}) == [("alice", "verified", 0.9, 2), ("bob", "audit", 0.4, 1)]
        conn = mysql_root(mysql_db)
        with conn.cursor() as cur:
            cur.execute("UPDATE auth_user SET username = 'robert' WHERE id = 2")
            cur.execute("UPDATE student_courseenrollment SET mode = 'verified' WHERE user_id = 2")
        conn.close()
        # users is live: at once; enrollments is synced every second: within the period
        assert engine.query_rows(join, {"course": C1})[1][0] == "robert"
        wait_for(lambda: engine.query_rows(join, {"course": C1})[1] == ("robert", "verified", 0.4, 1), timeout=6)
        rows = {r["table"]: r for r in om.sync_status(engine, cfg)}
        assert rows["users"]["mode"] == "live" and rows["enrollments"]["error"] == ""
    finally:
        engine.command(f"DROP DATABASE IF EXISTS `{database}` SYNC")
        engine.command(f"DROP NAMED COLLECTION IF EXISTS `{database}_mysql`")
        engine.close()
