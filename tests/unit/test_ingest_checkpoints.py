"""The exactly-once protocol of cairn/ingest/checkpoints.py against a recording fake engine side.

The real deduplication is ClickHouse's (tests/integration/test_backfill.py); here the
order of intent rows, inserts and tokens is checked without an engine.
"""

from __future__ import annotations

import pytest

from cairn.ingest.checkpoints import Checkpoint, Stream, chunk_token
from cairn.ingest.chunks import Chunk
from cairn.ingest.encoding import CHUNKS, ROWS, encode_chunk, encode_range


class FakeCheckpoints:
    def __init__(self, current: Checkpoint):
        self.current = current
        self.log: list[tuple] = []
        self.anchors: list[tuple[int, str]] = []  # (offset, anchor) of every row written

    def read(self, fp: str) -> Checkpoint:
        return self.current

    def write(self, fp, source, offset, pending_end, size, cuts=(), anchor=""):
        self.log.append(("intent", offset, max(pending_end, offset), list(cuts), size))
        self.anchors.append((offset, anchor))

    def set(self, fp, source, offset, size, anchor=""):
        self.log.append(("commit", offset, size))
        self.anchors.append((offset, anchor))


class FakeLoader:
    def __init__(self, current: Checkpoint):
        self.checkpoints = FakeCheckpoints(current)
        self.log = self.checkpoints.log

    def insert_encoded(self, encoded, token):
        self.log.append(("insert", token, encoded))

    def insert_parallel(self, inserts):
        for encoded, token in inserts:
            self.log.append(("insert", token, encoded))


def test_send_writes_the_intent_before_the_insert_and_the_next_intent_commits():
    loader = FakeLoader(Checkpoint("fp"))
    stream = Stream(loader, "fp", "src")
    assert stream.open() == 0
    first, second = Chunk(0, 4, b"one\n"), Chunk(4, 8, b"two\n")
    stream.send(first, 8)
    stream.send(second, 8)
    stream.commit()
    assert loader.log == [
        ("intent", 0, 4, [], 8), ("insert", "fp:0:4", encode_chunk("src", first)),
        ("intent", 4, 8, [], 8), ("insert", "fp:4:8", encode_chunk("src", second)),
        ("commit", 8, 8)]
    stream.commit()  # nothing new: no row
    assert len(loader.log) == 5


def test_a_chunk_that_does_not_start_at_the_position_is_refused():
    stream = Stream(FakeLoader(Checkpoint("fp", 10, 10)), "fp", "src")
    stream.open()
    with pytest.raises(RuntimeError, match="stream is at 10"):
        stream.send(Chunk(0, 4, b"one\n"), 4)


def test_open_replays_each_pending_chunk_with_its_own_token_then_commits():
    pending = Checkpoint("fp", offset=4, pending_end=12, cuts=[2, 8, 12, 20], size=12)
    loader = FakeLoader(pending)
    data = b"one\ntwo\nsix\n"
    reads = []

    def reader(start, end):
        reads.append((start, end))
        return [Chunk(start, end, data[start:end])]

    stream = Stream(loader, "fp", "src")
    assert stream.open(reader) == 12
    assert reads == [(4, 8), (8, 12)]  # cuts outside the pending range are ignored
    assert [entry[:2] for entry in loader.log] == [("insert", "fp:4:8"), ("insert", "fp:8:12"), ("commit", 12)]
    assert loader.log[0][2] == encode_chunk("src", Chunk(4, 8, b"two\n"))
    assert loader.log[0][2].table == "_ingest_chunks"


@pytest.mark.parametrize("encoding, table", [(ROWS, "_ingest"), (CHUNKS, "_ingest_chunks")])
def test_a_replay_goes_the_way_its_first_attempt_went(encoding, table):
    # An intent written before chunks existed was sent as rows into _ingest: its replay
    # must take the same chain of views, or deduplication would not recognise it.
    loader = FakeLoader(Checkpoint("fp", offset=0, pending_end=8, size=8, encoding=encoding))
    data = b"one\ntwo\n"
    chunks = [Chunk(0, 4, data[:4]), Chunk(4, 8, data[4:])]  # cut smaller than the first attempt was
    Stream(loader, "fp", "src").open(lambda start, end: chunks)
    insert = loader.log[0]
    assert insert[:2] == ("insert", "fp:0:8")
    assert insert[2].table == table and insert[2] == encode_range("src", chunks, encoding)

def test_open_without_reader_keeps_the_committed_offset():
    loader = FakeLoader(Checkpoint("fp", offset=4, pending_end=12))
    stream = Stream(loader, "fp", "src")
    assert stream.open() == 4
    assert loader.log == []


def test_a_group_is_one_intent_with_its_cuts_and_one_insert_per_chunk():
    loader = FakeLoader(Checkpoint("fp"))
    stream = Stream(loader, "fp", "src")
    stream.open()
    chunks = [Chunk(0, 2, b"a\n"), Chunk(2, 4, b"b\n"), Chunk(4, 6, b"c\n")]
    stream.send_group(chunks, [encode_chunk("src", c) for c in chunks], 6)
    assert loader.log[0] == ("intent", 0, 6, [2, 4], 6)
    assert [entry[1] for entry in loader.log[1:]] == ["fp:0:2", "fp:2:4", "fp:4:6"]
    assert (stream.offset, stream.sent_end, stream.dirty) == (0, 6, True)


def test_pending_ranges_and_tokens():
    assert Checkpoint("fp", 0, 0).pending_ranges() == [(0, 0)]
    assert not Checkpoint("fp", 5, 5).has_intent
    assert Checkpoint("fp", 0, 9, cuts=[3, 6]).pending_ranges() == [(0, 3), (3, 6), (6, 9)]
    assert chunk_token("abc", 3, 9) == "abc:3:9"


def test_every_row_records_the_anchor_of_its_offset():
    from cairn.ingest.files import anchor_of

    loader = FakeLoader(Checkpoint("fp"))
    stream = Stream(loader, "fp", "src")
    stream.open()
    stream.send(Chunk(0, 4, b"one\n", tail=b"one\n"), 8)
    stream.send(Chunk(4, 8, b"two\n", tail=b"one\ntwo\n"), 8)
    stream.commit()
    assert loader.checkpoints.anchors == [(0, ""), (4, anchor_of(b"one\n")), (8, anchor_of(b"one\ntwo\n"))]
