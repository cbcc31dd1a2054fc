"""Cutting byte streams into chunks of whole lines (cairn/ingest/chunks.py), without an engine."""

from __future__ import annotations

import gzip
import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cairn.ingest.chunks import Chunk, ExplicitChunk, LineChunker, chunks_of_range, cut_long_lines, prefetch


def _all_chunks(data: bytes, batch: int, start: int = 0, stop: int | None = None, max_line: int = 1 << 20,
                final: bool = True) -> list[Chunk]:
    chunker = LineChunker(io.BytesIO(data), start, batch, stop=stop, max_line=max_line)
    chunks = []
    while (chunk := chunker.next_chunk(final=final)) is not None:
        chunks.append(chunk)
    return chunks


def test_whole_lines_only_and_partial_line_held_back():
    data = b"one\ntwo\nthr"
    chunker = LineChunker(io.BytesIO(data), 0, 4)
    first = chunker.next_chunk()
    assert (first.start, first.end, first.data) == (0, 4, b"one\n")
    second = chunker.next_chunk()
    assert (second.start, second.end, second.data) == (4, 8, b"two\n")
    assert chunker.next_chunk() is None  # "thr" has no newline yet
    assert chunker.buffered == 3
    last = chunker.next_chunk(final=True)
    assert (last.start, last.end, last.data) == (8, 11, b"thr\n")  # a newline is added, not counted
    assert chunker.buffered == 0
    assert chunker.next_chunk(final=True) is None


def test_growing_stream_continues_where_the_partial_line_was():
    handle = io.BytesIO(b"a\nbb")
    chunker = LineChunker(handle, 0, 64)
    assert chunker.next_chunk().data == b"a\n"
    assert chunker.next_chunk() is None
    position = handle.tell()  # a writer appends; our read position stays where it was
    handle.seek(0, io.SEEK_END)
    handle.write(b"b\ncc\n")
    handle.seek(position)
    chunk = chunker.next_chunk()
    assert (chunk.start, chunk.end, chunk.data) == (2, 9, b"bbb\ncc\n")


def test_batch_limits_chunk_size_but_never_splits_a_line():
    lines = [b"x" * n + b"\n" for n in (3, 10, 1, 7, 2, 2, 2)]
    chunks = _all_chunks(b"".join(lines), batch=8)
    for chunk in chunks:
        assert chunk.data.endswith(b"\n")
        # A chunk holds at most what was buffered plus one read of `batch` bytes.
        assert len(chunk.data) <= 2 * 8 + 10
    assert b"".join(c.data for c in chunks) == b"".join(lines)


def test_long_line_alone_is_cut_and_its_range_covers_the_whole_line():
    data = b"short\n" + b"L" * 50 + b"\nafter\n"
    chunks = _all_chunks(data, batch=8, max_line=16)
    assert b"".join(c.data for c in chunks).split(b"\n")[:-1] == [b"short", b"L" * 16, b"after"]
    long_chunk = next(c for c in chunks if c.data.startswith(b"L"))
    assert (long_chunk.start, long_chunk.end) == (6, 57)
    assert long_chunk.data == b"L" * 16 + b"\n"
    assert chunks[-1].end == len(data)


def test_long_unterminated_last_line_is_cut_only_when_final():
    data = b"ok\n" + b"Z" * 40
    chunker = LineChunker(io.BytesIO(data), 0, 8, max_line=10)
    assert chunker.next_chunk().data == b"ok\n"
    assert chunker.next_chunk() is None  # still inside the long line, no end yet
    last = chunker.next_chunk(final=True)
    assert (last.start, last.end, last.data) == (3, 43, b"Z" * 10 + b"\n")


def test_long_line_inside_a_multi_line_chunk_keeps_offsets():
    lines = [b"a" * 5, b"b" * 30, b"c" * 2]
    data = b"\n".join(lines) + b"\n"
    chunk = cut_long_lines(Chunk(100, 100 + len(data), data), max_line=10)
    assert isinstance(chunk, ExplicitChunk)
    assert chunk.offsets == [100, 106, 137]
    assert chunk.cut_lines == [b"a" * 5, b"b" * 10, b"c" * 2]
    assert chunk.lines == 3


def test_cut_long_lines_leaves_short_chunks_alone():
    chunk = Chunk(0, 6, b"ab\ncd\n")
    assert cut_long_lines(chunk, max_line=2) is chunk


def test_stop_replays_exactly_a_range():
    data = b"".join(b"line %d\n" % i for i in range(20))
    first = _all_chunks(data, batch=16)
    target = first[3]
    replay = _all_chunks(data, batch=16, start=target.start, stop=target.end)
    assert b"".join(c.data for c in replay) == data[target.start:target.end]
    assert replay[0].start == target.start and replay[-1].end == target.end


