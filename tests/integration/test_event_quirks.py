"""The tracking-log quirks of data-model.md 1.4, one line each, through the real pipeline."""

from __future__ import annotations

import gzip
import json
from datetime import datetime

import pytest

from cairn.ingest.loader import Loader

PREFIX = "2023-05-23 14:12:17,308 INFO 7 [tracking] [user 6] [ip 172.18.0.1] logger.py:41 - "


def event(name, time="2024-02-03T04:05:06.123456+00:00", **fields):
    base = {"name": name, "context": {"course_id": "", "org_id": "", "path": "/event"}, "username": "u",
            "session": "s", "event_source": "server", "event": {}, "page": None}
    if time is not None:
        base["time"] = time
    base.update(fields)
    return base


def load_lines(datalake, tmp_path, lines, name="quirks.log"):
    path = tmp_path / name
    path.write_text("".join(line + "\n" for line in lines))
    return Loader(datalake).load_file(path)


def rows(datalake, sql, **params):
    return datalake.query(sql, params).dicts()


def test_timestamp_variants(datalake, tmp_path):
    variants = {
        "2024-02-03T04:05:06.123456+00:00": datetime(2024, 2, 3, 4, 5, 6, 123456),
        "2014-12-09T03:57:24+00:00": datetime(2014, 12, 9, 3, 57, 24),      # microseconds dropped
        "2015-01-02T03:04:05.5Z": datetime(2015, 1, 2, 3, 4, 5, 500000),    # Z suffix
        "2016-03-04 05:06:07.000001": datetime(2016, 3, 4, 5, 6, 7, 1),     # space, no offset
        "2017-04-05T06:07:08": datetime(2017, 4, 5, 6, 7, 8),              # no offset: UTC
        "2018-05-06T09:00:00+02:00": datetime(2018, 5, 6, 7, 0, 0),         # offset converted to UTC
    }
    lines = [json.dumps(event(f"t{i}", time=t)) for i, t in enumerate(variants)]
    # In-process shape: `timestamp` instead of `time`, `data` instead of `event`.
    lines.append(json.dumps({"name": "async", "timestamp": "2019-06-07T08:09:10.111111+00:00",
                             "data": {"course_id": "course-v1:A+B+C", "user_id": 9},
                             "context": {"username": "amy", "event_source": "browser", "user_id": 9}}))
    load_lines(datalake, tmp_path, lines)
    got = dict(datalake.query_rows("SELECT name, time FROM openedx.events"))
    for i, expected in enumerate(variants.values()):
        assert got[f"t{i}"] == expected
    async_row = rows(datalake, "SELECT * FROM openedx.events WHERE name = 'async'")[0]
    assert async_row["time"] == datetime(2019, 6, 7, 8, 9, 10, 111111)
    assert (async_row["username"], async_row["event_source"], async_row["course_id"], async_row["org"]) == \
        ("amy", "browser", "course-v1:A+B+C", "A")


def test_user_id_variants(datalake, tmp_path):
    lines = [
        json.dumps(event("int", context={"user_id": 5})),
        json.dumps(event("null", context={"user_id": None})),
        json.dumps(event("empty", context={"user_id": ""})),
        json.dumps(event("missing", context={})),
        json.dumps(event("grade", context={}, event={"user_id": "42", "course_id": "course-v1:X+Y+Z"})),
    ]
    load_lines(datalake, tmp_path, lines)
    got = dict(datalake.query_rows("SELECT name, user_id FROM openedx.events"))
    assert got == {"int": 5, "null": None, "empty": None, "missing": None, "grade": 42}


def test_event_payload_shapes_and_legacy_names(datalake, tmp_path):
    cut = json.dumps({"GET": {}, "POST": {"email": ["a@b.c"], "name": ["x" * 600]}})[:512]
    lines = [
        json.dumps(event("obj", event={"a": 1})),
        json.dumps(event("jsonstr", event=json.dumps({"b": 2}))),
        json.dumps(event("plainstr", event="input_abc_2_1=choice_0")),
        json.dumps(event("array", event=[{"x": 1}, "<html>"])),
        json.dumps(event("/courses/course-v1:Org+Num+Run/courseware/ch/seq/", event=cut)),
        json.dumps({k: v for k, v in event("", event_type="seq_goto").items() if k != "name"}),
    ]
    load_lines(datalake, tmp_path, lines)
    payload = dict(datalake.query_rows("SELECT name, event FROM openedx.events"))
    assert json.loads(payload["obj"]) == {"a": 1}
    assert json.loads(payload["jsonstr"]) == {"b": 2}
    assert json.loads(payload["plainstr"]) == "input_abc_2_1=choice_0"
    assert json.loads(payload["array"]) == [{"x": 1}, "<html>"]
    request = "/courses/course-v1:Org+Num+Run/courseware/ch/seq/"
    assert json.loads(payload[request]) == cut  # cut mid-JSON: kept as the string it is
    assert datalake.query_value("SELECT course_id FROM openedx.events WHERE name = {n:String}", {"n": request}) \
        == "course-v1:Org+Num+Run"  # course only in the name/path
    assert payload["seq_goto"] == "{}"  # old logs: no name, event_type stands in


