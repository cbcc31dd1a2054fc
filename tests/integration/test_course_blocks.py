"""Course structure: OLX exports and LMS dumps into openedx.course_blocks (real chDB, real files)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import shutil
import tarfile
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from cairn.config import load_config
from cairn.engine import open_engine
from cairn.errors import CairnError
from cairn.schema.migrator import Migrator
from cairn.sources.course_structure import (dump_with_command, import_course, load_records, parse_olx, refresh_stale_courses,
                       stale_courses, watch_exports)
from cairn.sources.lms.cairn_dump_course_blocks import RECORD_FIELDS, course_block_records, write_records

DEMO = Path(__file__).resolve().parents[2].parent / "shared" / "openedx" / "demo-course"
V2 = DEMO / "v2-OpenedX-DemoX-DemoCourse"
V1 = DEMO / "v1-edX-DemoX-Demo_Course"
V2_KEY = "course-v1:OpenedX+DemoX+DemoCourse"
V1_KEY = "course-v1:edX+DemoX+Demo_Course"
# Block counts per type from demo-course/README.md
V2_COUNTS = {"course": 1, "chapter": 6, "sequential": 17, "vertical": 58, "html": 266, "problem": 29, "video": 11,
             "openassessment": 2, "lti": 2, "drag-and-drop-v2": 1, "edx_sga": 1, "staffgradedxblock": 1,
             "done": 1, "library_content": 1, "annotatable": 1, "discussion": 1, "poll": 1, "survey": 1}
V1_COUNTS = {"course": 1, "chapter": 5, "sequential": 10, "vertical": 44, "html": 30, "discussion": 30,
             "problem": 22, "video": 5, "openassessment": 1}
V1_SECTIONS = ["Introduction", "Example Week 1: Getting Started", "Example Week 2: Get Interactive",
               "Example Week 3: Be Social", "About Exams and Certificates"]
V2_SECTIONS = ["Module 1: Dive into the Open edX® platform!", "Module 2: Crafting Captivating Content",
               "Module 3: Ace the Assessments!", "Module 4: Social Learning: Engaging Through Interaction",
               "Module 5: Your Open edX Community", "Conclusion"]


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    """One migrated embedded datalake for the module (tests use different courses or re-import)."""
    cfg = load_config(overrides={"data_dir": str(tmp_path_factory.mktemp("blocks") / "data"),
                                 "mysql.enabled": False})  # course_overviews filled by hand below
    engine = open_engine(cfg)
    Migrator(engine, cfg).run()
    yield engine
    engine.close()


def counts_in_lake(engine, course_id: str) -> dict[str, int]:
    rows = engine.query_rows("SELECT block_type, count() FROM openedx.course_blocks WHERE course_id = {c:String} "
                             "GROUP BY block_type", {"c": course_id})
    return dict(rows)


def make_tar(folder: Path, target: Path) -> Path:
    with tarfile.open(target, "w:gz") as archive:
        archive.add(folder, arcname="course")
    return target


@pytest.mark.parametrize("folder,key,expected,total", [(V2, V2_KEY, V2_COUNTS, 401), (V1, V1_KEY, V1_COUNTS, 148)])
def test_import_demo_course_folder_and_targz(lake, tmp_path, folder, key, expected, total):
    results = import_course(lake, folder)
    assert [(r.course_id, r.blocks) for r in results] == [(key, total)]
    assert counts_in_lake(lake, key) == expected
    # The same export as Studio's .tar.gz (one top folder) gives the same blocks.
    archive = make_tar(folder, tmp_path / "export.tar.gz")
    before = lake.query_rows("SELECT block_key, course_order, parent FROM openedx.course_blocks "
                             "WHERE course_id = {c:String} ORDER BY course_order", {"c": key})
    assert import_course(lake, archive)[0].blocks == total
    after = lake.query_rows("SELECT block_key, course_order, parent FROM openedx.course_blocks "
                            "WHERE course_id = {c:String} ORDER BY course_order", {"c": key})
    assert after == before and len(after) == total
    graded = lake.query_rows("SELECT display_name, assignment_type FROM openedx.course_blocks WHERE course_id = "
                             "{c:String} AND block_type = 'sequential' AND graded ORDER BY course_order", {"c": key})
    assert len(graded) == 3


def test_names_order_and_inheritance_v1(lake):
    import_course(lake, V1)
    sections = lake.query_rows("SELECT display_name FROM openedx.course_blocks WHERE course_id = {c:String} "
                               "AND block_type = 'chapter' ORDER BY course_order", {"c": V1_KEY})
    assert [r[0] for r in sections] == V1_SECTIONS
    # The welcome video the sample events reference, with its place in the course.
    video = lake.query("SELECT * FROM openedx.course_blocks WHERE course_id = {c:String} AND block_id = "
                       "'0b9e39477cf34507a7a48f74be381fdd'", {"c": V1_KEY}).dicts()[0]
    assert video["block_key"] == "block-v1:edX+DemoX+Demo_Course+type@video+block@0b9e39477cf34507a7a48f74be381fdd"
    assert (video["block_type"], video["display_name"]) == ("video", "Welcome!")
    assert (video["section_name"], video["subsection_name"], video["unit_name"]) == (
        "Introduction", "Demo Course Overview", "Introduction: Video and Sequences")
    assert (video["section_index"], video["subsection_index"], video["unit_index"], video["position"]) == (1, 1, 1, 2)
    assert video["parent"] == "block-v1:edX+DemoX+Demo_Course+type@vertical+block@vertical_0270f6de40fc"
    assert video["depth"] == 4 and video["course_order"] == 5 and video["graded"] is False
    # A problem in a graded Homework subsection inherits graded and the assignment type ...
    problem = lake.query("SELECT graded, assignment_type, subsection_name, display_name FROM openedx.course_blocks "
                         "WHERE block_id = 'a0effb954cca4759994f1ac9e9434bf4'").dicts()[0]
    assert problem == {"graded": True, "assignment_type": "Homework", "subsection_name": "Homework - Question Styles",
                       "display_name": "Multiple Choice Questions"}
    # ... the problem of the sample problem_check events is in an ungraded lesson.
    problem = lake.query("SELECT graded, assignment_type, subsection_name FROM openedx.course_blocks "
                         "WHERE block_id = '932e6f2ce8274072a355a94560216d1a'").dicts()[0]
    assert problem == {"graded": False, "assignment_type": "", "subsection_name": "Lesson 1 - Getting Started"}
    graded = lake.query_rows("SELECT display_name, assignment_type FROM openedx.course_blocks WHERE course_id = "
                             "{c:String} AND block_type = 'sequential' AND graded ORDER BY course_order", {"c": V1_KEY})
    assert graded == [("Homework - Question Styles", "Homework"), ("Homework - Labs and Demos", "Homework"),
                      ("edX Exams", "Exam")]
    root = lake.query_rows("SELECT block_key, parent, course_order, display_name FROM openedx.course_blocks "
                           "WHERE course_id = {c:String} AND block_type = 'course'", {"c": V1_KEY})
    assert root == [("block-v1:edX+DemoX+Demo_Course+type@course+block@course", "", 0, "Demonstration Course")]
    # course_order is a depth-first walk: 0..147 with no gap, each block after its parent.
    orders = lake.query_rows("SELECT b.course_order, p.course_order FROM openedx.course_blocks AS b "
                             "LEFT JOIN openedx.course_blocks AS p ON p.block_key = b.parent AND p.course_id = b.course_id "
                             "WHERE b.course_id = {c:String} AND b.parent != ''", {"c": V1_KEY})
    assert all(child > parent for child, parent in orders)
    assert sorted(r[0] for r in lake.query_rows(
        "SELECT course_order FROM openedx.course_blocks WHERE course_id = {c:String}", {"c": V1_KEY})) == list(range(148))


def test_names_v2_and_library_content(lake):
    records = parse_olx(V2)
    assert [r["display_name"] for r in records if r["block_type"] == "chapter"] == V2_SECTIONS
    library = [r for r in records if r["block_type"] == "library_content"][0]
    children = [r for r in records if r["parent"] == library["block_key"]]
    assert [c["block_type"] for c in children] == ["problem"] * 6
    assert all(c["unit_key"] == library["unit_key"] for c in children)
    units = [r for r in records if r["block_type"] == "vertical"]
    assert all(u["unit_name"] == u["display_name"] and u["subsection_name"] for u in units)
    graded_problems = [r for r in records if r["block_type"] == "problem" and r["graded"]]
    assert {r["assignment_type"] for r in graded_problems} == {
        "Basic Assessment Tools", "Intermediate Assessment Tools", "Advanced Assessment Tools"}


def test_reimport_is_atomic_for_concurrent_readers(lake, tmp_path):
    import_course(lake, V1)
    seen: list[int] = []
    errors: list[Exception] = []
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            try:
                seen.append(lake.query_value("SELECT count() FROM openedx.course_blocks WHERE course_id = {c:String}",
                                             {"c": V1_KEY}))
            except Exception as exc:  # noqa: BLE001 - reported below
                errors.append(exc)
                return

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for _ in range(15):
            import_course(lake, V1)
    finally:
        stop.set()
        thread.join()
    assert not errors
    assert len(seen) > 15
    assert set(seen) == {148}, f"a reader saw {sorted(set(seen))} blocks during re-imports"
    assert lake.query_value("SELECT count() FROM openedx._course_blocks_staging") == 0


def test_reimport_replaces_changed_structure(lake, tmp_path):
    copy = tmp_path / "v1"
    shutil.copytree(V1, copy)
    import_course(lake, copy, course_id="course-v1:Cairn+Reimport+2026")
    assert lake.query_value("SELECT count() FROM openedx.course_blocks WHERE course_id = "
                            "'course-v1:Cairn+Reimport+2026'") == 148
    chapter = copy / "chapter" / "d8a6192ade314473a78242dfeedfbf5b.xml"
    chapter.write_text(chapter.read_text().replace('display_name="Introduction"', 'display_name="Welcome"'))
    course_file = copy / "course" / "Demo_Course.xml"
    text = course_file.read_text()
    course_file.write_text(text.replace('<chapter url_name="social_integration"/>', ""))
    import_course(lake, copy, course_id="course-v1:Cairn+Reimport+2026")
    rows = lake.query_rows("SELECT display_name FROM openedx.course_blocks WHERE course_id = "
                           "'course-v1:Cairn+Reimport+2026' AND block_type = 'chapter' ORDER BY course_order")
    assert rows[0] == ("Welcome",) and ("Example Week 3: Be Social",) not in rows
    assert lake.query_value("SELECT count() FROM openedx.course_blocks WHERE course_id = "
                            "'course-v1:Cairn+Reimport+2026'") < 148
    assert lake.query_value("SELECT uniqExact(imported_at) FROM openedx.course_blocks WHERE course_id = "
                            "'course-v1:Cairn+Reimport+2026'") == 1


# -- bad input ------------------------------------------------------------------

def _broken_copy(tmp_path: Path) -> Path:
    copy = tmp_path / "broken"
    shutil.copytree(V1, copy)
    return copy


def test_corrupted_xml_names_file(tmp_path):
    copy = _broken_copy(tmp_path)
    target = copy / "sequential" / "edx_introduction.xml"
    target.write_text(target.read_text()[:60])
    with pytest.raises(CairnError) as info:
        parse_olx(copy)
    message = str(info.value)
    assert "sequential/edx_introduction.xml" in message and "invalid XML" in message and "\n" not in message


def test_missing_pointed_file_names_file_and_element(tmp_path):
    copy = _broken_copy(tmp_path)
    (copy / "video" / "0b9e39477cf34507a7a48f74be381fdd.xml").unlink()
    with pytest.raises(CairnError) as info:
        parse_olx(copy)
    message = str(info.value)
    assert message.startswith("vertical/vertical_0270f6de40fc.xml: element <video url_name=\"0b9e39477cf34507a7a48f74be381fdd\">")
    assert "video/0b9e39477cf34507a7a48f74be381fdd.xml" in message and "missing" in message


def test_missing_html_body_and_course_run_and_bad_date(tmp_path):
    copy = _broken_copy(tmp_path)
    html = sorted((copy / "html").glob("*.html"))[0]
    html.unlink()
    with pytest.raises(CairnError, match=rf"html/{html.stem}\.xml: element <html .*html/{html.name}, which is missing"):
        parse_olx(copy)
    html.write_text("<p>back</p>")
    (copy / "course" / "Demo_Course.xml").rename(copy / "course" / "other.xml")
    with pytest.raises(CairnError, match=r"^course/Demo_Course.xml: file missing from the export$"):
        parse_olx(copy)
    (copy / "course" / "other.xml").rename(copy / "course" / "Demo_Course.xml")
    seq = copy / "sequential" / "basic_questions.xml"
    seq.write_text(seq.read_text().replace('<sequential ', '<sequential due="next tuesday" ', 1))
    with pytest.raises(CairnError, match=r"sequential/basic_questions.xml: element <sequential .*invalid date"):
        parse_olx(copy)


def test_not_an_export_and_truncated_archive(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CairnError, match="no course.xml found"):
        load_records(empty)
    archive = make_tar(V1, tmp_path / "v1.tar.gz")
    truncated = tmp_path / "truncated.tar.gz"
    truncated.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    with pytest.raises(CairnError, match="truncated.tar.gz: corrupted archive"):
        load_records(truncated)
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\x00\x01not an export")
    with pytest.raises(CairnError, match="not a folder, a .tar.gz export or a JSON-lines dump"):
        load_records(junk)


# -- the LMS dump script ------------------------------------------------------------

class FakeLocation:
    """Mimics opaque_keys' BlockUsageLocator: str() is the usage key."""

    def __init__(self, course: str, block_type: str, block_id: str):
        self.block_type, self.block_id = block_type, block_id
        self.course_key = f"course-v1:{course}"
        self._key = f"block-v1:{course}+type@{block_type}+block@{block_id}"

    def __str__(self) -> str:
        return self._key


