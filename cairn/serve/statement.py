"""What a SQL statement is, decided once: its kind, its output format, whether it streams.

Pure Python, no engine: the HTTP server classifies the text ClickHouse normalised
(``formatQuerySingleLine``), the SQL shell of `cairn client` classifies what the user
typed, and the access checks of restricted users (``cairn.serve.query_check``) read the
FORMAT clause from here. Classification only routes a statement (run it whole or
stream it, insert a body, answer with a summary or rows); what a restricted user may run
is decided by ClickHouse's own parser in ``query_check``, never by these rules.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DEFAULT_FORMAT = "TabSeparated"

# The first keyword -> the kind of statement. One table for the server and the shell.
KINDS = {
    "SELECT": "select", "WITH": "select",
    "SHOW": "show", "DESCRIBE": "describe", "DESC": "describe", "EXISTS": "exists", "EXPLAIN": "explain",
    "CHECK": "check", "VALUES": "values",
    "INSERT": "insert", "SET": "set", "USE": "use",
    "CREATE": "ddl", "ALTER": "ddl", "DROP": "ddl", "RENAME": "ddl", "TRUNCATE": "ddl", "ATTACH": "ddl",
    "DETACH": "ddl", "EXCHANGE": "ddl", "UNDROP": "ddl", "OPTIMIZE": "ddl",
}
# Kinds whose answer is a result set, so that an output format applies to them.
ROW_KINDS = frozenset({"select", "show", "describe", "exists", "explain", "check", "values"})

# Leading whitespace, comments and opening parentheses, then the first word.
_HEAD = re.compile(r"(?:\s+|--[^\n]*(?:\n|$)|/\*.*?\*/)*(?P<parens>(?:\((?:\s+|--[^\n]*(?:\n|$)|/\*.*?\*/)*)*)"
                   r"(?P<word>[A-Za-z_][A-Za-z0-9_]*)?", re.S)
# ClickHouse's single-line form ends in " FORMAT Name" exactly (keywords upper case).
# It back-quotes names that are also keywords (FORMAT `Values`).
_NORMALISED_FORMAT = re.compile(r" FORMAT `?(\w+)`?$")
# What a person types: any case and spacing, maybe a closing ";".
_TYPED_FORMAT = re.compile(r"\bFORMAT\s+`?(\w+)`?\s*;?\s*$", re.I)


@dataclass(frozen=True)
class Statement:
    """One SQL statement, classified.

    ``text`` is the statement as classified, ``core`` the same without its FORMAT
    clause, ``format`` the name in that clause (None: none). ``parsed`` is False when
    ClickHouse could not normalise the text: it then runs as a query so that the engine
    reports its own error. ``has_body`` says that data came with it (an HTTP body).
    """

    text: str
    keyword: str
    kind: str
    format: str | None
    core: str
    parenthesised: bool = False
    parsed: bool = True
    has_body: bool = False

    @classmethod
    def parse(cls, text: str, *, normalised: bool = False, has_body: bool = False) -> "Statement":
        """Classify ``text``; ``normalised`` when it is ClickHouse's single-line form of a query."""
        head = _HEAD.match(text)
        word = (head.group("word") or "").upper() if head else ""
        parenthesised = bool(head and head.group("parens"))
        kind = KINDS.get(word, "other") if word else ("other" if text.strip() else "empty")
        match = (_NORMALISED_FORMAT if normalised else _TYPED_FORMAT).search(text)
        fmt = match.group(1) if match else None
        core = text if match is None else text[:match.start()] if normalised else text[:match.start()].rstrip()
        return cls(text, word, kind, fmt, core, parenthesised, True, has_body)

    @classmethod
    def unparsed(cls, text: str) -> "Statement":
        """A text ClickHouse could not normalise: kept whole, run as a query (its error is the answer)."""
        typed = cls.parse(text)
        return cls(text, typed.keyword, typed.kind, None, text, typed.parenthesised, False, False)

    @property
    def returns_rows(self) -> bool:
        """Whether the answer is a result set (so an output format applies)."""
        return self.kind in ROW_KINDS or self.parenthesised or not self.parsed

    @property
    def streams(self) -> bool:
        """Whether the engine can stream the result (chDB streams SELECT only, not SHOW or DESCRIBE)."""
        return self.kind == "select"

    @property
    def inserts_body(self) -> bool:
        """An INSERT whose rows come in the request body."""
        return self.kind == "insert" and self.has_body

    @property
    def changes_session(self) -> bool:
        """SET or USE: a change of session state, lasting only inside a client session."""
        return self.kind in ("set", "use")

    def output_format(self, default: str | None = None) -> str:
        """The format of the answer: the FORMAT clause, else ``default``, else TabSeparated."""
        return self.format or default or DEFAULT_FORMAT


_INLINE_INSERT = re.compile(rb"\s*(?:/\*.*?\*/\s*|--[^\n]*\n\s*)*INSERT\b", re.I | re.S)
_INLINE_FORMAT = re.compile(rb"\bFORMAT[ \t\r\n]+([A-Za-z][A-Za-z0-9_]*)[ \t]*(?:\r?\n|$)", re.I)


def split_inline_insert(raw: bytes) -> tuple[str, bytes] | None:
    """Split "INSERT ... FORMAT X<newline><data>" into statement and data, else None.

    clickhouse-connect sends small inserts this way, and the data part may be binary, so
    it must not be decoded. Only a routing guess: the statement part is then parsed by
    ClickHouse (which must find an INSERT ending in that FORMAT) before anything runs.
    """
    head = raw[:65536]
    if not _INLINE_INSERT.match(head):
        return None
    match = _INLINE_FORMAT.search(head)
    if match is None:
        return None
    try:
        statement = raw[:match.end(1)].decode("utf-8")
    except UnicodeDecodeError:
        return None
    return statement, raw[match.end():]
