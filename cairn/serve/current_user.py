"""``currentUser()`` answers the datalake user, not the engine's only user.

chDB runs every statement as its one built-in user, ``default``, and has no way to
run a statement as another user (nor custom settings to carry the name). ClickHouse
clients and dashboards ask ``currentUser()`` (also spelt ``user()``,
``current_user()``) who they are logged in as; the server answers it by replacing
those calls, outside string literals, quoted names and comments, with the name of
the user who sent the query, as a string literal. What the engine itself records
(``system.processes.user``, ``system.query_log``) stays ``default``.
"""

from __future__ import annotations

import re

from cairn.engine.sql import sql_string

# The parts of a statement the rewrite must not look into, and the calls it rewrites.
_TOKENS = re.compile(
    r"""(?P<skip>'(?:[^'\\]|\\.|'')*'|"(?:[^"\\]|\\.|"")*"|`(?:[^`\\]|\\.|``)*`|--[^\n]*|/\*.*?\*/)"""
    r"""|(?P<call>(?<![\w.$])(?:currentUser|current_user|user)\s*\(\s*\))""",
    re.S | re.I)
_MAYBE = re.compile(r"user\s*\(", re.I)


def with_current_user(sql: str, user: str) -> str:
    """``sql`` with its ``currentUser()`` calls replaced by ``user`` as a string literal."""
    if not _MAYBE.search(sql):
        return sql  # the common case: nothing to scan
    literal = sql_string(user)
    return _TOKENS.sub(lambda m: m.group("skip") or literal, sql)
