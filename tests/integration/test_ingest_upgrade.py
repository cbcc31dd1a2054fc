"""The parse-once views (migration 0060) and chunks (0065) upgrade a datalake in place (issue 9).

A datalake built with the views of migrations 0001-0010 loads the first half of a
file; `cairn migrate` then replaces the views; the same file, grown to its full
length, continues from its checkpoint. Every table then holds exactly what a fresh
datalake gets from loading the whole file with the new views (same rows, same
`event_id`s), apart from the load-time stamps.

A crash of a version older than chunks leaves an intent row without
`pending_encoding` and maybe the range stored as rows: the new version replays that
range as rows, through the same views, so that ClickHouse's deduplication drops it.
"""

from __future__ import annotations

import sys
from datetime import datetime, timezone
from pathlib import Path

from cairn.config import load_config
from cairn.engine import open_engine
from cairn.ingest.checkpoints import chunk_token
from cairn.ingest.chunks import LineChunker
from cairn.ingest.encoding import ROWS, encode_chunk
from cairn.ingest.files import fingerprint
from cairn.ingest.loader import Loader
from cairn.schema.migrator import Migrator
from support.paths import EVENTS

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from generate import write_log  # noqa: E402

PARSE_ONCE = "0060_ingest_parse_once.sql"
TABLES = ("events", "video_events", "problem_events", "enrollment_events", "navigation_events", "grade_events",
          "forum_events", "completion_events", "certificate_events")
LOAD_STAMPS = ("inserted_at", "received_at", "last_received")


def _content(tmp_path: Path) -> bytes:
    """Real quirky logs (broken JSON, other loggers, HTTP lines, both shapes) and generated lines."""
    generated = tmp_path / "generated.log"
    write_log(generated, 3000, seed=11)
    parts = [EVENTS / "erb-tracking-log" / "tracking.log", EVENTS / "erb-history" / "demo_problem_events_v1.log",
             generated, *sorted((EVENTS / "by-event-name").iterdir())]
    return b"".join(p.read_bytes().rstrip(b"\n") + b"\n" for p in parts)


def _snapshot(engine, database: str, source: str) -> dict[str, list]:
    out = {}
    for table in (*TABLES, "_quarantine"):
        columns = [c for (c,) in engine.query_rows(
            "SELECT name FROM system.columns WHERE database = {d:String} AND table = {t:String} "
            "AND default_kind != 'ALIAS' ORDER BY position", {"d": database, "t": table})
                   if c not in LOAD_STAMPS and c != "source"]
        out[table] = engine.query_rows(f"SELECT {', '.join(columns)} FROM `{database}`.{table} ORDER BY tuple(*)")
    out["_ingest_stats"] = engine.query_rows(
        f"SELECT status, reason, sum(lines), sum(bytes), max(last_event_time) FROM `{database}`._ingest_stats "
        "GROUP BY status, reason ORDER BY status, reason")
    assert all(source == s for (s,) in engine.query_rows(f"SELECT DISTINCT source FROM `{database}`.events"))
    return out


def _fresh_load(engine, data_dir: Path, tmp_path: Path, content: bytes, batch_bytes: int = 256 * 1024) -> dict:
    """The snapshot of ``content`` loaded whole into a fresh database ``fresh`` with today's views."""
    fresh_config = load_config(overrides={"data_dir": str(data_dir), "database": "fresh"})
    Migrator(engine, fresh_config).run()
    whole = tmp_path / "whole" / "tracking.log"
    whole.parent.mkdir()
    whole.write_bytes(content)
    fresh_engine = open_engine(fresh_config)
    try:
        Loader(fresh_engine, batch_bytes=batch_bytes).load_file(whole)
    finally:
        fresh_engine.close()
    return _snapshot(engine, "fresh", str(whole.resolve()))


def test_half_loaded_before_the_migration_half_after_equals_a_fresh_load(tmp_path):
    content = _content(tmp_path)
    half = content.rfind(b"\n", 0, len(content) // 2) + 1
    log = tmp_path / "tracking.log"
    data_dir = tmp_path / "data"
    old_config = load_config(overrides={"data_dir": str(data_dir), "database": "upgraded"})
    engine = open_engine(old_config)
    before = Migrator(engine, old_config)
    before.migrations = [m for m in before.migrations if m.name != PARSE_ONCE]
    before.run()
    assert "_ingest_classify" in engine.tables("upgraded")
    log.write_bytes(content[:half])
    first = Loader(engine, batch_bytes=256 * 1024).load_file(log)
    assert first.counts["event"] > 1000 and first.counts["quarantined"] >= 1 and first.counts["skipped"] >= 1

    steps = []
    Migrator(engine, old_config).run(echo=lambda state, name, detail: steps.append((state, name)))
    assert ("APPLY", PARSE_ONCE) in steps
    with open(log, "ab") as out:
        out.write(content[half:])
    second = Loader(engine, batch_bytes=256 * 1024).load_file(log)
    assert second.bytes_loaded == len(content) - half  # continued from its checkpoint

    upgraded, fresh = _snapshot(engine, "upgraded", str(log)), _fresh_load(engine, data_dir, tmp_path, content)
    assert {t: len(rows) for t, rows in upgraded.items()} == {t: len(rows) for t, rows in fresh.items()}
    assert len(upgraded["events"]) > 3000 and upgraded["problem_events"] and upgraded["video_events"]
    for table in upgraded:
        assert upgraded[table] == fresh[table], table
    engine.close()


def test_an_intent_written_before_chunks_is_replayed_as_rows_once(tmp_path):
    content = _content(tmp_path)
    log = tmp_path / "tracking.log"
    log.write_bytes(content)
    source = str(log.resolve())
    data_dir = tmp_path / "data"
    config = load_config(overrides={"data_dir": str(data_dir), "database": "replayed"})
    engine = open_engine(config)
    Migrator(engine, config).run()
    loader = Loader(engine, batch_bytes=256 * 1024)
    fp = loader.stream_name(log, fingerprint(log))
    with open(log, "rb") as handle:
        first = LineChunker(handle, 0, loader.batch_bytes).next_chunk(final=True)
    # What the older version left when it stopped between its insert and the next
    # checkpoint row: the intent (its row has no pending_encoding) and the range stored.
    engine.insert("replayed._checkpoints", [[fp, source, 0, first.end, [], len(content), datetime.now(timezone.utc), ""]],
                  ["fingerprint", "source", "offset", "pending_end", "pending_cuts", "size", "updated_at", "anchor"])
    loader.insert_encoded(encode_chunk(source, first, ROWS), chunk_token(fp, 0, first.end))
    stored_before = engine.query_value("SELECT count() FROM replayed.events")
    assert stored_before > 100

    result = loader.load_file(log)
    assert result.bytes_loaded == len(content) - first.end  # the replayed range is not counted again

    replayed = _snapshot(engine, "replayed", source)
    fresh = _fresh_load(engine, data_dir, tmp_path, content, batch_bytes=1024 * 1024)  # other chunks, same rows
    for table in replayed:
        assert replayed[table] == fresh[table], table
    engine.close()
