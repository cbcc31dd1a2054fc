"""`cairn demo`: a generated platform, loaded into a real datalake, checked against its ground truth.

One demo platform is generated per module through the real command (MariaDB on this
machine, a database unique to the session, dropped afterwards), then loaded with the
real loader into an embedded datalake.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections import Counter
from datetime import datetime, timezone

import pymysql
import pytest

from cairn.sources import openedx_mysql as om
from cairn.config import load_config
from cairn.demo import DemoOptions, generate_demo, live
from cairn.engine import open_engine
from cairn.ingest.loader import Loader
from cairn.schema.migrator import Migrator
from cairn.sources.course_structure import import_course, refresh_stale_courses, stale_courses

SESSION = uuid.uuid4().hex[:8]
MYSQL_DB = f"cairn_t_demo_{SESSION}"
# The size (2000 learners, 5 courses, 60 days: ~500k events) takes minutes to load on a
# 2-core machine; the default run uses fewer learners, CAIRN_TEST_FULL_DEMO=1 the full size.
LEARNERS = 2000 if os.environ.get("CAIRN_TEST_FULL_DEMO") else 400
LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) INFO \d+ \[tracking\] \[user (\d+|None)\] "
                  r"\[ip ([\d.]+|None)\] logger\.py:41 - (\{.*\})$")


def mysql(database: str | None = None):
    return pymysql.connect(host="127.0.0.1", port=3306, user="root", password="", database=database,
                           autocommit=True, charset="utf8mb4")


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    """`cairn demo` run once; yields (output folder, ground truth, MySQL database)."""
    out = tmp_path_factory.mktemp("demo") / "out"
    try:
        done = subprocess.run(
            [sys.executable, "-m", "cairn", "--set", f"mysql.database={MYSQL_DB}", "demo",
             "--learners", str(LEARNERS), "--courses", "5", "--days", "60", "--seed", "11",
             "--start", "2026-03-02", "--output", str(out)],
            capture_output=True, text=True, timeout=600,
            env={**{k: v for k, v in os.environ.items() if not k.startswith("CAIRN_")}, "COLUMNS": "200"})
        assert done.returncode == 0, done.stderr
        yield out, json.loads((out / "ground_truth.json").read_text()), MYSQL_DB, done.stdout
    finally:
        conn = mysql()
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{MYSQL_DB}`")
        conn.close()


@pytest.fixture(scope="module")
def loaded(platform, tmp_path_factory):
    """The demo's tracking log loaded into a fresh datalake (MySQL tables synced from the demo DB)."""
    out, truth, db, _ = platform
    cfg = load_config(overrides={"data_dir": str(tmp_path_factory.mktemp("lake") / "data"),
                                 "mysql.database": db})
    engine = open_engine(cfg)
    Migrator(engine, cfg).run()
    result = Loader(engine).load_file(out / "tracking.log")
    yield engine, cfg, result
    engine.close()


def test_command_output_and_files(platform):
    out, truth, _, stdout = platform
    text = " ".join(stdout.split())
    assert f"{truth['events']:,} events" in text
    assert len(list((out / "courses").iterdir())) == 5
    assert [c["org"] for c in truth["courses"]] == ["CairnX", "OpenLearn", "DataAcademy", "HealthEd", "GreenTech"]
    lines = (out / "tracking.log").read_text().splitlines()
    assert len(lines) == truth["events"] == sum(truth["events_by_name"].values())
    # chronological, like a real log
    stamps = [line[:23] for line in lines]
    assert stamps == sorted(stamps)
    assert stamps[0] >= "2026-03-02" and stamps[-1] < "2026-05-15"


