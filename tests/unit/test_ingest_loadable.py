"""What `cairn load` and `cairn backfill` accept: regular files only, each refusal one clear line."""

from __future__ import annotations

import os

import pytest

from cairn.errors import CairnError
from cairn.ingest.files import UnloadableFile, backfill_files, loadable_file


def refusal(path) -> str:
    with pytest.raises(UnloadableFile) as caught:
        loadable_file(path)
    assert isinstance(caught.value, CairnError) and "\n" not in str(caught.value)
    return str(caught.value)


def test_a_fifo_is_refused_without_opening_it(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)  # opening it would block until a writer comes
    assert refusal(fifo) == (f"{fifo} is a named pipe (FIFO), not a file: it cannot be resumed or read twice; "
                             "pipe the lines into `cairn collect -` instead")


def test_a_device_is_refused():
    assert refusal("/dev/zero") == "/dev/zero is a character device, not a log file; give a regular file"


def test_a_folder_a_loop_a_dangling_link_and_a_missing_file_are_each_named(tmp_path):
    assert refusal(tmp_path) == f"{tmp_path} is a folder; give the log files inside it"
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    assert refusal(loop) == (f"{loop}: symbolic link loop (the link leads back to itself); "
                             "point it at a log file or give the file itself")
    dangling = tmp_path / "dangling"
    dangling.symlink_to(tmp_path / "gone.log")
    assert refusal(dangling) == (f"{dangling}: a symbolic link to {tmp_path / 'gone.log'}, which does not exist; "
                                 "fix the link or give the file itself")
    assert refusal(tmp_path / "missing.log") == f"{tmp_path / 'missing.log'}: no such file; check the path"


def test_regular_files_and_links_to_them_are_accepted(tmp_path):
    log = tmp_path / "tracking.log"
    log.write_text("{}\n")
    link = tmp_path / "link.log"
    link.symlink_to(log)
    assert loadable_file(log) == log and loadable_file(link) == link


def test_backfill_takes_regular_files_of_folders_and_refuses_named_special_files(tmp_path):
    folder = tmp_path / "logs"
    folder.mkdir()
    (folder / "tracking.log").write_text("{}\n")
    os.mkfifo(folder / "pipe")  # next to the logs: not one of them
    assert backfill_files([folder]) == [folder / "tracking.log"]
    with pytest.raises(UnloadableFile, match="named pipe"):
        backfill_files([folder, folder / "pipe"])
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    with pytest.raises(UnloadableFile, match="symbolic link loop"):
        backfill_files([loop])