def fake_block(block_type, block_id, name, children=(), **fields):
    """A stand-in for a modulestore XBlock (no LMS runs here): location, display_name, get_children()."""
    from datetime import datetime, timezone

    block = SimpleNamespace(location=FakeLocation("Fake+CS1+2026", block_type, block_id), display_name=name,
                            graded=fields.get("graded", False), format=fields.get("format"),
                            due=fields.get("due"), start=datetime(2026, 1, 5, tzinfo=timezone.utc),
                            visible_to_staff_only=False, weight=fields.get("weight"))
    block.get_children = lambda: list(children)
    return block


def test_dump_script_record_format_and_import(lake, tmp_path):
    """The LMS script's record writer on a mock of the modulestore (no LMS can run here)."""
    from datetime import datetime, timezone

    due = datetime(2026, 3, 1, 23, 59, tzinfo=timezone.utc)
    problem = fake_block("problem", "p1", "Quiz question", graded=True, weight=2.0)  # LMS inherits graded
    course = fake_block("course", "course", "Fake Course", [
        fake_block("chapter", "ch1", "Week 1", [
            fake_block("sequential", "s1", "Lesson", [
                fake_block("vertical", "v1", "Intro unit", [fake_block("video", "vid1", "Welcome video"),
                                                             fake_block("html", "h1", "Reading")])]),
            fake_block("sequential", "s2", "Homework 1", [
                fake_block("vertical", "v2", "Quiz unit", [problem])], graded=True, format="Homework", due=due)]),
    ])
    out = io.StringIO()
    assert write_records(course_block_records(course), out) == 9
    lines = out.getvalue().splitlines()
    first = json.loads(lines[0])
    assert list(first) == list(RECORD_FIELDS)
    assert first["block_key"] == "block-v1:Fake+CS1+2026+type@course+block@course" and first["course_order"] == 0
    quiz = json.loads(lines[-1])
    assert quiz == {
        "course_id": "course-v1:Fake+CS1+2026", "org": "Fake",
        "block_key": "block-v1:Fake+CS1+2026+type@problem+block@p1", "block_id": "p1", "block_type": "problem",
        "display_name": "Quiz question", "parent": "block-v1:Fake+CS1+2026+type@vertical+block@v2",
        "position": 1, "course_order": 8, "depth": 4,
        "section_key": "block-v1:Fake+CS1+2026+type@chapter+block@ch1", "section_name": "Week 1", "section_index": 1,
        "subsection_key": "block-v1:Fake+CS1+2026+type@sequential+block@s2", "subsection_name": "Homework 1",
        "subsection_index": 2, "unit_key": "block-v1:Fake+CS1+2026+type@vertical+block@v2",
        "unit_name": "Quiz unit", "unit_index": 1, "graded": True, "assignment_type": "Homework", "weight": 2.0,
        "due": "2026-03-01T23:59:00+00:00", "start": "2026-01-05T00:00:00+00:00",
        "visible_to_staff_only": False, "source": "modulestore"}
    # `cairn import-course` takes that output (with stray non-JSON lines from Django around it).
    dump = tmp_path / "blocks.jsonl"
    dump.write_text("Loading Django settings\n" + out.getvalue() + "Fake+CS1+2026: 9 blocks\n")
    results = import_course(lake, dump)
    assert [(r.course_id, r.blocks) for r in results] == [("course-v1:Fake+CS1+2026", 9)]
    row = lake.query("SELECT graded, assignment_type, due, weight, subsection_name, course_order, source "
                     "FROM openedx.course_blocks WHERE block_id = 'p1'").dicts()[0]
    assert row["graded"] is True and row["assignment_type"] == "Homework" and row["weight"] == 2.0
    assert row["due"].replace(tzinfo=None) == due.replace(tzinfo=None) and row["course_order"] == 8
    assert row["source"] == "modulestore"


