"""Unit tests of `cairn serve`'s limits: bounded decompression, drains, ids, throttle, masking (no chDB)."""

from __future__ import annotations

import gzip
import io

import lz4.frame
import pytest
import zstandard

from cairn.errors import CairnError
from cairn.serve.inflate import PIECE, DecodeError, inflate
from cairn.serve.options import ServeOptions
from cairn.serve.pipeline import mask_connection_details
from cairn.serve.throttle import LoginThrottle
from cairn.serve.wire import HttpError, QueryRequest, RequestBody


def _headers(**kw: str) -> dict[str, str]:
    return {k.replace("_", "-"): v for k, v in kw.items()}


def _chunked(*chunks: bytes) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\n\r\n"


@pytest.mark.parametrize("compress, encoding", [(gzip.compress, "gzip"), (lz4.frame.compress, "lz4"),
                                                (lambda d: zstandard.ZstdCompressor().compress(d), "zstd")])
def test_decompression_comes_in_bounded_pieces(compress, encoding):
    packed = compress(b"\0" * (5 * 1024 * 1024))
    pieces = inflate(encoding, [packed[i:i + 1000] for i in range(0, len(packed), 1000)])
    sizes = [len(p) for p in pieces]
    assert max(sizes) <= PIECE and sum(sizes) == 5 * 1024 * 1024


def test_a_bomb_stops_at_the_decoded_limit_without_inflating_it_all():
    bomb = gzip.compress(b"\0" * (50 * 1024 * 1024))
    body = RequestBody(_headers(Content_Length=str(len(bomb)), Content_Encoding="gzip"), io.BytesIO(bomb),
                       limit=1 << 20, decoded_limit=256 * 1024)
    seen = 0
    with pytest.raises(HttpError) as caught:
        for piece in body.chunks():
            seen += len(piece)
    assert caught.value.status == 413 and seen <= 256 * 1024


def test_truncated_and_corrupt_streams_are_decode_errors():
    with pytest.raises(DecodeError):
        list(inflate("gzip", [gzip.compress(b"abc" * 1000)[:-10]]))
    with pytest.raises(DecodeError):
        list(inflate("lz4", [lz4.frame.compress(b"abc" * 1000)[:-5]]))


def test_drain_finishes_a_half_read_chunked_body():
    rfile = io.BytesIO(_chunked(b"not gzip at all", b"x" * 100, b"y" * 100) + b"NEXT")
    body = RequestBody(_headers(Transfer_Encoding="chunked", Content_Encoding="gzip"), rfile, 1 << 20)
    with pytest.raises(HttpError):
        body.read_all()
    assert not body.finished and body.drain()
    assert rfile.read() == b"NEXT"


def test_drain_gives_up_past_its_budget_or_on_a_broken_body():
    body = RequestBody(_headers(Content_Length="1000"), io.BytesIO(b"z" * 1000), 1 << 20)
    assert not body.drain(budget=10)
    broken = RequestBody(_headers(Transfer_Encoding="chunked"), io.BytesIO(b"zz\r\n"), 1 << 20)
    with pytest.raises(HttpError):
        broken.read_all()
    assert broken.broken and not broken.drain()


def test_restrict_refuses_a_long_body_before_reading():
    body = RequestBody(_headers(Content_Length="1000000"), io.BytesIO(b""), 1 << 30)
    with pytest.raises(HttpError) as caught:
        body.restrict(1000, 1000, "max_query_size")
    assert caught.value.status == 413 and "max_query_size" in str(caught.value)


@pytest.mark.parametrize("target", ["/?query_id=a%0D%0ASet-Cookie:+x=1", "/?query_id=" + "x" * 257,
                                    "/?session_id=%0A", "/?query_id=caf%C3%A9"])
def test_ids_are_printable_ascii_of_bounded_length(target):
    with pytest.raises(HttpError) as caught:
        QueryRequest.from_target(target)
    assert caught.value.code == 36


def test_session_timeout_is_capped():
    assert QueryRequest.from_target("/?session_timeout=3600").session_timeout(3600) == 3600
    for value in ("3601", "1e9", "-1", "inf", "nan"):
        with pytest.raises(HttpError) as caught:
            QueryRequest.from_target(f"/?session_timeout={value}").session_timeout(3600)
        assert caught.value.code == 374


def test_display_name_is_a_header_value():
    with pytest.raises(CairnError):
        ServeOptions(display_name="cairn\r\nSet-Cookie: x=1")
    assert ServeOptions(display_name="Cairn prod").display_name == "Cairn prod"


def test_throttle_per_user_and_per_address():
    now = [0.0]
    throttle = LoginThrottle(per_user=3, per_address=5, window=60, clock=lambda: now[0])
    for _ in range(3):
        assert throttle.retry_after("ann", "10.0.0.1") == 0
        throttle.failed("ann", "10.0.0.1")
    assert throttle.retry_after("ann", "10.0.0.2") == 60  # the name, from anywhere
    assert throttle.retry_after("ben", "10.0.0.1") == 0
    for name in ("ben", "cat"):
        throttle.failed(name, "10.0.0.1")
    assert throttle.retry_after("dan", "10.0.0.1") == 60  # the address, for any name
    now[0] = 61
    assert throttle.retry_after("ann", "10.0.0.1") == 0


def test_throttle_memory_is_bounded():
    throttle = LoginThrottle(per_user=3, per_address=5, window=60, max_keys=100)
    for i in range(1000):
        throttle.failed(f"user{i}", f"10.0.{i // 256}.{i % 256}")
    assert len(throttle._failures) <= 100


def test_mysql_connection_details_are_masked():
    text = ("Code: 279. DB::Exception: Connections to mysql failed: lake@db.internal:3306 as user root, ERROR 1049 : "
            "mysqlxx::ConnectionFailed: Unknown database 'lake' ((nullptr):3306): While executing MySQL. "
            "(ALL_CONNECTION_TRIES_FAILED)")
    masked = mask_connection_details(text)
    for secret in ("db.internal", "3306", "root", "'lake'"):
        assert secret not in masked
    assert masked.startswith("Code: 279.") and "ALL_CONNECTION_TRIES_FAILED" in masked
    assert mask_connection_details("Code: 60. Unknown table 10.0.0.1:80") == "Code: 60. Unknown table 10.0.0.1:80"
