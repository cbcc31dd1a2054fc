"""Which stream a log file is: its first line, then its bytes before the position loaded.

A stream is the content of one log file, loaded from byte 0 on (``checkpoints.py``).
Its name starts with the hash of the file's first line, which never changes once
written and survives renames and gzip compression. Several different files may share
a first line (two servers' logs opening with the same management-command event, test
fixtures, a file re-created from a copied line), so the first line only finds the
*candidates*; each checkpoint row also keeps the *anchor* of its position: a hash of
the file's last ``ANCHOR_BYTES`` bytes before it. A file is a candidate stream when

* its bytes before the stream's position hash to the anchor: the same file, perhaps
  grown since (it continues there), renamed or compressed (it adds nothing); or
* it holds nothing but its first line: it is the beginning of that stream;
* or the stream has no anchor yet (position 0, or a row written before anchors
  existed): the first line is all there is to go on, as before.

A file matching no candidate is a new stream, named ``<first-line hash>~<n>``.

What it cannot tell apart: a file that shares its first line and the 4 KiB before
the position loaded with a stream, but differs in between (it is taken for that
stream and continues after the position), and a file that is a copy of the beginning
of a stream, longer than its first line but shorter than what was loaded (it is
loaded as a new stream).
"""

from __future__ import annotations

from typing import Callable, Iterable

from cairn.ingest.checkpoints import Checkpoint, Checkpoints
from cairn.ingest.files import anchor_of

Window = Callable[[int], "bytes | None"]
"""``window(offset)``: the file's bytes before ``offset`` (``files.read_window``), None when shorter."""


def first_line_of(name: str) -> str:
    """The first-line hash a stream name starts with."""
    return name.split("~", 1)[0]


def is_stream(checkpoint: Checkpoint, window: Window, first_line_bytes: int | None) -> bool:
    """True when the file read through ``window`` is the stream of ``checkpoint`` (see the module).

    ``first_line_bytes`` None: the file may still grow (followed), so holding only its
    first line says nothing yet.
    """
    if not checkpoint.anchor or checkpoint.offset == 0:
        return True
    before = window(checkpoint.offset)
    if before is not None:
        return anchor_of(before) == checkpoint.anchor
    # Shorter than what was loaded: the same only when it is the stream's first line alone.
    return first_line_bytes is not None and window(first_line_bytes + 1) is None


def resolve_stream(checkpoints: Checkpoints, head: str, window: Window, first_line_bytes: int | None,
                   taken: Iterable[str] = ()) -> str:
    """The name of the stream a file is (an existing one, or a new unused name).

    ``head`` is the hash of its first line (``files.fingerprint``), ``first_line_bytes``
    that line's length with its newline (None for a file that may still grow); ``taken``: names in use but maybe not written
    yet (streams a collector has just opened).
    """
    candidates = checkpoints.sharing_first_line(head)
    for checkpoint in candidates:
        if is_stream(checkpoint, window, first_line_bytes):
            return checkpoint.fingerprint
    used = {c.fingerprint for c in candidates} | set(taken)
    if head not in used:
        return head
    n = 2
    while f"{head}~{n}" in used:
        n += 1
    return f"{head}~{n}"
