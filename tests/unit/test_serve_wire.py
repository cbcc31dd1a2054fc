"""The ClickHouse HTTP interface on the wire (cairn.serve.wire), without a server or an engine."""

from __future__ import annotations

import base64
import gzip
import io
import json
import uuid
import zlib
from email.message import Message

import lz4.frame
import pytest
import zstandard

from cairn.serve.wire import (TRANSPORT_PARAMS, BytesBody, Compressor, HttpError, QueryRequest, RequestBody,
                              choose_encoding, content_type, credentials, error_text, status_for, summary)


def _headers(**values: str) -> Message:
    """Headers as the handler gets them (case-insensitive look-ups)."""
    message = Message()
    for name, value in values.items():
        message[name.replace("_", "-")] = value
    return message


def _body(data: bytes, limit: int = 1 << 20, **headers: str) -> RequestBody:
    return RequestBody(_headers(**headers), io.BytesIO(data), limit)


def _chunked(*parts: bytes, trailer: bytes = b"") -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n" + trailer + b"\r\n"


# ---------------------------------------------------------------------------
# Parameters
# ---------------------------------------------------------------------------

def test_parameters_split_into_transport_settings_and_query_parameters():
    request = QueryRequest.from_target("/?query=SELECT%20%7Bn%3AUInt8%7D&database=openedx&default_format=JSON"
                                       "&max_threads=1&max_result_rows=10&param_n=7&param_s=a%20b"
                                       "&session_id=s1&session_timeout=30&session_check=1&user=u&password=p"
                                       "&enable_http_compression=1&wait_end_of_query=true&query_id=q-1")
    assert request.path == "/" and request.is_query and not request.is_ping
    assert request.query == "SELECT {n:UInt8}"
    assert request.settings() == {"max_threads": "1", "max_result_rows": "10"}
    assert request.query_params == {"n": "7", "s": "a b"}
    assert (request.database, request.default_format, request.session_id) == ("openedx", "JSON", "s1")
    assert request.session_timeout() == 30.0 and request.session_check
    assert request.compress and request.wait_end
    assert request.query_id == "q-1"


def test_defaults_of_a_bare_request():
    request = QueryRequest.from_target("/")
    assert request.query is None and request.settings() == {} and request.query_params == {}
    assert request.database is None and request.default_format is None and request.session_id is None
    assert request.session_timeout() is None and not request.session_check
    assert not request.compress and not request.wait_end
    assert uuid.UUID(request.query_id)  # a fresh id when the client sends none


def test_empty_values_mean_absent_and_the_last_value_wins():
    request = QueryRequest.from_target("/query?database=&session_id=&default_format=&max_threads=1&max_threads=4")
    assert request.is_query
    assert (request.database, request.session_id, request.default_format) == (None, None, None)
    assert request.settings() == {"max_threads": "4"}


def test_every_transport_parameter_stays_out_of_the_settings():
    target = "/?" + "&".join(f"{name}=1" for name in sorted(TRANSPORT_PARAMS))
    assert QueryRequest.from_target(target).settings() == {}


def test_a_malformed_setting_name_is_unknown_setting():
    with pytest.raises(HttpError) as caught:
        QueryRequest.from_target("/?query=SELECT%201&max_threads%3B%20DROP=1").settings()
    assert caught.value.code == 115 and "UNKNOWN_SETTING" in str(caught.value)
    assert status_for(caught.value.code) == 400


def test_an_invalid_session_timeout():
    with pytest.raises(HttpError) as caught:
        QueryRequest.from_target("/?session_timeout=soon").session_timeout()
    assert caught.value.code == 374  # INVALID_SESSION_TIMEOUT, as ClickHouse


@pytest.mark.parametrize("path, ping, query", [("/ping", True, False), ("/replicas_status", True, False),
                                               ("", False, True), ("/query", False, True),
                                               ("/play", False, False)])
def test_paths(path, ping, query):
    request = QueryRequest.from_target(path + "?x=1")
    assert (request.is_ping, request.is_query) == (ping, query)


# ---------------------------------------------------------------------------
# Credentials
# ---------------------------------------------------------------------------

def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_credentials_from_clickhouse_headers():
    assert credentials(_headers(X_ClickHouse_User="ann", X_ClickHouse_Key="pw"), {}) == ("ann", "pw")


def test_credentials_from_basic_auth():
    assert credentials(_headers(Authorization=_basic("ann", "p:w")), {}) == ("ann", "p:w")
    # The same user in X-ClickHouse-User is accepted; Basic auth's password is the one used.
    headers = _headers(Authorization=_basic("ann", "pw"), X_ClickHouse_User="ann", X_ClickHouse_Key="other")
    assert credentials(headers, {}) == ("ann", "pw")