def test_dump_script_and_olx_parser_agree(lake, tmp_path):
    """The same course through both paths gives identical records (but the source)."""
    olx = parse_olx(V1)
    dump = tmp_path / "v1.jsonl"
    with open(dump, "w") as handle:
        write_records(olx, handle)
    again = load_records(dump)
    assert [dict(r, source="") for r in again] == [dict(r, source="") for r in olx]


# -- automatic refresh ------------------------------------------------------------------

def test_watch_folder_reimports_changed_export(lake, tmp_path):
    exports = tmp_path / "exports"
    exports.mkdir()
    copy = exports / "demo"
    shutil.copytree(V1, copy)
    (copy / "course.xml").write_text('<course url_name="Demo_Course" org="Watch" course="DemoX"/>\n')
    events: list[tuple[str, str]] = []
    stop = threading.Event()
    thread = threading.Thread(target=watch_exports, args=(lake, exports),
                              kwargs={"interval": 0.2, "stop": stop,
                                      "on_event": lambda kind, path, detail: events.append((kind, str(path)))})
    thread.start()
    key = "course-v1:Watch+DemoX+Demo_Course"
    try:
        deadline = time.time() + 30
        while time.time() < deadline and lake.query_value(
                "SELECT count() FROM openedx.course_blocks WHERE course_id = {c:String}", {"c": key}) != 148:
            time.sleep(0.1)
        assert lake.query_value("SELECT count() FROM openedx.course_blocks WHERE course_id = {c:String}",
                                {"c": key}) == 148
        chapter = copy / "chapter" / "d8a6192ade314473a78242dfeedfbf5b.xml"
        time.sleep(0.05)
        chapter.write_text(chapter.read_text().replace('display_name="Introduction"', 'display_name="Start here"'))
        deadline = time.time() + 30
        query = ("SELECT display_name FROM openedx.course_blocks WHERE course_id = {c:String} "
                 "AND block_type = 'chapter' ORDER BY course_order LIMIT 1")
        while time.time() < deadline and lake.query_value(query, {"c": key}) != "Start here":
            time.sleep(0.1)
        assert lake.query_value(query, {"c": key}) == "Start here"
    finally:
        stop.set()
        thread.join()
    assert [kind for kind, _ in events] == ["imported", "imported"]


