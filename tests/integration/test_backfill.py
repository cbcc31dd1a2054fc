"""Backfill (the Loader): gzip files, resume from checkpoints, replay of interrupted chunks.

The crash cases here are staged exactly (an intent written, its insert landed or
not, or landed in part of a group), complementing the SIGKILL tests in
test_collector.py, which hit random moments.
"""

from __future__ import annotations

import gzip
import sys
from pathlib import Path

import pytest

from cairn.ingest.checkpoints import Checkpoints
from cairn.ingest.chunks import LineChunker
from cairn.ingest.encoding import encode_chunk
from cairn.ingest.files import fingerprint, open_log
from cairn.ingest.loader import Loader

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from generate import write_log  # noqa: E402


def _times(engine, source: str | None = None) -> list[str]:
    where = "WHERE source = {s:String}" if source else ""
    return [r[0] for r in engine.query_rows(
        f"SELECT JSONExtractString(raw, 'time') FROM openedx.events {where} ORDER BY 1",
        {"s": source} if source else None)]


def _expected_times(path: Path) -> list[str]:
    import json

    with open_log(path) as handle:
        return sorted(json.loads(line[line.index(b"{"):])["time"] for line in handle if line.strip())


def test_gzip_and_plain_rotated_files_load_once(datalake, tmp_path):
    plain = tmp_path / "tracking.log.1"
    write_log(plain, 400, seed=21)
    packed = tmp_path / "tracking.log.2.gz"
    raw = tmp_path / "raw"
    write_log(raw, 300, seed=22)
    with gzip.open(packed, "wb") as out:
        out.write(raw.read_bytes())
    loader = Loader(datalake, batch_bytes=64 * 1024)
    first = loader.load_file(packed)
    assert first.counts == {"event": 300} and not first.already_loaded
    assert first.bytes_loaded == raw.stat().st_size  # offsets are uncompressed bytes
    assert loader.load_file(plain).counts == {"event": 400}
    assert _times(datalake) == sorted(_expected_times(packed) + _expected_times(plain))
    # The same content under another name (decompressed copy of the .gz) is recognised.
    again = loader.load_file(raw)
    assert again.already_loaded and again.bytes_loaded == 0
    assert loader.load_file(packed).already_loaded
    assert datalake.query_value("SELECT count() FROM openedx.events") == 700


@pytest.mark.parametrize("landed", [False, True])
def test_interrupted_chunk_is_replayed_with_its_own_range(datalake, tmp_path, landed):
    """Crash after the intent (insert landed or not); the file then grew; the replay uses the recorded range."""
    log = tmp_path / "tracking.log"
    write_log(log, 200, seed=23)
    content = log.read_bytes()
    fp = fingerprint(log)
    source = str(log)
    checkpoints = Checkpoints(datalake)
    cut = content.index(b"\n", len(content) // 2) + 1
    loader = Loader(datalake, batch_bytes=1 << 20)
    # First half loaded and committed; the next chunk announced, never inserted.
    with open(log, "rb") as handle:
        chunk = LineChunker(handle, 0, cut).next_chunk()
    assert chunk.end == cut
    loader.insert_encoded(encode_chunk(source, chunk), f"{fp}:0:{cut}")
    checkpoints.set(fp, source, cut, len(content))
    end = content.index(b"\n", cut + 1000) + 1
    checkpoints.write(fp, source, cut, end, len(content))
    if landed:
        with open(log, "rb") as handle:
            announced = LineChunker(handle, cut, end - cut, stop=end).next_chunk()
        assert (announced.start, announced.end) == (cut, end)
        loader.insert_encoded(encode_chunk(source, announced), f"{fp}:{cut}:{end}")
    assert datalake.query_value("SELECT count() FROM openedx.events") == content[:end if landed else cut].count(b"\n")
    with open(log, "ab") as out:  # the file grows before the restart
        out.write(b'{"name": "late", "time": "2026-04-01T00:00:00+00:00"}\n')
    result = loader.load_file(log)
    assert result.counts == {"event": 201}
    assert datalake.query_value("SELECT count() FROM openedx.events") == 201
    assert datalake.query_value("SELECT uniqExact(source_offset) FROM openedx.events") == 201


def test_interrupted_parallel_group_lands_each_chunk_once(datalake, tmp_path):
    """Two chunks inserted at once; the crash let only the second land. Replay adds the first only."""
    log = tmp_path / "tracking.log"
    write_log(log, 300, seed=24)
    content = log.read_bytes()
    fp, source = fingerprint(log), str(log)
    loader = Loader(datalake, batch_bytes=64 * 1024, parallel=2)
    with open(log, "rb") as handle:
        chunker = LineChunker(handle, 0, 64 * 1024)
        first, second = chunker.next_chunk(), chunker.next_chunk()
    Checkpoints(datalake).write(fp, source, 0, second.end, len(content), cuts=[first.end])
    loader.insert_encoded(encode_chunk(source, second), f"{fp}:{first.end}:{second.end}")
    landed = second.data.count(b"\n")
    assert datalake.query_value("SELECT count() FROM openedx.events") == landed
    result = loader.load_file(log)
    loader.close()
    assert result.counts == {"event": 300}
    assert datalake.query_value("SELECT count() FROM openedx.events") == 300
    assert _times(datalake) == _expected_times(log)


def test_parallel_backfill_matches_sequential(datalake, tmp_path):
    log = tmp_path / "tracking.log"
    write_log(log, 500, seed=25)
    loader = Loader(datalake, batch_bytes=32 * 1024, parallel=2)
    result = loader.load_file(log)
    loader.close()
    assert result.chunks > 10
    assert result.counts == {"event": 500}
    rows = datalake.query_rows(
        "SELECT argMax(offset, updated_at), argMax(pending_end, updated_at) FROM openedx._checkpoints "
        "WHERE fingerprint = {fp:String}", {"fp": fingerprint(log)})
    assert rows == [(log.stat().st_size, log.stat().st_size)]  # committed, nothing pending
    assert _times(datalake) == _expected_times(log)


def test_first_line_still_being_written_has_no_identity(tmp_path):
    path = tmp_path / "t.log"
    path.write_bytes(b'{"name": "x", "ti')
    assert fingerprint(path, complete=False) is None
    path.write_bytes(b'{"name": "x", "time": "2026-01-01T00:00:00+00:00"}\n{"na')
    identity = fingerprint(path, complete=False)
    path.write_bytes(b'{"name": "x", "time": "2026-01-01T00:00:00+00:00"}\n{"name": "y"}\n')
    assert fingerprint(path, complete=False) == identity is not None
