"""Every real Open edX sample loads; parsed columns hold the right values.

Expected counts come from an independent reading of the files in Python (json
module), so the ClickHouse parsing in the migrations is checked against it.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest

from cairn.ingest.loader import Loader
from support.paths import EVENTS


def sample_files() -> list[Path]:
    return sorted(p for p in EVENTS.rglob("*") if p.is_file() and p.suffix in (".log", ".json"))


def reference_events(path: Path) -> tuple[int, int, int]:
    """(events, quarantined, skipped) by an independent reading of one sample file."""
    text = path.read_text()
    stripped = text.lstrip()
    if stripped.startswith("{") and "\n" in stripped.strip():
        first = stripped.split("\n", 1)[0]
        try:
            json.loads(first)
        except ValueError:  # a pretty-printed JSON document
            doc = json.loads(text)
            events = [doc] if "name" in doc or "event_type" in doc else list(doc.values())
            return len(events), 0, 0
    events = quarantined = skipped = 0
    for line in text.splitlines():
        if not line.strip():
            skipped += 1
            continue
        if not line.lstrip().startswith("{") and "[tracking]" not in line:
            skipped += 1  # other loggers, HTTP access lines
            continue
        payload = line[line.index("{"):] if "{" in line else ""
        try:
            event = json.loads(payload)
        except ValueError:
            quarantined += 1
            continue
        if (event.get("name") or event.get("event_type")) and (event.get("time") or event.get("timestamp")):
            events += 1
        else:
            quarantined += 1
    return events, quarantined, skipped


def load_order(files: list[Path]) -> list[Path]:
    """Whole logs first, then the single lines cut from them (by-event-name/)."""
    return sorted(files, key=lambda p: (p.parent.name == "by-event-name", str(p)))


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    """All samples loaded once into one datalake (module scope: loading is the slow part)."""
    from cairn.config import load_config
    from cairn.engine import open_engine
    from cairn.schema.migrator import Migrator

    config = load_config(overrides={"data_dir": str(tmp_path_factory.mktemp("samples"))})
    engine = open_engine(config)
    Migrator(engine, config).run()
    loader = Loader(engine)
    results = {path: loader.load_file(path) for path in load_order(sample_files())}
    yield engine, results
    engine.close()


def one(engine, sql, **params):
    rows = engine.query(sql, params).dicts()
    assert len(rows) == 1, rows
    return rows[0]


def test_every_sample_file_is_handled(loaded):
    engine, results = loaded
    # Every data file of this copy of the corpus (events/README.md lists them; analytics-pipeline/
    # is not included here, only the lines cut from it into by-event-name/).
    assert len(results) == 152
    mismatches = {}
    # A file is identified by its first line: the two samples that are the first line of a
    # whole log (cut into by-event-name/) are that log's beginning, already loaded.
    prefixes = {p.name for p, r in results.items() if r.already_loaded}
    assert prefixes == {"edx.grades.subsection.grade_calculated__server__tracking__L1.log",
                        "_url-path-request-2__server__demo_problem_events_v1__L1.log"}
    for path, result in results.items():
        if result.already_loaded:
            assert result.bytes_loaded == 0
            continue
        expected = reference_events(path)
        got = (result.counts.get("event", 0), result.counts.get("quarantined", 0),
               result.counts.get("skipped", 0))
        if got != expected:
            mismatches[str(path.relative_to(EVENTS))] = (got, expected)
    assert not mismatches


def test_totals_and_deliberate_defects(loaded):
    engine, _ = loaded
    quarantine = engine.query_rows(
        "SELECT splitByChar('/', source)[-1], source_offset, reason FROM openedx._quarantine ORDER BY source_offset")
    # tracking.log lines 3 and 11 are broken on purpose (events/README.md).
    log = (EVENTS / "erb-tracking-log" / "tracking.log").read_bytes().split(b"\n")
    offsets = [sum(len(line) + 1 for line in log[:n]) for n in (2, 10)]
    assert quarantine == [("tracking.log", offsets[0], "invalid JSON"), ("tracking.log", offsets[1], "invalid JSON")]
    raw = engine.query_value("SELECT line FROM openedx._quarantine ORDER BY source_offset LIMIT 1")
    assert raw.encode() == log[2]  # the line is kept exactly
    skipped = dict(engine.query_rows("SELECT reason, sum(lines) FROM openedx._ingest_stats "
                                     "WHERE status = 'skipped' GROUP BY reason"))
    assert skipped == {"other logger": 4, "HTTP access log": 3}
    # The invented name of line 10 is still an event: names are data, not a whitelist.
    assert engine.query_value("SELECT count() FROM openedx.events "
                              "WHERE name = 'edx.grades.subsection.grade_calculated2'") == 1


def test_plain_count_counts_each_event_once_and_reload_adds_nothing(loaded):
    engine, _ = loaded
    before = engine.query_value("SELECT count() FROM openedx.events")
    expected = sum(reference_events(p)[0] for p, r in loaded[1].items() if not r.already_loaded)
    assert before == expected
    loader = Loader(engine)
    for path in load_order(sample_files()):
        again = loader.load_file(path)
        assert again.already_loaded and again.bytes_loaded == 0
    assert engine.query_value("SELECT count() FROM openedx.events") == before


def test_seek_video_old_course_browser_event(loaded):
    engine, _ = loaded
    row = one(engine, "SELECT * FROM openedx.video_events WHERE course_id = 'AcceptanceX/A101/T12014' "
                      "AND event_type = 'seek_video'")
    assert row["video_id"] == "0b9e39477cf34507a7a48f74be381fdd"  # from i4x-AcceptanceX-A101-video-<id>
    assert row["old_time"] == pytest.approx(38.910057) and row["new_time"] == 147
    assert row["seek_type"] == "onSlideSeek" and row["code"] == "b7xgknqkQk8"
    assert row["org"] == "AcceptanceX" and row["user_id"] == 4 and row["username"] == "staff"
    assert row["time"] == datetime(2014, 5, 15, 19, 3, 19, 487373)
    assert row["name"] == "seek_video"  # old logs have no name: event_type stands in


def test_speed_change_in_process_shape(loaded):
    engine, _ = loaded
    row = one(engine, "SELECT * FROM openedx.video_events WHERE event_type = 'speed_change_video'")
    assert (row["old_speed"], row["new_speed"], row["position"]) == (1.0, 1.25, pytest.approx(3.093662))
    assert row["code"] == "html5" and row["username"] == "test"
    event = one(engine, "SELECT event_source, session, user_id FROM openedx.events WHERE event_id = {id:UUID}",
                id=row["event_id"])
    assert event["event_source"] == "browser"  # from context.event_source in the in-process shape


def test_problem_check_server_grade(loaded):
    engine, _ = loaded
    rows = engine.query("SELECT * FROM openedx.problem_events WHERE name = 'problem_check' "
                        "AND event_source = 'server' AND block_id = '932e6f2ce8274072a355a94560216d1a' "
                        "AND time = toDateTime64('2023-05-23 14:12:17.398107', 6, 'UTC')").dicts()
    # tracking.log line 7 and its copy in by-event-name/: the same event, so the same stable id.
    assert len(rows) == 2 and rows[0] == rows[1]
    row = rows[0]
    assert row["problem_id"] == ("block-v1:edX+DemoX+Demo_Course+type@problem+block@"
                                 "932e6f2ce8274072a355a94560216d1a")
    assert (row["attempts"], row["grade"], row["max_grade"], row["success"]) == (3, 1.0, 1.0, "correct")
    assert json.loads(row["answers"]) == {"932e6f2ce8274072a355a94560216d1a_2_1": "choice_2"}
    assert row["user_id"] == 6 and row["username"] == "bmtcril"


def test_browser_problem_check_gets_block_from_input_ids_and_course_from_page(loaded):
    engine, _ = loaded
    rows = engine.query("SELECT p.block_id, p.course_id, p.answers, e.page FROM openedx.problem_events p "
                        "JOIN openedx.events e USING event_id WHERE p.name = 'problem_check' "
                        "AND p.event_source = 'browser' AND JSONExtractString(e.raw, 'context', 'course_id') = '' "
                        "AND e.page LIKE '%xblock/block-v1%'").dicts()
    assert rows, "the v1 console capture has browser problem_check events without a course in context"
    for row in rows:
        assert row["course_id"] == "course-v1:edX+DemoX+Demo_Course"
        assert row["block_id"] and row["answers"].startswith("input_" + row["block_id"] + "_")


def test_subsection_grade_learner_comes_from_payload(loaded):
    engine, _ = loaded
    row = one(engine, "SELECT * FROM openedx.grade_events WHERE name = 'edx.grades.subsection.grade_calculated' "
                      "AND time = toDateTime64('2023-05-23 13:53:13.460372', 6, 'UTC')")
    assert row["user_id"] == 6  # "6" in event.user_id; no context.user_id on Celery events
    assert row["block_id"].endswith("type@sequential+block@19a30717eff543078a5d94ae9d6c18a5")
    assert row["weighted_graded_earned"] == 3.0 and row["weighted_graded_possible"] == 3.0
    event = one(engine, "SELECT username, user_id FROM openedx.events WHERE event_id = {id:UUID}", id=row["event_id"])
    assert event == {"username": "", "user_id": 6}


def test_course_grade_and_pass_fail(loaded):
    engine, _ = loaded
    passed = dict(engine.query_rows("SELECT name, any(passed) FROM openedx.grade_events "
                                    "WHERE startsWith(name, 'edx.course.grade.') GROUP BY name"))
    assert passed == {"edx.course.grade.now_failed": False, "edx.course.grade.now_passed": True,
                      "edx.course.grade.passed.first_time": True}
    letters = {r for (r,) in engine.query_rows("SELECT letter_grade FROM openedx.grade_events "
                                                "WHERE name = 'edx.grades.course.grade_calculated'")}
    assert "" in letters and len(letters) >= 2  # with and without letter grade samples


def test_enrollment_completion_forum_navigation(loaded):
    engine, _ = loaded
    enroll = engine.query("SELECT user_id, mode, action FROM openedx.enrollment_events "
                          "WHERE course_id = 'course-v1:edX+DemoX+Demo_Course' ORDER BY time, action").dicts()
    assert {"user_id": 3, "mode": "audit", "action": "activated"} in enroll
    assert {e["action"] for e in enroll} >= {"activated", "deactivated", "mode_changed"}
    completion = one(engine, "SELECT * FROM openedx.completion_events")
    assert completion["block_id"].endswith("type@problem+block@7c54b16c8ed34f9f8772015178c7a175")
    assert (completion["block_type"], completion["completion"], completion["user_id"]) == ("problem", 1.0, 4)
    thread = one(engine, "SELECT * FROM openedx.forum_events WHERE title = 'Another thread in test topic' "
                         "AND action = 'created'")
    assert thread["object_type"] == "thread" and thread["username"] == "xiajul10"
    assert thread["thread_id"] == thread["post_id"] != ""
    tab = one(engine, "SELECT * FROM openedx.navigation_events WHERE course_id = 'course-v1:OpenCraft+PRDemo1+2016' "
                      "AND name = 'edx.ui.lms.sequence.tab_selected'")
    assert (tab["event_type"], tab["current_tab"], tab["target_tab"], tab["tab_count"]) == ("seq_goto", 2, 1, 2)
    assert tab["sequence_id"].endswith("block@ecec82a221f144efb8d42e8e3576daa8")


def test_course_keys_and_orgs(loaded):
    engine, _ = loaded
    orgs = dict(engine.query_rows("SELECT course_id, any(org) FROM openedx.events WHERE course_id != '' GROUP BY course_id"))
    assert orgs["course-v1:edX+DemoX+Demo_Course"] == "edX"
    assert orgs["edX/Open_DemoX/edx_demo_course"] == "edX"  # old ORG/COURSE/RUN key
    assert orgs["ccx-v1:edX+DemoX+Demo_Course+ccx@1"] == "edX"  # CCX key
    ccx = engine.query_value("SELECT count() FROM openedx.video_events WHERE course_id LIKE 'ccx-v1:%'")
    assert ccx == 1


def test_event_payload_alias_decodes_json_strings(loaded):
    engine, _ = loaded
    # Browser events store the payload as a JSON-encoded string; `event` gives the JSON itself.
    row = one(engine, "SELECT event, raw FROM openedx.events WHERE event_type = 'seek_video' "
                      "AND course_id = 'AcceptanceX/A101/T12014'")
    assert isinstance(json.loads(row["raw"])["event"], str)
    assert json.loads(row["event"])["new_time"] == 147
    # problem_graded payload is a JSON array [answers, html].
    graded = engine.query_value("SELECT event FROM openedx.events WHERE name = 'problem_graded' LIMIT 1")
    assert isinstance(json.loads(graded), list)


def test_request_path_event_course_and_learner(loaded):
    engine, _ = loaded
    row = one(engine, "SELECT name, event, course_id, user_id, path FROM openedx.events WHERE name LIKE "
                      "'/courses/course-v1:edX+DemoX+Demo_Course/xblock/%932e6f2ce8274072a355a94560216d1a%' "
                      "AND source LIKE '%/tracking.log'")
    assert row["course_id"] == "course-v1:edX+DemoX+Demo_Course" and row["user_id"] == 6
    assert row["path"] == row["name"]
    assert set(json.loads(row["event"])) == {"GET", "POST"}  # a JSON string holding JSON: decoded


def test_per_file_counts_are_those_recorded_before_the_parse_once_views(loaded):
    """Issue 9: the restructured views load every sample with the same outcome as migrations 0001-0011."""
    engine, results = loaded
    recorded = json.loads((Path(__file__).parent / "sample_counts.json").read_text())
    got = {str(path.relative_to(EVENTS)): {"events": r.counts.get("event", 0), "quarantined": r.counts.get("quarantined", 0),
                                          "skipped": r.counts.get("skipped", 0), "already_loaded": r.already_loaded}
           for path, r in results.items()}
    assert got == recorded["files"]
    tables = {table: engine.query_value(f"SELECT count() FROM openedx.{table}") for table in recorded["tables"]}
    assert tables == recorded["tables"]
