"""Bad input never stops ingestion: property tests with random corruption.

Garbage, truncated JSON, non-UTF-8 bytes, over-long lines, JSON without name or
time and binary noise go to ``_quarantine`` with their raw bytes, source, offset
and reason; the valid events around them all land, each once.
"""

from __future__ import annotations

import json
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cairn.config import load_config
from cairn.engine import open_engine
from cairn.ingest.chunks import MAX_LINE_BYTES, LineChunker
from cairn.ingest.collector import Collector
from cairn.ingest.loader import Loader
from cairn.schema.migrator import Migrator

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from generate import EventGenerator  # noqa: E402

_GENERATOR = EventGenerator(seed=11, prefixed=False)
_COUNTER = [0]


def valid_line(prefixed: bool, n: int | None = None) -> bytes:
    """Valid event line number ``n`` (bare JSON or with the Tutor logging prefix).

    Without ``n``, a line never made before (for first lines: distinct file identities).
    """
    from datetime import datetime, timedelta, timezone

    if n is None:
        _COUNTER[0] += 1
        n = 10**7 + _COUNTER[0]
    _GENERATOR.random.seed(n)  # same n, same line: hypothesis replays examples exactly
    when = datetime(2026, 5, 1, tzinfo=timezone.utc) + timedelta(seconds=n)
    event = _GENERATOR.event(when)
    if prefixed:
        return (f"2026-05-01 10:00:00,000 INFO 7 [tracking] [user 3] [ip 10.0.0.1] logger.py:41 - {event}").encode()
    return event.encode()