def test_chunks_of_range_reads_plain_and_gzip_files_the_same(tmp_path):
    data = b"".join(b'{"n": %d}\n' % i for i in range(50))
    plain, packed = tmp_path / "t.log", tmp_path / "t.log.gz"
    plain.write_bytes(data)
    packed.write_bytes(gzip.compress(data))
    for path in (plain, packed):
        read = chunks_of_range(path, 64)
        assert b"".join(c.data for c in read(100, 300)) == data[100:300]


def test_chunks_of_range_accepts_an_opener():
    data = b"a\nb\nc\n"
    read = chunks_of_range(lambda: io.BytesIO(data), 2)
    assert [(c.start, c.end) for c in read(2, 6)] == [(2, 4), (4, 6)]


def test_prefetch_hands_out_ranges_counts_and_encodings_but_not_bytes():
    data = b"".join(b"row %d\n" % i for i in range(30))
    items = list(prefetch(io.BytesIO(data), 0, 32, lambda chunk: chunk.data.upper(), depth=2))
    expected = _all_chunks(data, batch=32)
    assert [(c.start, c.end, c.lines) for c, _ in items] == [(c.start, c.end, c.lines) for c in expected]
    assert all(chunk.data == b"" for chunk, _ in items)
    assert b"".join(encoded for _, encoded in items) == data.upper()


def test_prefetch_reraises_errors_of_the_reader_thread():
    def encode(chunk: Chunk) -> bytes:
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        list(prefetch(io.BytesIO(b"a\nb\n"), 0, 4, encode))


@settings(max_examples=200, deadline=None)
@given(lines=st.lists(st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"")), max_size=30),
       tail=st.binary(max_size=20).map(lambda b: b.replace(b"\n", b"")),
       batch=st.integers(1, 64), max_line=st.integers(1, 50))
def test_chunks_tile_the_stream_whatever_the_bytes(lines, tail, batch, max_line):
    data = b"".join(line + b"\n" for line in lines) + tail
    chunks = _all_chunks(data, batch=batch, max_line=max_line)
    # Consecutive ranges covering every byte, each ending a line.
    assert [c.start for c in chunks] == ([0] + [c.end for c in chunks[:-1]] if chunks else [])
    assert (chunks[-1].end if chunks else 0) == len(data)
    expected = [line[:max_line] for line in lines] + ([tail[:max_line]] if tail else [])
    got = []
    for chunk in chunks:
        assert chunk.data.endswith(b"\n")
        got += chunk.cut_lines if isinstance(chunk, ExplicitChunk) else chunk.data.split(b"\n")[:-1]
    assert got == expected
    assert sum(c.lines for c in chunks) == len(expected)


class BlockReader:
    """A reader with ``read`` only, in small blocks (like stdin's queue): no ``readinto``."""

    def __init__(self, data: bytes, block: int):
        self.data, self.block, self.position = data, block, 0

    def seek(self, offset: int) -> int:
        self.position = offset
        return offset

    def read(self, size: int) -> bytes:
        taken = self.data[self.position:self.position + min(size, self.block)]
        self.position += len(taken)
        return taken


@given(lines=st.lists(st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"")), max_size=30),
       batch=st.integers(1, 64), block=st.integers(1, 16))
def test_a_reader_without_readinto_gives_the_same_chunks(lines, batch, block):
    data = b"".join(line + b"\n" for line in lines)
    chunker = LineChunker(BlockReader(data, block), 0, batch)  # type: ignore[arg-type]
    got = []
    while (chunk := chunker.next_chunk(final=True)) is not None:
        got.append((chunk.start, chunk.end, bytes(chunk.data)))
    joined = b"".join(piece for _, _, piece in got)
    assert joined == data
    assert [start for start, _, _ in got] == ([0] + [end for _, end, _ in got[:-1]] if got else [])


def test_a_chunk_is_the_buffer_it_was_read_into():
    # 32 MiB of lines cost 32 MiB in this process, not the three copies of concatenating
    # and slicing: the read buffer is cut in place and handed out as the chunk's data.
    data = b"".join(b"line %d\n" % n for n in range(1000))
    chunker = LineChunker(io.BytesIO(data + b"partial"), 0, len(data) + 3)
    chunk = chunker.next_chunk()
    assert isinstance(chunk.data, bytearray) and chunk.data == data
    assert chunker.pending == b"par" and isinstance(chunker.pending, bytes)


@given(lengths=st.lists(st.integers(0, 30), max_size=20), max_line=st.integers(1, 25))
def test_the_long_line_check_agrees_with_splitting(lengths, max_line):
    from cairn.ingest.chunks import _has_long_line

    data = b"".join(b"x" * n + b"\n" for n in lengths)
    assert _has_long_line(data, max_line) == any(n > max_line for n in lengths)
    assert _has_long_line(bytearray(data), max_line) == any(n > max_line for n in lengths)
