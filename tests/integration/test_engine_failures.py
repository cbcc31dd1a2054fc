"""No embedded insert reports success when the engine did not store it; the data directory is private.

chDB's streaming inserter (send_insert/append/finish) swallowed every failure after
parsing (a view's exception, a CHECK constraint, a full disk) and reported the rows
as written. These cases failed before the inserts went through INSERT ... FROM INFILE.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
import threading
from pathlib import Path

import pytest

from cairn.engine import EmbeddedEngine, infile
from cairn.engine.datadir import free_bytes, make_private, open_paths
from cairn.errors import EngineError
from support.disk import small_tmpfs


def _setup(engine, throw_at=5):
    engine.command("CREATE DATABASE IF NOT EXISTS openedx")
    engine.command("DROP TABLE IF EXISTS openedx.mv")
    engine.command("DROP TABLE IF EXISTS openedx.dst")
    engine.command("DROP TABLE IF EXISTS openedx.src")
    engine.command("CREATE TABLE openedx.src (n UInt64, pad String DEFAULT '') ENGINE = Null")
    engine.command("CREATE TABLE openedx.dst (n UInt64, pad String, CONSTRAINT not_seven CHECK n != 7) "
                   "ENGINE = MergeTree ORDER BY n SETTINGS non_replicated_deduplication_window = 1000")
    engine.command(f"CREATE MATERIALIZED VIEW openedx.mv TO openedx.dst "
                   f"AS SELECT throwIf(n = {throw_at}) + n AS n, pad FROM openedx.src")


def _rows(first, last, pad=b""):
    return b"".join(b"%d\t%s\n" % (i, pad) for i in range(first, last))


def _stored(engine):
    return engine.query_value("SELECT count() FROM openedx.dst")


def test_view_exception_raises_on_insert_raw(engine):
    _setup(engine)
    with pytest.raises(EngineError) as info:
        engine.insert_raw("openedx.src", [_rows(0, 10)], "TabSeparated", ["n", "pad"])
    assert info.value.code == 395 and "throwIf" in str(info.value) and "\n" not in str(info.value)
    assert _stored(engine) == 0


def test_view_exception_raises_on_session_insert(engine):
    _setup(engine)
    session = engine.open_session()
    try:
        with pytest.raises(EngineError) as info:
            session.insert("INSERT INTO openedx.src (n, pad)", "TabSeparated", iter([_rows(0, 10)]))
        assert info.value.code == 395
        assert _stored(engine) == 0
        # Other formats go the same way, and a good insert answers what the engine wrote.
        with pytest.raises(EngineError):
            session.insert("INSERT INTO openedx.src", "JSONEachRow", iter([b'{"n": 4}\n', b'{"n": 5}\n']))
        result = session.insert("INSERT INTO openedx.src SETTINGS insert_deduplicate = 1", "CSV",
                                iter([b"10,a\n11,", b"b\n"]))
        assert result.rows_written >= 2  # the Null table's rows and the view's
        assert _stored(engine) == 2
    finally:
        session.close()


def test_a_batch_fails_whole_nothing_partially_stored(engine):
    _setup(engine, throw_at=29_999)  # the last row of ~30 MiB
    data = [_rows(i, i + 1000, b"y" * 1000) for i in range(0, 30_000, 1000)]
    with pytest.raises(EngineError):
        engine.insert_raw("openedx.src", data, "TabSeparated", ["n", "pad"])
    assert _stored(engine) == 0


def test_check_constraint_raises(engine):
    _setup(engine)
    with pytest.raises(EngineError) as info:
        engine.insert_raw("openedx.src", b"6\t\n7\t\n8\t\n", "TabSeparated")
    assert info.value.code == 469
    assert _stored(engine) == 0


def test_producer_failing_mid_stream_stores_nothing(engine):
    _setup(engine, throw_at=10**9)

    def producer():
        yield _rows(100, 2000)
        yield b"2000\tpartial-li"
        raise OSError("source file vanished")

    with pytest.raises(OSError, match="vanished"):
        engine.insert_raw("openedx.src", producer(), "TabSeparated", ["n", "pad"])
    assert _stored(engine) == 0
    session = engine.open_session()
    try:
        for fmt, first in (("TabSeparated", _rows(100, 2000)), ("RowBinary", b"\x01" * 8 * 100)):
            def body(first=first):
                yield first
                raise ConnectionResetError("client went away")

            with pytest.raises(ConnectionResetError):
                session.insert("INSERT INTO openedx.src (n)" if fmt == "RowBinary" else "INSERT INTO openedx.src",
                               fmt, body())
            assert _stored(engine) == 0
    finally:
        session.close()


def _fifo_dirs():
    # This process's only: other processes (a parallel test run, a collector) have their own.
    return {p for p in os.listdir(tempfile.gettempdir()) if p.startswith(f"{infile.FIFO_PREFIX}{os.getpid()}-")}


def test_many_failing_inserts_leave_no_thread_or_fifo(engine):
    _setup(engine)
    session = engine.open_session()
    try:
        engine.insert_raw("openedx.src", b"1\t\n", "TabSeparated")  # connections and pools warmed up
        threads, fifos = set(threading.enumerate()), _fifo_dirs()
        for i in range(200):
            with pytest.raises(EngineError):
                if i % 4 == 0:  # fails before the engine opens the FIFO
                    engine.insert_raw("openedx.no_such_table", b"1\n", "TabSeparated")
                elif i % 4 == 1:
                    session.insert("INSERT INTO openedx.no_such_table", "TabSeparated", iter([b"1\n"]))
                elif i % 4 == 2:  # fails in a view, after reading
                    engine.insert_raw("openedx.src", _rows(0, 10), "TabSeparated", ["n", "pad"])
                else:  # fails parsing, with more data to come than the pipe holds
                    session.insert("INSERT INTO openedx.src", "TabSeparated",
                                   iter([b"x\n"] + [b"1\t" + b"y" * 65536 + b"\n"] * 64))
        # No thread started by the inserts is still alive (threads of earlier tests may end meanwhile).
        assert set(threading.enumerate()) - threads == set()
        assert _fifo_dirs() == fifos
        assert _stored(engine) == 1
    finally:
        session.close()


def test_large_tsv_insert_goes_as_several_atomic_statements(engine, monkeypatch):
    _setup(engine, throw_at=10**9)
    real = infile.statement_batches
    monkeypatch.setattr("cairn.engine.embedded.statement_batches",
                        lambda chunks, fmt: real(chunks, fmt, max_bytes=1 << 20, max_rows=3000))
    data = [_rows(i, i + 5000, b"z" * 100) for i in range(100, 20_100, 5000)]
    statements = []
    real_insert = infile.infile_insert
    monkeypatch.setattr("cairn.engine.embedded.infile_insert",
                        lambda run, head, fmt, batch, settings: statements.append(settings)
                        or real_insert(run, head, fmt, batch, settings))
    settings = {"insert_deduplication_token": "big"}
    engine.insert_raw("openedx.src", data, "TabSeparated", ["n", "pad"], settings=settings)
    assert _stored(engine) == 20_000
    assert len(statements) == 7  # 3000-row statements, each its own token
    assert [s.split("'")[1] for s in statements] == [f"big:{n}" for n in range(7)]
    engine.insert_raw("openedx.src", data, "TabSeparated", ["n", "pad"], settings=settings)
    assert _stored(engine) == 20_000  # the same data splits the same way: every statement deduplicated


# -- a full disk --------------------------------------------------------------

@pytest.fixture
def small_disk(tmp_path):
    """A 64 MiB tmpfs, unmounted afterwards (skipped when it cannot be mounted)."""
    with small_tmpfs(tmp_path, "64m") as mount:
        yield mount


def test_full_disk_raises_and_the_count_is_exact(small_disk):
    engine = EmbeddedEngine(small_disk / "data", "openedx")
    try:
        _setup(engine, throw_at=10**9)
        ballast = small_disk / "ballast"
        ballast.write_bytes(os.urandom(16 << 20))
        reported = 0
        batch = 2000
        error = None
        for k in range(1000):
            first = 100 + k * batch  # above the view's failing values
            rows = b"".join(b"%d\t%s\n" % (first + i, os.urandom(300).hex().encode()) for i in range(batch))
            try:
                engine.insert_raw("openedx.src", rows, "TabSeparated", ["n", "pad"])
            except EngineError as exc:
                error = exc
                break
            reported += batch
        assert error is not None, "64 MiB never filled up"
        assert error.code in (243, 76), str(error)
        assert _stored(engine) == reported
        print(f"full disk: reported {reported}, stored {_stored(engine)}, free {free_bytes(small_disk)}; {error}")
        ballast.unlink()
        engine.insert_raw("openedx.src", _rows(10**8, 10**8 + 100), "TabSeparated", ["n", "pad"])
        assert _stored(engine) == reported + 100
    finally:
        engine.close()


# -- a private data directory -------------------------------------------------

def _open_paths(root: Path) -> list[str]:
    found = []
    for path in [root, *root.rglob("*")]:
        mode = os.lstat(path).st_mode
        if not stat.S_ISLNK(mode) and mode & 0o077:
            found.append(f"{path} {stat.S_IMODE(mode):04o}")
    return found


def test_fresh_data_directory_is_private(datalake, config):
    from cairn.ingest.encoding import INGEST_COLUMNS

    datalake.insert_raw(f"`{datalake.database}`._ingest", b'x.log\t0\t{"event_type": "play_video", "time": "2024-01-01T00:00:00"}\n',
                        "TabSeparated", INGEST_COLUMNS)
    datalake.command("SYSTEM FLUSH LOGS")
    assert _open_paths(config.data_dir) == []
    assert stat.S_IMODE(os.stat(config.data_dir).st_mode) == 0o700
    assert open_paths(config.data_dir) == ([], 0)


def test_make_private_fixes_a_widened_directory(datalake, config):
    for path in [config.data_dir, *config.data_dir.rglob("*")]:
        if not path.is_symlink():
            os.chmod(path, 0o755 if path.is_dir() else 0o644)
    problems, total = open_paths(config.data_dir, limit=5)
    assert len(problems) == 5 and total > 5
    assert problems[0].endswith("(0755)")
    before = len(_open_paths(config.data_dir))
    assert make_private(config.data_dir) == before
    assert _open_paths(config.data_dir) == []
    assert open_paths(config.data_dir) == ([], 0)
    assert make_private(config.data_dir) == 0
    assert datalake.query_value("SELECT count() FROM system.tables WHERE database = 'openedx'") > 0
    assert abs(free_bytes(config.data_dir) - shutil.disk_usage(config.data_dir).free) < 64 << 20
    assert free_bytes(config.data_dir / "not" / "yet") > 0  # the nearest existing parent's file system
