"""Log files on disk (cairn/ingest/files.py): gzip, fingerprints, sizes, JSON documents."""

from __future__ import annotations

import gzip
import json
import os

import pytest

from cairn.errors import CairnError
from cairn.ingest.files import (FINGERPRINT_BYTES, backfill_files, current_size, document_events, document_fingerprint,
                                fingerprint, fingerprint_of_head, is_gzip, open_log, uncompressed_size)


def test_fingerprint_is_the_first_line_and_survives_rename_and_gzip(tmp_path):
    plain = tmp_path / "tracking.log"
    plain.write_bytes(b'{"first": 1}\n{"second": 2}\n')
    rotated = tmp_path / "tracking.log.1.gz"
    rotated.write_bytes(gzip.compress(plain.read_bytes() + b'{"third": 3}\n'))
    assert fingerprint(plain) == fingerprint(rotated)
    assert len(fingerprint(plain)) == 32
    other = tmp_path / "other.log"
    other.write_bytes(b'{"first": 2}\n{"second": 2}\n')
    assert fingerprint(other) != fingerprint(plain)


def test_fingerprint_of_empty_file_is_none(tmp_path):
    empty = tmp_path / "empty.log"
    empty.write_bytes(b"")
    assert fingerprint(empty) is None


def test_unfinished_first_line_has_no_fingerprint_until_complete():
    assert fingerprint_of_head(b'{"half', complete=False) is None
    assert fingerprint_of_head(b'{"half', complete=True) is not None
    assert fingerprint_of_head(b'{"half"}\n{"x', complete=False) == fingerprint_of_head(b'{"half"}\n', complete=True)
    # A first line longer than the head is identified by the head, finished or not.
    long_head = b"x" * (FINGERPRINT_BYTES + 10)
    assert fingerprint_of_head(long_head, complete=False) == fingerprint_of_head(long_head[:FINGERPRINT_BYTES])


def test_gzip_is_told_by_magic_not_name(tmp_path):
    disguised = tmp_path / "tracking.log"
    disguised.write_bytes(gzip.compress(b"line\n"))
    named = tmp_path / "plain.gz"
    named.write_bytes(b"line\n")
    assert is_gzip(disguised) and not is_gzip(named)
    with open_log(disguised) as handle:
        assert handle.read() == b"line\n"
    with open_log(named) as handle:
        assert handle.read() == b"line\n"


def test_uncompressed_size(tmp_path):
    data = b"abc\n" * 1000
    packed = tmp_path / "a.gz"
    packed.write_bytes(gzip.compress(data))
    plain = tmp_path / "a.log"
    plain.write_bytes(data)
    assert uncompressed_size(packed) == len(data) != packed.stat().st_size
    assert uncompressed_size(plain) == len(data)


def test_current_size_of_plain_gzip_and_missing(tmp_path):
    plain = tmp_path / "a.log"
    plain.write_bytes(b"12345")
    packed = tmp_path / "b.gz"
    packed.write_bytes(gzip.compress(b"12345"))
    assert current_size(str(plain), 99) == 5
    assert current_size(str(packed), 99) == 99
    assert current_size(str(tmp_path / "gone.log"), 42) == 42


def test_backfill_files_expands_folders_and_sorts_oldest_first(tmp_path):
    folder = tmp_path / "logs"
    folder.mkdir()
    (folder / "sub").mkdir()
    newest, oldest, middle = folder / "a.log", folder / "b.log", tmp_path / "c.log"
    for mtime, path in enumerate((oldest, middle, newest)):
        path.write_bytes(b"x\n")
        os.utime(path, (1_000_000 + mtime, 1_000_000 + mtime))
    assert backfill_files([folder, middle]) == [oldest, middle, newest]
    with pytest.raises(CairnError, match="no such file"):
        backfill_files([tmp_path / "missing.log"])


@pytest.mark.parametrize("document, expected", [
    ({"name": "a", "data": {}}, [{"name": "a", "data": {}}]),
    ([{"event_type": "x"}, {"event_type": "y"}], [{"event_type": "x"}, {"event_type": "y"}]),
    ({"one": {"name": "a"}, "two": {"name": "b"}}, [{"name": "a"}, {"name": "b"}]),
])
def test_json_documents_give_their_events(tmp_path, document, expected):
    path = tmp_path / "fixture.json"
    path.write_text(json.dumps(document, indent=2))
    events = document_events(path)
    assert [json.loads(e) for e in events] == expected
    assert all(b"\n" not in e for e in events)


def test_json_lines_and_scalars_are_not_documents(tmp_path):
    lines = tmp_path / "lines.log"
    lines.write_text('{"name": "a"}\n{"name": "b"}\n')
    assert document_events(lines) is None
    scalar_object = tmp_path / "odd.json"
    scalar_object.write_text('{\n "a": 1\n}\n')
    assert document_events(scalar_object) is None
    broken = tmp_path / "broken.json"
    broken.write_text('{\n "name": \n')
    assert document_events(broken) is None


def test_document_fingerprint_depends_on_the_whole_content():
    assert document_fingerprint(b"[1]").startswith("doc-")
    assert document_fingerprint(b"[1]") != document_fingerprint(b"[2]")
    assert len(document_fingerprint(b"[1]")) == 32