@st.composite
def corrupt_line(draw) -> bytes:
    """One line that is not a valid event (never blank, never another logger's line)."""
    kind = draw(st.sampled_from(["garbage", "truncated", "utf8", "no-name", "no-time", "noise", "escapes",
                                 "not-object"]))
    base = valid_line(draw(st.booleans()), draw(st.integers(0, 10**6)))
    brace = base.index(b"{")
    if kind == "garbage":
        return b"#" + draw(st.text(alphabet="abc xyz{}[]:,\"0123", max_size=80)).encode()
    if kind == "truncated":
        return base[:draw(st.integers(brace + 1, len(base) - 2))]
    if kind == "utf8":
        at = draw(st.integers(brace + 1, len(base) - 2))
        return base[:at] + draw(st.sampled_from([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\x80\x80"])) + base[at:]
    if kind in ("no-name", "no-time"):
        event = json.loads(base[brace:])
        for key in (("name", "event_type") if kind == "no-name" else ("time",)):
            event.pop(key, None)
        return base[:brace] + json.dumps(event).encode()
    if kind == "noise":
        noise = draw(st.binary(min_size=1, max_size=300)).replace(b"\n", b"\x00")
        return b"\x01" + noise  # starts with a control byte: never blank, never a log prefix
    if kind == "escapes":
        return b"{\"name\": \"x\\\\y\tz\r\", \"time\": " + draw(st.sampled_from([b"", b"\\", b"\t"])) + b"}"
    return b"[" + base[brace:] + b"]"


def fixed_corruptions() -> list[bytes]:
    """One line of each kind of corruption."""
    base = valid_line(True)
    brace = base.index(b"{")
    event = json.loads(base[brace:])
    no_name = {k: v for k, v in event.items() if k not in ("name", "event_type")}
    no_time = {k: v for k, v in event.items() if k != "time"}
    return [
        b"garbage that is not a log line",
        base[:len(base) // 2],  # truncated JSON
        base[:brace + 10] + b"\xff\xfe" + base[brace + 10:],  # not UTF-8
        base[:brace] + json.dumps(no_name).encode(),
        json.dumps(no_time).encode(),
        bytes(range(1, 10)) + bytes(range(11, 256)),  # binary noise
        b'{"name": "x", "time": "2026-01-01T00:00:00+00:00", "pad": "' + b"y" * (1 << 20) + b'"}',  # > 1 MiB
        b"[1, 2, 3]",
        b'{"name": "a\tb\\c", "time": "not a time"}',
    ]


lines_strategy = st.lists(st.one_of(st.builds(lambda p, n: ("ok", valid_line(p, n)), st.booleans(),
                                              st.integers(0, 10**6)),
                                    corrupt_line().map(lambda b: ("bad", b))),
                          min_size=1, max_size=60)


@pytest.fixture(scope="module")
def module_lake(tmp_path_factory):
    config = load_config(overrides={"data_dir": str(tmp_path_factory.mktemp("corruption") / "data")})
    engine = open_engine(config)
    Migrator(engine, config).run()
    yield engine, config
    engine.close()


def _check_source(engine, source: str, items: list[tuple[str, bytes]], offsets: list[int]) -> None:
    good = [line for kind, line in items if kind == "ok"]
    bad = {offset: line for (kind, line), offset in zip(items, offsets) if kind == "bad"}
    raws = sorted(r[0] for r in engine.query_rows(
        "SELECT raw FROM openedx.events WHERE source = {s:String}", {"s": source}))
    assert raws == sorted(line[line.index(b"{"):].decode() for line in good)
    quarantined = engine.query_rows(
        "SELECT source_offset, hex(line), reason FROM openedx._quarantine WHERE source = {s:String} "
        "ORDER BY source_offset", {"s": source})
    assert [row[0] for row in quarantined] == sorted(bad)
    for offset, hexed, reason in quarantined:
        assert bytes.fromhex(hexed) == bad[offset]  # raw bytes kept exactly
        assert reason
    total = engine.query_value(
        "SELECT sum(lines) FROM openedx._ingest_stats WHERE source = {s:String}", {"s": source})
    assert total == len(items)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(items=lines_strategy, final_newline=st.booleans())
def test_backfill_quarantines_every_bad_line_and_keeps_every_event(module_lake, items, final_newline):
    engine, _ = module_lake
    items = [("ok", valid_line(False))] + items  # a distinct first line: a distinct file identity
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "tracking.log"
        content = b"\n".join(line for _, line in items) + (b"\n" if final_newline else b"")
        path.write_bytes(content)
        offsets, position = [], 0
        for _, line in items:
            offsets.append(position)
            position += len(line) + 1
        result = Loader(engine, batch_bytes=4096).load_file(path)
        source = str(path.resolve())
        _check_source(engine, source, items, offsets)
        assert result.counts.get("event", 0) == sum(1 for kind, _ in items if kind == "ok")
        # Loading again adds nothing.
        again = Loader(engine, batch_bytes=4096).load_file(path)
        assert again.already_loaded and again.bytes_loaded == 0
        _check_source(engine, source, items, offsets)


@settings(max_examples=200, deadline=None)
@given(lines=st.lists(st.binary(max_size=120).map(lambda b: b.replace(b"\n", b"")), min_size=1, max_size=40),
       cuts=st.lists(st.integers(1, 300), min_size=1, max_size=40),
       batch=st.integers(8, 200), max_line=st.integers(4, 90), end_with_newline=st.booleans())
def test_chunker_never_sends_a_partial_line_and_keeps_offsets(lines, cuts, batch, max_line, end_with_newline):
    """A file written in random pieces: chunks are contiguous, whole lines, cut only when too long."""
    content = b"\n".join(lines) + (b"\n" if end_with_newline else b"")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "f.log"
        path.write_bytes(b"")
        chunks = []
        with open(path, "rb", buffering=0) as reader, open(path, "ab", buffering=0) as writer:
            chunker = LineChunker(reader, 0, batch, max_line=max_line)
            written = 0
            for cut in cuts + [len(content)]:
                piece = content[written:written + cut]
                writer.write(piece)
                written += len(piece)
                while (chunk := chunker.next_chunk(final=False)) is not None:
                    # Never past the last newline written so far.
                    assert chunk.end <= content.rfind(b"\n", 0, written) + 1
                    chunks.append(chunk)
            while (chunk := chunker.next_chunk(final=True)) is not None:
                chunks.append(chunk)
    position = 0
    sent_lines = []
    for chunk in chunks:
        assert chunk.start == position
        assert chunk.data.endswith(b"\n")
        position = chunk.end
        sent_lines.extend(chunk.data.split(b"\n")[:-1] if not hasattr(chunk, "cut_lines") else chunk.cut_lines)
    assert position == len(content)
    expected = content.split(b"\n")
    if expected[-1] == b"":  # after the last newline (or an empty file): no line
        expected.pop()
    assert sent_lines == [line[:max_line] for line in expected]


def test_lines_over_the_limits_are_quarantined_with_exact_offsets(module_lake, tmp_path):
    engine, _ = module_lake
    first, last = valid_line(True), valid_line(False)
    over_1mb = b'{"name": "x", "time": "2026-01-01T00:00:00+00:00", "pad": "' + b"y" * (1 << 20) + b'"}'
    huge = b"z" * (MAX_LINE_BYTES + 123_456)  # beyond what is ever held in memory
    path = tmp_path / "big.log"
    path.write_bytes(b"\n".join([first, over_1mb, huge, last]) + b"\n")
    Loader(engine).load_file(path)
    rows = engine.query_rows(
        "SELECT source_offset, length(line), reason FROM openedx._quarantine WHERE source = {s:String} "
        "ORDER BY source_offset", {"s": str(path)})
    assert rows == [(len(first) + 1, len(over_1mb), "line longer than 1 MiB"),
                    (len(first) + len(over_1mb) + 2, MAX_LINE_BYTES, "line longer than 1 MiB")]
    offsets = [r[0] for r in engine.query_rows(
        "SELECT source_offset FROM openedx.events WHERE source = {s:String} ORDER BY 1", {"s": str(path)})]
    assert offsets == [0, len(first) + len(over_1mb) + len(huge) + 3]


def test_follower_survives_every_kind_of_corruption(module_lake, tmp_path):
    """The real-time path: bad lines appended in pieces while following; nothing stops it."""
    engine, config = module_lake
    path = tmp_path / "tracking.log"
    items = [("ok", valid_line(True))]
    import random

    rng = random.Random(7)
    for bad in fixed_corruptions():
        items.append(("bad", bad))
        items.append(("ok", valid_line(rng.random() < 0.5)))
    content = b"".join(line + b"\n" for _, line in items)
    offsets, position = [], 0
    for _, line in items:
        offsets.append(position)
        position += len(line) + 1
    path.write_bytes(b"")
    collector = Collector(engine, [str(path)], flush_interval=0.05, batch_bytes=64 * 1024)
    thread = threading.Thread(target=collector.run)
    thread.start()
    try:
        with open(path, "ab", buffering=0) as out:
            written = 0
            while written < len(content):
                step = rng.randrange(1, 3000)
                out.write(content[written:written + step])
                written += step
                time.sleep(0.01)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            files = list(collector.files.values())
            if files and files[0].stream.sent_end == len(content):
                break
            time.sleep(0.1)
        assert thread.is_alive()
    finally:
        collector.stop.set()
        thread.join(timeout=30)
    _check_source(engine, str(path), items, offsets)