def test_event_shapes_match_open_edx(platform):
    """Same shapes as the real samples: prefix, key order, browser/server/Celery/request-path specifics."""
    out, truth, db, _ = platform
    conn = mysql(db)
    with conn.cursor() as cur:  # learners living at UTC+0 (their local hours are UTC hours)
        cur.execute("SELECT user_id FROM auth_userprofile WHERE country IN ('GB', 'MA') OR "
                    "(country IS NULL AND user_id > 6)")
        utc_learners = {row[0] for row in cur.fetchall()}
    conn.close()
    seen: dict[str, dict] = {}
    hours = Counter()
    weekdays = Counter()
    with open(out / "tracking.log") as handle:
        for line in handle:
            match = LINE.match(line.rstrip("\n"))
            assert match, line[:200]
            event = json.loads(match.group(4))
            key = event["name"] if not event["name"].startswith("/") else "request-path"
            seen.setdefault(f"{key}|{event['event_source']}", event)
            when = datetime.fromisoformat(event["time"])
            if match.group(2) != "None" and int(match.group(2)) in utc_learners:
                hours[when.hour] += 1
            weekdays[when.weekday()] += 1
            assert list(event)[:2] == ["name", "context"] and list(event)[-4:] == ["time", "event_type",
                                                                                  "event_source", "page"]
            assert match.group(1) == event["time"][:19].replace("T", " ") + "," + (event["time"][20:23] if "." in event["time"] else "000")
    expected = {"edx.course.enrollment.activated|server", "request-path|server",
                "edx.ui.lms.sequence.tab_selected|browser", "load_video|browser",
                "play_video|browser", "pause_video|browser", "seek_video|browser", "complete_video|browser",
                "stop_video|browser", "problem_check|browser", "problem_check|server", "problem_graded|browser",
                "edx.grades.problem.submitted|server", "edx.grades.subsection.grade_calculated|server",
                "edx.grades.course.grade_calculated|server", "edx.course.grade.passed.first_time|server",
                "edx.completion.block_completion.changed|server", "edx.forum.thread.created|server",
                "edx.forum.response.created|server", "edx.ui.lms.sequence.next_selected|browser",
                "edx.course.enrollment.deactivated|server", "edx.certificate.created|server"}
    assert expected <= set(seen), expected - set(seen)
    assert seen["edx.ui.lms.sequence.tab_selected|browser"]["event_type"] == "seq_goto"
    play = seen["play_video|browser"]
    assert isinstance(play["event"], str) and play["context"]["path"] == "/event" and play["page"].startswith("http")
    payload = json.loads(play["event"])
    assert set(payload) == {"id", "code", "currentTime", "duration"} and re.fullmatch(r"[0-9a-f]{32}", payload["id"])
    browser_check = seen["problem_check|browser"]
    assert re.fullmatch(r"input_[0-9a-f]{32}_\d_1=choice_\d(&input_[0-9a-f]{32}_\d_1=choice_\d)*",
                        browser_check["event"])
    server_check = seen["problem_check|server"]
    assert server_check["page"] == "x_module" and server_check["context"]["module"]["usage_key"].startswith("block-v1:")
    assert {"state", "problem_id", "answers", "grade", "max_grade", "correct_map", "success", "attempts",
            "submission"} == set(server_check["event"])
    graded = seen["problem_graded|browser"]
    assert isinstance(graded["event"], list) and len(graded["event"]) == 2
    for name in ("edx.grades.subsection.grade_calculated", "edx.grades.course.grade_calculated"):
        celery = seen[f"{name}|server"]
        assert celery["username"] == "" and "user_id" not in celery["context"] and celery["session"] == ""
        assert isinstance(celery["event"]["user_id"], str)
    assert isinstance(seen["edx.course.enrollment.activated|server"]["event"]["user_id"], int)
    request = seen["request-path|server"]
    assert request["name"] == request["event_type"] == request["context"]["path"]
    assert isinstance(request["event"], str) and json.loads(request["event"]).keys() == {"GET", "POST"}
    # daily rhythm (evenings busier than nights) and weekly rhythm (weekends quieter)
    assert sum(hours[h] for h in range(17, 22)) > 3 * sum(hours[h] for h in range(1, 6))
    assert (weekdays[5] + weekdays[6]) / 2 < sum(weekdays[d] for d in range(5)) / 5


