"""The one translation from a driver exception to the error Cairn shows.

Both engines fail with driver exceptions: clickhouse-connect (HTTP, and chDB behind
it) and raw chDB connections (the sessions of `cairn serve`, the embedded raw
inserter). Users see ClickHouse's own message on one line, as ``clickhouse-client``
prints it, with the numeric code kept for callers that branch on it.
"""

from __future__ import annotations

import re

from cairn.errors import EngineError, EngineUnavailable

_CODE_RE = re.compile(r"Code: (\d+)\.")
_VERSION_RE = re.compile(r"\s*\(version [\w.]+(?: \(official build\))?\)")
_DUP_PREFIX_RE = re.compile(r"^(?:Code: (\d+)\. DB::Exception: )+")
# chDB sometimes appends the error name twice: "... (READONLY). (READONLY)".
_DUP_NAME_RE = re.compile(r"(\([A-Z_]+\))\.? \1$")
# chDB's streaming API wraps the server text in its own words.
_STREAM_NOISE = ("Streaming query failed: ", "Streaming insert append failed: ",
                 "Streaming insert finish failed: ")
# Signs that the HTTP connection failed before ClickHouse said anything.
_CONNECTION_FAILURES = ("Connection refused", "Max retries", "timed out", "RemoteDisconnected",
                        "Connection reset")
_CAUSES = (("Connection refused", "connection refused"),
           ("Name or service not known", "unknown host"),
           ("timed out", "timed out"),
           ("Authentication failed", "authentication failed"),
           ("AUTHENTICATION_FAILED", "authentication failed"),
           ("REQUIRED_PASSWORD", "authentication failed"))


def clickhouse_error(code: int, message: str, name: str) -> EngineError:
    """An error Cairn raises itself, worded as ClickHouse words its own (``Code: N. DB::Exception: ... (NAME)``)."""
    return EngineError(error_message(code, message, name), code)


def error_message(code: int, message: str, name: str) -> str:
    """ClickHouse's one-line wording of error ``code`` (``NAME``) saying ``message``."""
    return f"Code: {code}. DB::Exception: {message}. ({name})"


def engine_error(exc: BaseException, endpoint: str | None = None) -> EngineError:
    """An EngineError with ClickHouse's own text: one line, no version, no repeated prefix.

    With ``endpoint`` (``host:port`` of an HTTP engine), a failure to connect at all
    becomes :class:`EngineUnavailable` naming the endpoint and the cause. An
    EngineError passes through unchanged.
    """
    if isinstance(exc, EngineError):
        return exc
    text = str(exc)
    if endpoint is not None and "Code: " not in text and any(s in text for s in _CONNECTION_FAILURES):
        return unreachable(exc, endpoint)
    text = clickhouse_text(text)
    match = _CODE_RE.search(text)
    return EngineError(text, int(match.group(1)) if match else None)


def unreachable(exc: BaseException, endpoint: str) -> EngineUnavailable:
    """The error for an engine that cannot be reached at ``endpoint``, with a short cause."""
    text = str(exc)
    for needle, label in _CAUSES:
        if needle in text:
            cause = label
            break
    else:
        cause = clickhouse_text(text)[:300]
    return EngineUnavailable(f"cannot reach ClickHouse at {endpoint}: {cause}")


def clickhouse_text(text: str) -> str:
    """ClickHouse's one-line message out of a driver's exception text."""
    text = text.strip()
    for noise in _STREAM_NOISE:
        text = text.replace(noise, "")
    # clickhouse-connect prefixes server errors with the HTTP context; keep ClickHouse's text.
    start = text.find("Code: ")
    if start > 0:
        text = text[start:]
    text = _VERSION_RE.sub("", text)
    text = _DUP_PREFIX_RE.sub(lambda m: f"Code: {m.group(1)}. DB::Exception: ", text)
    return _DUP_NAME_RE.sub(r"\1", text.replace("\n", " ").strip())
