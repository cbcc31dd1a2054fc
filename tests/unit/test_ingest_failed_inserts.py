"""A failed insert is never counted: Stream positions, InsertFailed, the collector's retry."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from cairn.errors import CairnError, EngineError, EngineUnavailable
from cairn.ingest.checkpoints import Checkpoint, InsertFailed, Stream
from cairn.ingest.chunks import Chunk
from cairn.ingest.collector import Collector
from cairn.ingest.status import _live_rows, _waiting_reason

CAUSE = EngineError("Code: 243. DB::Exception: Cannot reserve 1.00 MiB:\n  not enough space. (NOT_ENOUGH_SPACE)", 243)


class FailingLoader:
    """Records checkpoint rows; inserts raise ``error`` while it is set."""

    def __init__(self, error):
        self.error, self.log = error, []
        self.checkpoints = SimpleNamespace(
            read=lambda fp: Checkpoint(fp),
            write=lambda fp, source, offset, pending_end, size, cuts=(), anchor="": self.log.append(("intent", offset,
                                                                                          pending_end)),
            set=lambda fp, source, offset, size, anchor="": self.log.append(("commit", offset)))

    def insert_encoded(self, buffers, token):
        if self.error:
            raise self.error
        self.log.append(("insert", token))

    def insert_parallel(self, inserts):
        self.insert_encoded(inserts[0][0], inserts[0][1])


def test_a_failed_insert_leaves_the_stream_before_it_and_the_intent_in_place():
    loader = FailingLoader(None)
    stream = Stream(loader, "fp", "/logs/tracking.log")
    stream.send(Chunk(0, 4, b"one\n"), 8)
    loader.error = CAUSE
    with pytest.raises(InsertFailed) as caught:
        stream.send(Chunk(4, 8, b"two\n"), 8)
    assert (stream.sent_end, stream.offset) == (4, 0)  # not counted
    assert loader.log[-1] == ("intent", 4, 8)  # replayed with the same token by the next run
    failure = caught.value
    assert isinstance(failure, EngineError) and isinstance(failure, CairnError) and failure.code == 243
    assert str(failure) == ("/logs/tracking.log: the engine did not store bytes 4-8: Code: 243. DB::Exception: "
                            "Cannot reserve 1.00 MiB: not enough space. (NOT_ENOUGH_SPACE); nothing from byte 4 on "
                            "is counted")
    assert str(failure.with_hint("run it again")).endswith("is counted; run it again")
    with pytest.raises(InsertFailed, match="bytes 4-12"):
        stream.send_group([Chunk(4, 8, b"two\n"), Chunk(8, 12, b"six\n")], [b"", b""], 12)
    assert stream.sent_end == 4
    loader.error = None
    stream.send(Chunk(4, 8, b"two\n"), 8)  # the same range again, once the cause is gone
    assert stream.sent_end == 8


def test_an_unreachable_engine_stays_an_unreachable_engine():
    stream = Stream(FailingLoader(EngineUnavailable("cannot reach ClickHouse at 127.0.0.1:1")), "fp", "src")
    with pytest.raises(EngineUnavailable) as caught:
        stream.send(Chunk(0, 4, b"one\n"), 4)
    assert not isinstance(caught.value, InsertFailed)


def test_the_collector_retries_a_failed_insert_with_backoff_and_says_so():
    engine = SimpleNamespace(database="openedx")
    messages: list[str] = []
    collector = Collector(engine, [], echo=messages.append)
    sleeps: list[float] = []
    collector._sleep = sleeps.append
    failure = InsertFailed("src", 0, 4, CAUSE)
    attempts = iter([failure, failure, "done"])

    def action():
        outcome = next(attempts)
        if isinstance(outcome, Exception):
            assert collector.retries < 3
            raise outcome
        return outcome

    assert collector._retry(action) == "done"
    assert sleeps == [0.1, 0.2] and collector.retries == 2
    assert messages == [f"insert failed, retrying with backoff: {failure}", "engine back, delivering"]
    assert collector.failure == "insert failed" and collector.last_error == str(failure)


def test_status_tells_why_a_live_collector_delivers_nothing():
    source = {"source": "/l", "state": "following", "position": 4, "lag_bytes": 4, "lag_seconds": 1.0}
    live = {"engine_ok": False, "failure": "insert failed", "last_error": "x: the engine did not store",
            "paused_reason": "", "sources": [source]}
    assert _waiting_reason(live) == "insert failed, retrying: x: the engine did not store"
    assert _live_rows(live, {})[0]["state"] == "retrying failed insert"
    paused = {**live, "engine_ok": True, "paused_reason": "only 5 MB free"}
    assert _waiting_reason(paused) == "paused: only 5 MB free"
    assert _live_rows(paused, {})[0]["state"] == "paused (free-space reserve)"
    old = {"engine_ok": False, "last_error": "cannot reach", "sources": [source]}  # before `failure` existed
    assert _waiting_reason(old) == "engine unavailable, retrying: cannot reach"
    assert _live_rows(old, {})[0]["state"] == "waiting for engine"
    assert _waiting_reason({"engine_ok": True, "sources": []}) == ""