def test_loaded_log_matches_ground_truth(platform, loaded):
    out, truth, _, _ = platform
    engine, _, result = loaded
    assert result.counts.get("quarantined", 0) == 0
    assert result.counts.get("event") == truth["events"]
    assert engine.query_value("SELECT count() FROM openedx._quarantine") == 0
    assert engine.query_value("SELECT count() FROM openedx.events") == truth["events"]
    for course in truth["courses"]:
        cid = course["course_id"]
        watchers = engine.query_value(
            "SELECT uniqExact(user_id) FROM openedx.video_events WHERE course_id = {c:String} "
            "AND event_type = 'play_video'", {"c": cid})
        assert watchers == course["learners_who_watched_a_video"] > 0
        per_video = dict(engine.query_rows(
            "SELECT video_id, uniqExact(user_id) FROM openedx.video_events WHERE course_id = {c:String} "
            "AND event_type = 'play_video' GROUP BY video_id", {"c": cid}))
        assert per_video == {vid: n for vid, n in course["videos"].items() if n}
        averages = dict(engine.query_rows(
            "SELECT block_id, avg(last_grade) FROM (SELECT block_id, user_id, argMax(grade, time) AS last_grade "
            "FROM openedx.problem_events WHERE course_id = {c:String} AND name = 'problem_check' "
            "AND event_source = 'server' GROUP BY block_id, user_id) GROUP BY block_id", {"c": cid}))
        assert course["problems"] and set(averages) == set(course["problems"])
        for block_id, problem in course["problems"].items():
            assert averages[block_id] == pytest.approx(problem["average_grade"], abs=1e-9), block_id
        enrolled = engine.query_value(
            "SELECT count() FROM openedx.events WHERE name = 'edx.course.enrollment.activated' "
            "AND course_id = {c:String}", {"c": cid})
        assert enrolled == course["enrollments"]


def test_courses_import_and_join_with_events(platform, loaded):
    out, truth, _, _ = platform
    engine, _, _ = loaded
    for course in truth["courses"]:
        results = import_course(engine, course["olx_folder"])
        assert [(r.course_id, r.by_type) for r in results] == [(course["course_id"], course["blocks"])]
    # every video and problem seen in events is a block of the imported structure
    missing = engine.query_value(
        "SELECT count() FROM (SELECT DISTINCT course_id, video_id FROM openedx.video_events) AS v "
        "LEFT ANTI JOIN openedx.course_blocks AS b ON b.course_id = v.course_id AND b.block_id = v.video_id")
    assert missing == 0
    rows = engine.query_rows(
        "SELECT b.assignment_type, count() FROM openedx.problem_events AS p INNER JOIN openedx.course_blocks AS b "
        "ON b.course_id = p.course_id AND b.block_id = p.block_id WHERE p.name = 'problem_check' "
        "AND p.event_source = 'server' GROUP BY b.assignment_type ORDER BY b.assignment_type")
    assert [r[0] for r in rows] == ["", "Final Exam", "Homework"]


def test_mysql_platform(platform, loaded):
    out, truth, db, _ = platform
    conn = mysql(db)
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM auth_user")
        staff = 1 + 5
        assert cur.fetchone()[0] == LEARNERS + staff
        cur.execute("SELECT count(*), sum(gender = 'f'), sum(gender = 'm'), sum(gender IS NULL), "
                    "sum(year_of_birth IS NULL), min(year_of_birth), max(year_of_birth), count(DISTINCT country), "
                    "count(DISTINCT level_of_education) FROM auth_userprofile")
        total, female, male, no_gender, no_year, oldest, youngest, countries, levels = cur.fetchone()
        assert total == LEARNERS + staff
        assert 0.3 < female / total < 0.55 and 0.4 < male / total < 0.62 and no_gender > 0 and no_year > 0
        assert 1940 <= oldest < 1975 and 2000 < youngest <= 2010 and countries >= 15 and levels >= 8
        cur.execute("SELECT course_id, count(*), count(DISTINCT mode), sum(is_active = 0) "
                    "FROM student_courseenrollment GROUP BY course_id ORDER BY course_id")
        enrollments = {row[0]: row[1:] for row in cur.fetchall()}
        assert {c["course_id"]: c["enrollments"] for c in truth["courses"]} == {k: v[0] for k, v in enrollments.items()}
        assert all(modes >= 3 for _, modes, _ in enrollments.values())
        assert sum(v[2] for v in enrollments.values()) > 0  # some learners unenrolled
        cur.execute("SELECT count(*) FROM certificates_generatedcertificate WHERE status = 'downloadable'")
        assert cur.fetchone()[0] == sum(c["certificates"] for c in truth["courses"]) > 0
        cur.execute("SELECT count(*) FROM grades_persistentcoursegrade WHERE passed_timestamp IS NOT NULL")
        assert cur.fetchone()[0] == sum(c["learners_passed"] for c in truth["courses"])
        cur.execute("SELECT role, count(*) FROM student_courseaccessrole GROUP BY role")
        roles = dict(cur.fetchall())
        assert roles["instructor"] == 5 and roles["staff"] == 5 and roles["data_researcher"] == 5
        cur.execute("SELECT count(*) FROM course_overviews_courseoverview")
        assert cur.fetchone()[0] == 5
        cur.execute("SELECT count(DISTINCT block_type) FROM completion_blockcompletion")
        assert cur.fetchone()[0] == 3
    conn.close()