def cairn(*args: str) -> subprocess.CompletedProcess:
    """The real command in its own process (chDB holds one data directory per process)."""
    return subprocess.run([sys.executable, "-m", "cairn", *args], capture_output=True, text=True, timeout=300,
                          env={**{k: v for k, v in os.environ.items() if not k.startswith("CAIRN_")},
                               "COLUMNS": "200"})


def test_cli_import_course(tmp_path):
    data = str(tmp_path / "cli-data")
    assert cairn("--data-dir", data, "migrate").returncode == 0
    archive = make_tar(V2, tmp_path / "v2.tar.gz")
    done = cairn("--data-dir", data, "import-course", str(V1), str(archive))
    assert done.returncode == 0, done.stderr
    out = " ".join(done.stdout.split())
    assert "imported course-v1:edX+DemoX+Demo_Course: 148 blocks" in out
    assert "imported course-v1:OpenedX+DemoX+DemoCourse: 401 blocks (html 266, vertical 58, problem 29" in out
    done = cairn("--data-dir", data, "client", "-q",
                 "SELECT course_id, count() FROM openedx.course_blocks GROUP BY course_id ORDER BY course_id")
    assert done.stdout.split("\n")[:2] == ["course-v1:OpenedX+DemoX+DemoCourse\t401", "course-v1:edX+DemoX+Demo_Course\t148"]
    bad = tmp_path / "bad"
    shutil.copytree(V1, bad)
    (bad / "vertical" / "vertical_0270f6de40fc.xml").write_text("<vertical><video")
    done = cairn("--data-dir", data, "import-course", str(bad))
    assert done.returncode == 1
    assert done.stderr.strip().startswith("Error: vertical/vertical_0270f6de40fc.xml: invalid XML")
    assert len(done.stderr.strip().splitlines()) == 1