def test_credentials_from_the_url_come_last():
    assert credentials(_headers(), {"user": "ann", "password": "pw"}) == ("ann", "pw")
    assert credentials(_headers(X_ClickHouse_User="ben"), {"user": "ann", "password": "pw"}) == ("ben", "pw")
    assert credentials(_headers(Authorization=_basic("cat", "x")), {"user": "ann", "password": "pw"}) == ("cat", "x")


def test_no_credentials_is_the_default_user():
    assert credentials(_headers(), {}) == ("default", "")


@pytest.mark.parametrize("headers", [
    {"Authorization": "Basic not base64!"},
    {"Authorization": "Basic " + base64.b64encode(b"\xff\xfe:x").decode()},
    {"Authorization": _basic("ann", "pw"), "X_ClickHouse_User": "ben"},
])
def test_bad_credentials_are_authentication_failures(headers):
    with pytest.raises(HttpError) as caught:
        credentials(_headers(**headers), {})
    assert caught.value.code == 516 and status_for(516) == 403  # ClickHouse: 403 (401 is REQUIRED_PASSWORD)


# ---------------------------------------------------------------------------
# Bodies
# ---------------------------------------------------------------------------

def test_body_with_content_length():
    body = _body(b"SELECT 1extra", Content_Length="8")
    assert body.present and not body.chunked
    assert body.read_all() == b"SELECT 1" and body.read_bytes == 8


def test_no_body():
    body = _body(b"")
    assert not body.present and body.read_all() == b""
    assert not _body(b"", Content_Length="0").present


def test_chunked_body_with_extensions_and_trailers():
    raw = _chunked(b"INSERT INTO t ", b"FORMAT CSV\n1\n", trailer=b"X-Trailer: 1\r\n") + b"NEXT REQUEST"
    raw = raw.replace(b"e\r\nINSERT", b"e;name=value\r\nINSERT", 1)
    rfile = io.BytesIO(raw)
    body = RequestBody(_headers(Transfer_Encoding="chunked"), rfile, 1 << 20)
    assert body.present and body.chunked
    assert list(body.chunks()) == [b"INSERT INTO t ", b"FORMAT CSV\n1\n"]
    assert rfile.read() == b"NEXT REQUEST"  # the connection stays in sync for the next request


@pytest.mark.parametrize("raw, code", [(b"5\r\nab", 33), (b"", 33), (b"zz\r\nab\r\n0\r\n\r\n", 27)])
def test_broken_chunked_bodies(raw, code):
    with pytest.raises(HttpError) as caught:
        _body(raw, Transfer_Encoding="chunked").read_all()
    assert caught.value.code == code


def test_truncated_body():
    with pytest.raises(HttpError) as caught:
        _body(b"SELECT", Content_Length="100").read_all()
    assert caught.value.code == 33


def test_unparsable_content_length():
    with pytest.raises(HttpError) as caught:
        _body(b"", Content_Length="ten")
    assert caught.value.code == 27 and status_for(27) == 400


def test_body_over_the_limit_is_refused_before_reading():
    with pytest.raises(HttpError) as caught:
        _body(b"x" * 10, limit=5, Content_Length="10")
    assert caught.value.code == 307 and caught.value.status == 413


def test_chunked_body_over_the_limit():
    body = _body(_chunked(b"abc", b"defg"), limit=5, Transfer_Encoding="chunked")
    chunks = body.chunks()
    assert next(chunks) == b"abc"
    with pytest.raises(HttpError) as caught:
        next(chunks)
    assert caught.value.status == 413


@pytest.mark.parametrize("encoding, compress", [
    ("gzip", gzip.compress),
    ("x-gzip", gzip.compress),
    ("deflate", zlib.compress),
    ("zstd", lambda d: zstandard.ZstdCompressor().compress(d)),
    ("lz4", lz4.frame.compress),
])
def test_compressed_bodies(encoding, compress):
    data = b"1,ann\n2,bob\n" * 1000
    packed = compress(data)
    body = _body(packed, Content_Length=str(len(packed)), Content_Encoding=encoding.upper())
    assert body.read_all() == data


@pytest.mark.parametrize("encoding, compress", [
    ("zstd", lambda d: zstandard.ZstdCompressor().compress(d)),
    ("lz4", lz4.frame.compress),
])
def test_bodies_of_several_frames(encoding, compress):
    # clickhouse-connect compresses each block of an insert as its own frame.
    frames = [compress(b"block %d\n" % i * 100) for i in range(3)]
    raw = _chunked(frames[0] + frames[1][:7], frames[1][7:], frames[2])
    body = _body(raw, Transfer_Encoding="chunked", Content_Encoding=encoding)
    assert body.read_all() == b"".join(b"block %d\n" % i * 100 for i in range(3))


