"""Streaming decompression of request bodies with a bounded output.

A compressed body may expand a thousandfold (100 MB of zeros gzip to 100 KB): every
decoder here produces at most ``PIECE`` bytes per step, so that the caller can count
what the body becomes and stop before buffering it (``RequestBody.chunks``).
"""

from __future__ import annotations

import zlib
from typing import Iterable, Iterator

PIECE = 64 * 1024  # the most one decoding step produces


class DecodeError(Exception):
    """The body is not valid data of its Content-Encoding."""


def inflate(encoding: str, raw: Iterable[bytes]) -> Iterator[bytes]:
    """The decompressed pieces (each at most ``PIECE`` bytes) of the raw chunks of a body.

    ``encoding`` is gzip / x-gzip / deflate / zstd / lz4 (checked by the caller);
    raises DecodeError when the data is corrupt or truncated.
    """
    if encoding in ("gzip", "x-gzip", "deflate"):
        return _zlib(raw, 47 if "gzip" in encoding else 15)
    if encoding == "zstd":
        return _zstd(raw)
    return _lz4(raw)


def _zlib(raw: Iterable[bytes], wbits: int) -> Iterator[bytes]:
    decomp = zlib.decompressobj(wbits=wbits)
    try:
        for chunk in raw:
            data = chunk
            while data and not decomp.eof:
                out = decomp.decompress(data, PIECE)
                data = decomp.unconsumed_tail
                if out:
                    yield out
        tail = decomp.flush()
    except zlib.error as exc:
        raise DecodeError(str(exc)) from None
    if tail:
        yield tail
    if not decomp.eof:
        raise DecodeError("truncated stream")


class _Reader:
    """A file-like ``read(n)`` over an iterator of chunks (what zstandard's reader pulls from)."""

    def __init__(self, chunks: Iterable[bytes]):
        self._chunks = iter(chunks)
        self._buffer = b""

    def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes (b"" at the end)."""
        while not self._buffer:
            chunk = next(self._chunks, None)
            if chunk is None:
                return b""
            self._buffer = chunk
        size = len(self._buffer) if size is None or size < 0 else size
        data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data


def _zstd(raw: Iterable[bytes]) -> Iterator[bytes]:
    import zstandard

    # clickhouse-connect sends one frame per block: read across frames.
    reader = zstandard.ZstdDecompressor().stream_reader(_Reader(raw), read_size=PIECE, read_across_frames=True)
    try:
        while True:
            out = reader.read(PIECE)
            if not out:
                return
            yield out
    except zstandard.ZstdError as exc:
        raise DecodeError(str(exc)) from None


def _lz4(raw: Iterable[bytes]) -> Iterator[bytes]:
    import lz4.frame

    decomp = lz4.frame.LZ4FrameDecompressor()
    started = False
    try:
        for chunk in raw:
            data = chunk
            while True:
                out = decomp.decompress(data, max_length=PIECE)
                started = True
                data = b""
                if out:
                    yield out
                if decomp.eof:
                    # Another frame may follow (one per block of an insert).
                    data = decomp.unused_data or b""
                    decomp = lz4.frame.LZ4FrameDecompressor()
                    started = False
                    if not data:
                        break
                elif decomp.needs_input:
                    break
    except (RuntimeError, EOFError) as exc:
        raise DecodeError(str(exc)) from None
    if started:
        raise DecodeError("truncated LZ4 frame")