def test_stale_courses_and_refresh_with_dump_command(lake, tmp_path):
    """course_overviews.modified newer than the last import -> stale -> re-import via the dump command."""
    from datetime import datetime, timedelta, timezone

    keys = ["course-v1:Stale+A+1", "course-v1:Stale+B+1"]
    dumps = {}
    for key in keys:
        dumps[key] = tmp_path / f"{key.replace(':', '_')}.jsonl"
        with open(dumps[key], "w") as handle:
            write_records(load_records(V1, course_id=key), handle)
    lake.command("TRUNCATE TABLE openedx._mysql_course_overviews_copy")
    old = datetime.now(timezone.utc) - timedelta(days=1)
    lake.insert("openedx._mysql_course_overviews_copy", [[key, old, old] for key in keys], ["id", "created", "modified"])
    # never imported: both stale
    assert [row[0] for row in stale_courses(lake)] == keys
    assert stale_courses(lake)[0][2] is None
    import_course(lake, dumps[keys[0]])
    assert [row[0] for row in stale_courses(lake)] == [keys[1]]
    # the command Cairn runs per stale course (in production: tutor local run lms python ...dump...)
    script = tmp_path / "fake_tutor.py"
    script.write_text("import sys, pathlib\n"
                      f"dumps = {{k: str(v) for k, v in {dict((k, str(v)) for k, v in dumps.items())!r}.items()}}\n"
                      "print('Loading settings from lms.envs.tutor.production')\n"
                      "sys.stdout.write(pathlib.Path(dumps[sys.argv[1]]).read_text())\n")
    command = f"{sys.executable} {script} {{course_id}}"
    assert len(dump_with_command(command, keys[1])) == 148
    events = []
    done = refresh_stale_courses(lake, dump_command=command, on_event=lambda kind, course, detail: events.append(kind))
    assert [(r.course_id, r.blocks) for r in done] == [(keys[1], 148)] and events == ["imported"]
    assert stale_courses(lake) == []
    # a publish: modified moves past the last import
    later = datetime.now(timezone.utc) + timedelta(seconds=1)
    lake.insert("openedx._mysql_course_overviews_copy", [[keys[0], old, later]], ["id", "created", "modified"])
    assert [row[0] for row in stale_courses(lake)] == [keys[0]]
    with pytest.raises(CairnError, match="course dump command exited with 3 for course-v1:Stale"):
        dump_with_command(f"{sys.executable} -c 'import sys; sys.exit(3)' {{course_id}}", keys[0])
