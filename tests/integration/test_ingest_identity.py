"""No file taken for another (issue 9): files sharing their first line, renamed and compressed copies, grown files.

Real engine, real files; both `cairn backfill`'s loader and the collector decide which
stream a file is (cairn/ingest/identity.py).
"""

from __future__ import annotations

import gzip
import shutil
import sys
import threading
import time
from pathlib import Path

from cairn.ingest.collector import Collector
from cairn.ingest.loader import Loader

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from generate import EventGenerator  # noqa: E402

START = "2026-03-01T00:00:00"


def _log(seed: int, n: int, first: str) -> bytes:
    """``first`` then ``n`` realistic lines (seeded): two seeds share the first line only."""
    from datetime import datetime, timedelta, timezone

    generator = EventGenerator(seed=seed, prefixed=True)
    when = datetime(2026, 3, 1, tzinfo=timezone.utc) + timedelta(days=seed)
    return (first + "".join(generator.line(when + timedelta(seconds=i)) for i in range(n))).encode()


def _events(engine, source: Path) -> int:
    return engine.query_value("SELECT count() FROM openedx.events WHERE source = {s:String}", {"s": str(source)})


def _first_line() -> str:
    # The same management-command event at the top of two servers' logs.
    return ('{"name": "edx.course.enrollment.activated", "time": "2026-02-28T23:59:59+00:00", "event_type": '
            '"edx.course.enrollment.activated", "context": {"course_id": "course-v1:edX+DemoX+Demo_Course", '
            '"command": "enroll"}, "event": {"user_id": 7, "course_id": "course-v1:edX+DemoX+Demo_Course", '
            '"mode": "audit"}}\n')


def test_two_files_with_the_same_first_line_and_a_renamed_gzip_copy(datalake, tmp_path):
    first = _first_line()
    one, other = tmp_path / "lms-1" / "tracking.log", tmp_path / "lms-2" / "tracking.log"
    for path, seed in ((one, 1), (other, 2)):
        path.parent.mkdir()
        path.write_bytes(_log(seed, 600, first))
    copy = tmp_path / "archive" / "tracking.log-20260301.gz"
    copy.parent.mkdir()
    copy.write_bytes(gzip.compress(one.read_bytes()))
    loader = Loader(datalake, batch_bytes=256 * 1024)
    a, b, c = loader.load_file(one), loader.load_file(other), loader.load_file(copy)
    assert (a.already_loaded, b.already_loaded, c.already_loaded) == (False, False, True)
    assert _events(datalake, one) == _events(datalake, other) == 601  # both in full, first line included
    assert _events(datalake, copy) == 0 and c.bytes_loaded == 0  # the copy adds nothing
    assert datalake.query_value("SELECT count() FROM openedx.events") == 1202
    names = [r[0] for r in datalake.query_rows("SELECT DISTINCT fingerprint FROM openedx._checkpoints ORDER BY 1")]
    assert len(names) == 2 and names[1] == names[0] + "~2"
    # Run again, in another order: each file finds its own stream, nothing is added.
    for path in (copy, other, one):
        assert loader.load_file(path).already_loaded
    assert datalake.query_value("SELECT count() FROM openedx.events") == 1202


def test_a_grown_file_continues_where_it_stopped_and_a_rename_adds_nothing(datalake, tmp_path):
    content = _log(3, 900, _first_line())
    path = tmp_path / "tracking.log"
    half = content.rfind(b"\n", 0, len(content) // 2) + 1
    path.write_bytes(content[:half])
    loader = Loader(datalake, batch_bytes=128 * 1024)
    loader.load_file(path)
    with open(path, "ab") as out:
        out.write(content[half:])
    grown = loader.load_file(path)
    assert grown.bytes_loaded == len(content) - half and not grown.already_loaded
    renamed = tmp_path / "tracking.log.1"
    path.rename(renamed)
    assert loader.load_file(renamed).already_loaded
    assert datalake.query_value("SELECT count(), uniqExact(event_id) FROM openedx.events") == 901


def test_collector_follows_two_files_sharing_their_first_line(datalake, config, tmp_path):
    first = _first_line()
    logs = tmp_path / "logs"
    logs.mkdir()
    one, other = logs / "lms.log", logs / "cms.log"
    one.write_bytes(_log(4, 300, first))
    other.write_bytes(_log(5, 300, first))
    collector = Collector(datalake, [str(logs / "*.log*")], flush_interval=0.1, batch_bytes=256 * 1024)
    thread = threading.Thread(target=collector.run)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and datalake.query_value("SELECT count() FROM openedx.events") < 602:
            time.sleep(0.2)
        # A compressed rotated copy of one of them appears in the glob: the same stream, already read.
        shutil.copyfile(one, logs / "lms.log.1")
        with open(logs / "lms.log.1", "rb") as plain, gzip.open(logs / "lms.log.2.gz", "wb") as packed:
            packed.write(plain.read())
        (logs / "lms.log.1").unlink()
        time.sleep(2.0)
    finally:
        collector.stop.set()
        thread.join(timeout=30)
    assert _events(datalake, one) == _events(datalake, other) == 301
    assert datalake.query_value("SELECT count() FROM openedx.events") == 602
