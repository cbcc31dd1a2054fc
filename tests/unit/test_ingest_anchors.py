"""Which stream a file is (cairn/ingest/identity.py) and the file bytes each chunk ends with, without an engine."""

from __future__ import annotations

import gzip
import io
import random

from cairn.ingest.checkpoints import Checkpoint
from cairn.ingest.chunks import LineChunker
from cairn.ingest.files import ANCHOR_BYTES, anchor_of, read_window
from cairn.ingest.identity import first_line_of, is_stream


def _lines(seed: int, n: int, first: bytes = b"same first line\n") -> bytes:
    rnd = random.Random(seed)
    return first + b"".join(b"event %d %s\n" % (i, b"x" * rnd.randrange(0, 3000)) for i in range(n))


def _window(data: bytes, compressed: bool = False):
    handle = gzip.GzipFile(fileobj=io.BytesIO(gzip.compress(data))) if compressed else io.BytesIO(data)
    return lambda offset: read_window(handle, offset)


def _loaded(data: bytes, offset: int) -> Checkpoint:
    return Checkpoint("h", offset=offset, pending_end=offset,
                      anchor=anchor_of(data[max(0, offset - ANCHOR_BYTES):offset]))


def test_every_chunk_carries_the_file_bytes_before_its_end():
    # Ordinary lines, a line longer than max_line (cut before sending, its end read anyway),
    # and a last line without newline; from 0 and from a later start; several batch sizes.
    data = _lines(1, 300) + b"y" * 300_000 + b"\n" + _lines(2, 20, b"") + b"no newline"
    for start in (0, data.index(b"event 17 ") , data.index(b"event 250 ")):
        for batch in (1000, 65536, 1 << 20):
            chunker = LineChunker(io.BytesIO(data), start, batch, max_line=100_000)
            ends = []
            while (chunk := chunker.next_chunk(final=True)) is not None:
                assert chunk.tail == data[max(0, chunk.end - ANCHOR_BYTES):chunk.end]
                ends.append(chunk.end)
            assert ends[-1] == len(data)


def test_same_file_grown_renamed_or_compressed_is_the_same_stream():
    data = _lines(1, 200)
    loaded = _loaded(data, data.index(b"event 150 "))
    assert is_stream(loaded, _window(data), 16)  # the same bytes: already loaded
    assert is_stream(loaded, _window(data + _lines(3, 10, b"")), 16)  # grown: continue there
    assert is_stream(loaded, _window(data, compressed=True), 16)  # its gzip copy


def test_other_file_with_the_same_first_line_is_not():
    one, other = _lines(1, 200), _lines(2, 200)
    assert one[:16] == other[:16] and one != other
    assert not is_stream(_loaded(one, one.index(b"event 150 ")), _window(other), 16)
    assert not is_stream(_loaded(one, len(one)), _window(other), 16)


def test_shorter_file_is_the_stream_only_when_it_is_its_first_line():
    data = _lines(1, 200)
    loaded = _loaded(data, len(data))
    assert is_stream(loaded, _window(data[:16]), 16)  # the first line alone: the stream's beginning
    assert not is_stream(loaded, _window(data[:5000]), 16)  # a longer prefix: cannot be told, a new stream
    assert not is_stream(loaded, _window(data[:16]), None)  # a followed file may still grow into anything


def test_streams_without_anchor_match_by_first_line():
    data = _lines(1, 50)
    assert is_stream(Checkpoint("h", offset=900), _window(_lines(2, 50)), 16)  # a row from before anchors
    assert is_stream(Checkpoint("h", offset=0, pending_end=800), _window(_lines(2, 50)), 16)  # nothing loaded yet
    assert first_line_of("abc~2") == "abc" == first_line_of("abc")
    assert _window(data)(len(data) + 1) is None and _window(data)(0) == b""