def test_identity_encoding_is_no_encoding():
    assert _body(b"abc", Content_Length="3", Content_Encoding="identity").read_all() == b"abc"


def test_decompressed_size_is_bounded_too():
    bomb = gzip.compress(b"\0" * 100_000)
    body = _body(bomb, limit=len(bomb) + 10, Content_Length=str(len(bomb)), Content_Encoding="gzip")
    with pytest.raises(HttpError) as caught:
        body.read_all()
    assert caught.value.code == 307 and caught.value.status == 413


def test_unknown_and_corrupt_encodings():
    with pytest.raises(HttpError) as caught:
        _body(b"abc", Content_Length="3", Content_Encoding="br").read_all()
    assert (caught.value.code, caught.value.status) == (48, 400)
    with pytest.raises(HttpError) as caught:
        _body(b"not gzip", Content_Length="8", Content_Encoding="gzip").read_all()
    assert (caught.value.code, caught.value.status) == (271, 400)


def test_drain_reads_what_was_not_used():
    rfile = io.BytesIO(b"unused body" + b"GET / HTTP/1.1")
    body = RequestBody(_headers(Content_Length="11"), rfile, 1 << 20)
    body.drain()
    assert rfile.read() == b"GET / HTTP/1.1"
    body.drain()  # once read, nothing more is taken
    used = _body(b"abc", Content_Length="3")
    used.read_all()
    used.drain()
    assert used.read_bytes == 3


def test_bytes_body():
    body = BytesBody(b"\x00\x01data")
    assert list(body.chunks()) == [b"\x00\x01data"] and body.read_all() == b"\x00\x01data"


# ---------------------------------------------------------------------------
# Answers
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("code, status", [
    (516, 403), (194, 401), (192, 403), (164, 403), (497, 403), (60, 404), (81, 404), (372, 404),
    (373, 423), (202, 503), (159, 408), (394, 499), (62, 400), (47, 400), (115, 400), (36, 400),
    (1000, 500), (1001, 500), (999999, 500), (None, 500),
])
def test_status_codes(code, status):
    assert status_for(code) == status


def test_error_text():
    code, body = error_text(62, "Empty query")
    assert code == 62 and body.startswith(b"Code: 62. DB::Exception: Empty query (version ")
    code, body = error_text(None, "Code: 60. DB::Exception: Unknown table. (UNKNOWN_TABLE)")
    assert code == 1000 and body.startswith(b"Code: 60. DB::Exception: Unknown table. (UNKNOWN_TABLE) (version ")
    assert body.endswith(b")\n")
    error = HttpError(373, "Session s is locked", "SESSION_IS_LOCKED")
    assert str(error) == "Code: 373. DB::Exception: Session s is locked. (SESSION_IS_LOCKED)"
    assert error.status is None


def test_content_types():
    assert content_type("JSONEachRow") == "application/x-ndjson; charset=UTF-8"
    assert content_type("TabSeparated") == "text/tab-separated-values; charset=UTF-8"
    assert content_type("CSVWithNames") == "text/csv; charset=UTF-8; header=present"
    assert content_type("Native") == "application/octet-stream"
    assert content_type("PrettyCompact") == "text/plain; charset=UTF-8"


def test_summary_numbers_are_strings():
    parsed = json.loads(summary(10, 200, 3, 40, 0, 512, 0.25))
    assert parsed == {"read_rows": "10", "read_bytes": "200", "written_rows": "3", "written_bytes": "40",
                      "total_rows_to_read": "0", "result_rows": "0", "result_bytes": "512",
                      "elapsed_ns": "250000000"}


@pytest.mark.parametrize("accept, chosen", [
    ("gzip, deflate, br", "gzip"), ("gzip;q=0.5, zstd", "zstd"), ("lz4, zstd, gzip", "lz4"),
    ("deflate", "deflate"), ("br", None), ("", None), ("GZIP", "gzip"),
])
def test_choose_encoding(accept, chosen):
    assert choose_encoding(accept) == chosen


@pytest.mark.parametrize("encoding, decompress", [
    ("gzip", gzip.decompress),
    ("deflate", zlib.decompress),
    ("zstd", lambda d: zstandard.ZstdDecompressor().decompressobj().decompress(d)),
    ("lz4", lz4.frame.decompress),
])
def test_compressed_answers_round_trip(encoding, decompress):
    comp = Compressor(encoding)
    parts = [comp.feed(b"row %d\n" % i) for i in range(1000)]
    data = b"".join(parts) + comp.end()
    assert decompress(data) == b"".join(b"row %d\n" % i for i in range(1000))


def test_an_empty_lz4_answer_is_still_a_frame():
    comp = Compressor("lz4")
    assert lz4.frame.decompress(comp.end()) == b""
