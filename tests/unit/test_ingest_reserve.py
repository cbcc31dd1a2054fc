"""The free-space reserve of cairn/ingest/reserve.py and the collector's pause, on a faked free space."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from cairn.config import load_config
from cairn.engine.contract import Capabilities
from cairn.ingest import reserve as reserve_module
from cairn.ingest.collector import Collector
from cairn.ingest.reserve import DiskReserve, DiskReserveLow, disk_reserve, min_free_bytes

MIB = 1024 * 1024


def caps(in_process=False, via_serve=False) -> Capabilities:
    return Capabilities(in_process=in_process, over_http=not in_process, via_serve=via_serve, has_rbac=False,
                        parallel_inserts=False)


def config_of(data_dir, **values):
    """A real configuration (validated like a user's) with ``data_dir`` and ``values``."""
    return load_config(None, {"data_dir": str(data_dir), **{k: str(v) for k, v in values.items()}}, environ={})


def test_below_the_reserve_says_how_much_is_free_and_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setattr(reserve_module, "free_bytes", lambda path: 100 * MIB)
    reserve = DiskReserve(tmp_path, 256 * MIB)
    assert reserve.shortfall() == f"only 100 MB free on the file system of {tmp_path} " \
                                  "(reserve collector.min_free_mb = 256)"
    with pytest.raises(DiskReserveLow, match="free some space .* run the same command again"):
        reserve.check()
    monkeypatch.setattr(reserve_module, "free_bytes", lambda path: 256 * MIB)
    assert reserve.shortfall() is None
    reserve.check()


def test_the_next_batch_must_fit_above_the_reserve(tmp_path, monkeypatch):
    # The engine reserves about the batch's raw size per table it writes: at 61 MB free
    # with a 60 MB reserve, a 32 MiB batch would fail half-way at the engine's limit.
    monkeypatch.setattr(reserve_module, "free_bytes", lambda path: 61 * MIB)
    reserve = DiskReserve(tmp_path, 60 * MIB)
    assert reserve.shortfall() is None
    assert reserve.shortfall(32 * MIB) == f"only 61 MB free on the file system of {tmp_path} " \
                                          "(reserve collector.min_free_mb = 60, plus 32 MB for the next batch)"
    monkeypatch.setattr(reserve_module, "free_bytes", lambda path: 92 * MIB)
    assert reserve.shortfall(32 * MIB) is None


def test_space_the_engine_holds_for_its_merges_is_not_free_for_the_next_batch(tmp_path, monkeypatch):
    # A CI run passed the disk's own check at 62 MB free while merges held 19 MB of it:
    # the batch's 36 MiB part then failed at the engine's reservation.
    monkeypatch.setattr(reserve_module, "free_bytes", lambda path: 66 * MIB)
    held = [19 * MIB]
    reserve = DiskReserve(tmp_path, 30 * MIB, lambda: held[0])
    assert reserve.shortfall(32 * MIB) == (
        f"only 66 MB free on the file system of {tmp_path}, 19 MB of it held by the engine's merges "
        "(reserve collector.min_free_mb = 30, plus 32 MB for the next batch)")
    held[0] = 0
    assert reserve.shortfall(32 * MIB) is None


def test_far_from_the_reserve_the_engine_is_not_asked(tmp_path, monkeypatch):
    asked = []
    reserve = DiskReserve(tmp_path, 30 * MIB, lambda: asked.append(1) or 0)
    monkeypatch.setattr(reserve_module, "free_bytes", lambda path: 2 * 62 * MIB)  # twice the 62 MB needed
    assert reserve.shortfall(32 * MIB) is None and asked == []
    monkeypatch.setattr(reserve_module, "free_bytes", lambda path: 2 * 62 * MIB - 1)
    assert reserve.shortfall(32 * MIB) is None and asked == [1]


def test_an_engine_that_cannot_say_what_it_holds_leaves_the_disks_figure(tmp_path, monkeypatch):
    from cairn.errors import EngineUnavailable

    def unreachable() -> int:
        raise EngineUnavailable("cairn serve is restarting")

    monkeypatch.setattr(reserve_module, "free_bytes", lambda path: 100 * MIB)
    assert DiskReserve(tmp_path, 30 * MIB, unreachable).shortfall(32 * MIB) is None
    assert DiskReserve(tmp_path, 90 * MIB, unreachable).shortfall(32 * MIB).startswith("only 100 MB free")


def test_the_reserve_asks_the_engine_what_it_holds(tmp_path):
    asked = []

    def query(sql):
        asked.append(sql)
        return SimpleNamespace(rows=[(5 * MIB,)])

    engine = SimpleNamespace(capabilities=caps(in_process=True), query=query)
    reserve = disk_reserve(engine, config_of(tmp_path))
    assert reserve.engine_reserved() == 5 * MIB
    assert "unreserved_space" in asked[0] and "system.disks" in asked[0]


def test_a_folder_not_created_yet_is_measured_on_its_parent_file_system(tmp_path):
    assert DiskReserve(tmp_path / "not-yet" / "data", 1).shortfall() is None
    assert DiskReserve(tmp_path / "not-yet", 1 << 62).shortfall().startswith("only ")


def test_reserve_only_where_the_data_directory_is_on_this_machine(tmp_path):
    config = config_of(tmp_path)
    assert disk_reserve(SimpleNamespace(capabilities=caps()), config) is None  # a remote server's disks
    assert disk_reserve(SimpleNamespace(capabilities=caps(in_process=True)), config) == \
        DiskReserve(tmp_path, 256 * MIB)
    assert disk_reserve(SimpleNamespace(capabilities=caps(via_serve=True)),
                        config_of(tmp_path, **{"collector.min_free_mb": 10})) == DiskReserve(tmp_path, 10 * MIB)
    assert disk_reserve(SimpleNamespace(capabilities=caps(in_process=True)),
                        config_of(tmp_path, **{"collector.min_free_mb": 0})) is None  # 0 turns it off
    embedded = SimpleNamespace(capabilities=caps(in_process=True), data_dir=tmp_path / "own")
    assert disk_reserve(embedded) == DiskReserve(tmp_path / "own", 256 * MIB)  # no config: the engine's
    assert min_free_bytes(None) == 256 * MIB


class ScriptedReserve:
    """Shortfalls in turn, then room."""

    def __init__(self, *reasons):
        self.reasons = list(reasons)

    def shortfall(self):
        return self.reasons.pop(0) if self.reasons else None


def collector(reserve) -> Collector:
    messages: list[str] = []
    engine = SimpleNamespace(database="openedx", capabilities=caps(in_process=True))
    made = Collector(engine, [], reserve=reserve, echo=messages.append)
    made.sleeps = []
    made._sleep = made.sleeps.append  # the backoff, without waiting
    made.messages = messages
    return made


def test_collector_pauses_with_backoff_says_why_once_and_resumes():
    c = collector(ScriptedReserve("only 5 MB free", "only 4 MB free", "only 6 MB free"))
    seen = []
    c._write_state = lambda force=False, running=True: seen.append(c.paused_reason)
    c._wait_for_space()
    assert c.sleeps == [0.5, 1.0, 2.0]
    assert c.messages == ["paused, nothing is sent until space is freed: only 5 MB free",
                          "disk space back, resuming"]
    assert seen == ["only 5 MB free", "only 4 MB free", "only 6 MB free", ""]  # the latest figure shown
    assert c.paused_reason == "" and c.state()["paused_reason"] == ""


def test_collector_without_a_reserve_never_pauses():
    c = collector(None)
    c._wait_for_space()
    assert c.sleeps == [] and c.messages == []