def test_course_keys_from_urls_and_orgs(datalake, tmp_path):
    lines = [
        json.dumps(event("page_old", page="https://lms/courses/MITx/6.002x/2012_Fall/courseware/")),
        json.dumps(event("page_block", page="https://lms/xblock/block-v1:OrgB+C1+R1+type@vertical+block@abc")),
        json.dumps(event("ctx_ccx", context={"course_id": "ccx-v1:OrgC+C2+R2+ccx@7"})),
        json.dumps(event("org_only", context={"course_id": "", "org_id": "OrgD"})),
    ]
    load_lines(datalake, tmp_path, lines)
    got = {r[0]: r[1:] for r in datalake.query_rows("SELECT name, course_id, org FROM openedx.events")}
    assert got == {"page_old": ("MITx/6.002x/2012_Fall", "MITx"), "page_block": ("course-v1:OrgB+C1+R1", "OrgB"),
                   "ctx_ccx": ("ccx-v1:OrgC+C2+R2+ccx@7", "OrgC"), "org_only": ("", "OrgD")}


def test_bad_lines_are_quarantined_and_good_ones_around_them_load(datalake, tmp_path):
    good = [json.dumps(event(f"good{i}")) for i in range(3)]
    path = tmp_path / "mixed.log"
    with open(path, "wb") as handle:
        handle.write(good[0].encode() + b"\n")
        handle.write(b'{"name": "cut", "time": "2024-01-01T00:00:00+00:00", "event": {\n')  # truncated JSON
        handle.write(PREFIX.encode() + good[1].encode() + b"\n")                          # prefixed, fine
        handle.write(b"\xff\xfe binary \x00 noise\n")                                     # not UTF-8
        handle.write(json.dumps({"time": "2024-01-01T00:00:00+00:00", "event": {}}).encode() + b"\n")  # no name
        handle.write(json.dumps({"name": "x", "event": {}}).encode() + b"\n")                          # no time
        handle.write(b"[1, 2, 3]\n")                                                                # not an object
        handle.write(b"just some text\n")
        handle.write(b"\n")                                                                         # blank: skipped
        handle.write(good[2].encode())                                                              # no final newline
    result = Loader(datalake).load_file(path)
    assert result.counts == {"event": 3, "quarantined": 6, "skipped": 1}
    assert {n for (n,) in datalake.query_rows("SELECT name FROM openedx.events")} == {"good0", "good1", "good2"}
    reasons = [r for (r,) in datalake.query_rows("SELECT reason FROM openedx._quarantine ORDER BY source_offset")]
    assert reasons == ["invalid JSON", "not valid UTF-8", "event has no name", "event has no valid time",
                       "no JSON event in line", "no JSON event in line"]
    binary = datalake.query_value("SELECT line FROM openedx._quarantine WHERE reason = 'not valid UTF-8'")
    assert binary is not None


def test_gzip_and_json_document_files(datalake, tmp_path):
    lines = [json.dumps(event(f"gz{i}")) for i in range(100)]
    path = tmp_path / "tracking.log.1.gz"
    with gzip.open(path, "wt") as handle:
        handle.write("\n".join(PREFIX + line for line in lines) + "\n")
    assert Loader(datalake).load_file(path).counts == {"event": 100}
    document = tmp_path / "doc.json"
    document.write_text(json.dumps({"1": event("d1"), "2": event("d2")}, indent=4))
    assert Loader(datalake).load_file(document).counts == {"event": 2}
    assert datalake.query_value("SELECT count() FROM openedx.events") == 102


def test_resume_after_partial_load(datalake, tmp_path):
    path = tmp_path / "big.log"
    path.write_text("".join(json.dumps(event(f"e{i}", event={"pad": "x" * 200})) + "\n" for i in range(2000)))
    loader = Loader(datalake, batch_bytes=64 * 1024)
    calls = []

    def stop_after_three(n):
        calls.append(n)
        if len(calls) == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        loader.load_file(path, progress=stop_after_three)
    partial = datalake.query_value("SELECT count() FROM openedx.events")
    assert 0 < partial < 2000
    result = loader.load_file(path)
    assert 0 < result.bytes_loaded < path.stat().st_size
    assert datalake.query_value("SELECT count() FROM openedx.events") == 2000
    assert datalake.query_value("SELECT uniqExact(name) FROM openedx.events") == 2000


def test_replayed_chunk_is_not_counted_twice(datalake, tmp_path):
    from cairn.ingest.chunks import Chunk

    loader = Loader(datalake)
    data = ("\n".join(json.dumps(event("problem_check", time=f"2024-01-01T00:00:{i:02d}+00:00",
                                         event={"problem_id": f"block-v1:O+C+R+type@problem+block@p{i}",
                                                "grade": 1, "max_grade": 2}))
                       for i in range(10)) + "\n").encode()
    for _ in range(3):  # a crash between insert and checkpoint replays the same chunk
        loader.insert_chunk("replay.log", Chunk(0, len(data), data), token="fp:0:%d" % len(data))
    assert datalake.query_value("SELECT count() FROM openedx.events") == 10
    assert datalake.query_value("SELECT count() FROM openedx.problem_events") == 10  # typed tables too
    assert datalake.query_value("SELECT sum(grade) / sum(max_grade) FROM openedx.problem_events") == 0.5
    assert datalake.query_value("SELECT sum(lines) FROM openedx._ingest_stats") == 10