def test_events_join_mysql_tables_and_publish_refresh(platform, loaded):
    """Synced MySQL tables in the datalake join with events; a publish (newer course_overviews.modified)
    makes the course stale and refresh re-imports it from the exports folder."""
    out, truth, db, _ = platform
    engine, cfg, _ = loaded
    om.sync(engine, cfg, ["users", "enrollments", "course_overviews"])
    # every learner of the log is a user with an enrollment in that course
    orphans = engine.query_value(
        "SELECT count() FROM (SELECT DISTINCT user_id, course_id FROM openedx.video_events) AS v "
        "LEFT ANTI JOIN openedx.enrollments AS e ON e.user_id = v.user_id AND e.course_id = v.course_id")
    assert orphans == 0
    for course in truth["courses"]:
        import_course(engine, course["olx_folder"])
    assert stale_courses(engine) == []
    target = truth["courses"][2]["course_id"]
    time.sleep(0.05)  # the publish happens after the imports
    conn = mysql(db)
    with conn.cursor() as cur:
        cur.execute("UPDATE course_overviews_courseoverview SET modified = UTC_TIMESTAMP(6) "
                    "WHERE id = %s", (target,))
    conn.close()
    om.sync(engine, cfg, ["course_overviews"])
    assert [row[0] for row in stale_courses(engine)] == [target]
    events = []
    results = refresh_stale_courses(engine, exports_dir=out / "courses",
                                    on_event=lambda kind, course, detail: events.append((kind, course)))
    assert [r.course_id for r in results] == [target] and events == [("imported", target)]
    assert stale_courses(engine) == []


def test_deterministic_for_a_seed(tmp_path):
    def run(seed: int, name: str) -> tuple[bytes, str]:
        result = generate_demo(DemoOptions(learners=40, courses=2, days=10, seed=seed, output=tmp_path / name,
                                           start=datetime(2026, 1, 5, tzinfo=timezone.utc), mysql=False))
        return result.tracking_log.read_bytes(), result.ground_truth.read_text().replace(str(tmp_path / name), "X")

    first, second, other = run(5, "a"), run(5, "b"), run(6, "c")
    assert first[1] == second[1] and '"olx_folder": "X/courses/' in first[1]
    assert first == second and len(first[0]) > 100_000
    assert other[0] != first[0]
    olx_a = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a" / "courses").rglob("*.xml"))
    olx_b = sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b" / "courses").rglob("*.xml"))
    assert olx_a == olx_b


def test_live_appends_current_events(tmp_path):
    result = generate_demo(DemoOptions(learners=30, courses=2, days=5, seed=3, output=tmp_path,
                                       start=datetime(2026, 1, 5, tzinfo=timezone.utc), mysql=False))
    before = result.tracking_log.read_text().count("\n")
    began = time.time()
    added = live(result, rate=150, duration=2.5)
    lines = result.tracking_log.read_text().splitlines()
    assert len(lines) == before + added and added >= 300
    for line in lines[before:]:
        event = json.loads(LINE.match(line).group(4))
        assert abs(datetime.fromisoformat(event["time"]).timestamp() - began) < 30


def test_no_event_of_the_history_is_after_its_end(tmp_path):
    """Certificates are issued up to days after passing: none may land in the future."""
    import json as _json
    from datetime import datetime as _dt

    from cairn.demo import DemoOptions, generate_demo, period

    options = DemoOptions(learners=300, courses=2, days=20, seed=7, output=tmp_path / "demo", mysql=False,
                          write_courses=False)
    result = generate_demo(options)
    _, end = period(options)
    latest = max(_json.loads(line[line.index("{"):])["time"] for line in result.tracking_log.open())
    assert _dt.fromisoformat(latest).timestamp() <= end
