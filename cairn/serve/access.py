"""Access rights: one declarative model of how every datalake row belongs to a course/org.

Every table and view of the datalake database is declared in ``cairn.catalog``; its
entry gives it a ``Rule`` here:

* ``course``   rows carry a course key column (and maybe an org column); a user sees the
               rows of their courses, and of every course of their orgs;
* ``learner``  rows are about a learner (users, user_profiles): visible when the learner is
               enrolled in one of the user's courses / orgs (membership via ``enrollments``);
* ``shared``   reference data every datalake user may read;
* ``internal`` Cairn's own tables (admin only).

A table or view that is not declared is invisible to restricted users (fail closed).
Names starting with ``_`` are always internal, whatever the catalog says: among them
``_users`` (accounts) and ``_query_log`` (every statement anyone ran through `cairn serve`,
``cairn.serve.query_log``), which only admins and Superset's admins may read.

The same predicates drive both engines:

* server engine: ``cairn createuser`` turns them into ClickHouse ``ROW POLICY`` and
  ``GRANT SELECT`` statements (``server_statements``);
* embedded engine (``cairn serve``): they become ``additional_table_filters`` of a
  read-only chDB session dedicated to the user (``session_setup``), and every query is
  checked with ClickHouse's own parser (``cairn.serve.query_check``) before it runs.

Values (course ids, orgs, names) only ever reach SQL through ``sql_string`` /
``sql_identifier``, which quote them; course ids and orgs are also validated up front.
"""

from __future__ import annotations

import importlib.util
import re
from dataclasses import dataclass
from typing import Iterable, Sequence

from cairn import catalog
from cairn.engine import sql_identifier, sql_string
from cairn.engine.errors import error_message
from cairn.errors import CairnError, EngineError

# ClickHouse error codes used when refusing a query (what a real server answers).
ACCESS_DENIED = 497
READONLY = 164


class AccessDenied(EngineError):
    """A restricted user tried something outside their rights (ClickHouse ACCESS_DENIED)."""

    def __init__(self, message: str, code: int = ACCESS_DENIED):
        name = "READONLY" if code == READONLY else "ACCESS_DENIED"
        super().__init__(error_message(code, message, name), code)


# ---------------------------------------------------------------------------
# Quoting
# ---------------------------------------------------------------------------

# sql_string and sql_identifier live with the engine (imported above, re-exported here).


def param_value(text: str) -> str:
    """``text`` as a query parameter value (ClickHouse reads them in escaped text format)."""
    return (text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")
            .replace("\r", "\\r").replace("\0", "\\0"))


def _string_array(values: Iterable[str]) -> str:
    # Typed so that an empty list is still a valid Array(String).
    return "CAST([" + ", ".join(sql_string(v) for v in values) + "], 'Array(String)')"


# The organisation of a course key, as the event pipeline computes it (macros.jinja).
def org_of_course(column: str) -> str:
    """SQL expression: the ORG of course-v1:ORG+..., ccx-v1:ORG+... or ORG/COURSE/RUN in ``column``."""
    return (f"multiIf(match({column}, '^[a-z0-9-]+:[^+]+\\\\+'), extract({column}, '^[a-z0-9-]+:([^+]+)\\\\+'), "
            f"match({column}, '^[^/]+/[^/]+/[^/]+$'), splitByChar('/', {column})[1], '')")


# ---------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Scope:
    """What a restricted user may see: course keys and organisations."""

    course_ids: tuple[str, ...] = ()
    org_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class Rule:
    """How the rows of one table or view belong to courses and orgs."""

    kind: str  # course | learner | shared | internal
    course_column: str = ""
    org_column: str = ""
    learner_column: str = ""
    note: str = ""

    def predicate(self, scope: Scope, database: str) -> str:
        """The SQL condition selecting the rows ``scope`` may see ('0' when none)."""
        if self.kind == "shared":
            return "1"
        if self.kind == "internal":
            return "0"
        if self.kind == "course":
            return course_predicate(scope, self.course_column, self.org_column)
        if self.kind == "learner":
            enrolled = course_predicate(scope, "course_id", "")
            return (f"{self.learner_column} IN (SELECT user_id FROM {sql_identifier(database)}.enrollments "
                    f"WHERE {enrolled})")
        raise ValueError(f"unknown access rule kind {self.kind!r}")


def course_predicate(scope: Scope, course_column: str, org_column: str) -> str:
    """Rows of the scope's courses, or of any course of its orgs."""
    parts = []
    if scope.course_ids:
        parts.append(f"has({_string_array(scope.course_ids)}, {course_column})")
    if scope.org_ids:
        org_expr = org_column or org_of_course(course_column)
        parts.append(f"has({_string_array(scope.org_ids)}, {org_expr})")
    return " OR ".join(f"({p})" for p in parts) if parts else "0"


def course(column: str = "course_id", org: str = "", note: str = "") -> Rule:
    """Rows belong to the course in ``column`` (and to the org in ``org`` when given)."""
    return Rule("course", course_column=column, org_column=org, note=note)


def learner(column: str, note: str = "") -> Rule:
    """Rows about the learner ``column``: visible when enrolled in one of the user's courses."""
    return Rule("learner", learner_column=column, note=note)


SHARED = Rule("shared")
INTERNAL = Rule("internal")

# The registry, built from the catalog (cairn/catalog.py), where every table and view
# is declared with its access columns. A table missing there is invisible to restricted
# users (and tests/integration/test_access.py fails, on purpose).
EVENT_TABLES = catalog.EVENT_TABLES


def rule_of(entry: catalog.Table) -> Rule:
    """The access rule of a catalog entry (event tables are course-scoped)."""
    if entry.kind in ("event", "course"):
        return course(entry.course_column, entry.org_column, entry.access_note)
    if entry.kind == "learner":
        return learner(entry.learner_column, entry.access_note)
    return SHARED if entry.kind == "shared" else INTERNAL


TABLES: dict[str, Rule] = {entry.name: rule_of(entry) for entry in catalog.public_tables()}

# Internal storage behind a declared view: `_mysql_<name>_copy` / `_mysql_<name>_live`
# hold exactly the columns of the view <name>. They stay unqueryable for restricted
# users, but their rows are filtered with the view's rule so that the view (and views
# built on it) return the user's rows rather than nothing.
_BACKING_RE = re.compile(r"^_mysql_(\w+?)_(copy|live)$")


def filter_rule_for(name: str) -> Rule:
    """The rule whose predicate filters ``name``'s rows in a restricted session."""
    match = _BACKING_RE.match(name)
    if match and match.group(1) in TABLES:
        return TABLES[match.group(1)]
    return rule_for(name)


def rule_for(name: str) -> Rule:
    """The rule of a datalake table; internal when undeclared or starting with ``_``."""
    if name.startswith(("_", ".")):  # "." : ClickHouse's own inner tables (.inner_id..., .tmp...)
        return INTERNAL
    return TABLES.get(name, INTERNAL)


def visible_tables(names: Iterable[str]) -> list[str]:
    """The names a restricted user may query among ``names``."""
    return sorted(n for n in names if rule_for(n).kind != "internal")


# System tables restricted users may read (what clickhouse-connect, SQLAlchemy and
# Superset use), each filtered to what the user may see. Everything else in `system`
# is refused and filtered to nothing.
def system_filters(database: str, tables: Sequence[str]) -> dict[str, str]:
    db, names = sql_string(database), _string_array(tables)
    return {
        "system.tables": f"database = {db} AND has({names}, name)",
        "system.columns": f"database = {db} AND has({names}, table)",
        "system.databases": f"name = {db}",
        "system.settings": "1",
        "system.functions": "1",
        "system.formats": "1",
        "system.data_type_families": "1",
        "system.table_engines": "1",
        "system.time_zones": "1",
        "system.one": "1",
        "system.numbers": "1",
        "system.numbers_mt": "1",
        "system.zeros": "1",
        "system.zeros_mt": "1",
        "system.build_options": "1",
        "system.contributors": "1",
    }


# System tables that hold other users' activity or secrets: filtered to nothing even if
# the parser checks were ever bypassed (defence in depth).
_SYSTEM_DENIED = ("query_log", "processes", "query_thread_log", "query_views_log", "part_log", "text_log",
                  "trace_log", "session_log", "users", "roles", "grants", "row_policies", "settings_profiles",
                  "quotas", "dictionaries", "asynchronous_insert_log", "errors", "events", "metrics",
                  "asynchronous_metrics", "clusters", "macros", "disks", "storage_policies", "parts",
                  "parts_columns", "detached_parts", "mutations", "merges", "replicas", "filesystem_cache",
                  "zookeeper", "named_collections", "server_settings", "user_directories", "role_grants",
                  "current_roles", "enabled_roles", "quota_usage", "quotas_usage", "query_cache",
                  "stack_trace", "blob_storage_log", "backup_log", "backups", "crash_log", "opentelemetry_span_log",
                  "processors_profile_log", "metric_log", "asynchronous_metric_log", "filesystem_cache_log",
                  "s3queue_log", "error_log", "dropped_tables", "distribution_queue", "moves", "kafka_consumers",
                  "certificates", "warnings", "schema_inference_cache", "user_processes", "view_refreshes")

SAFE_TABLE_FUNCTIONS = frozenset({"numbers", "numbers_mt", "zeros", "zeros_mt", "generate_series",
                                  "generateseries", "values", "null"})

# Scalar functions that read outside the rows the user may see (dictionaries, Join
# tables, files, models) or only serve to tie up the server.
DENIED_FUNCTION_PREFIXES = ("dictget", "dicthas", "dictisin", "joinget", "catboost", "evalmlmethod")
DENIED_FUNCTIONS = frozenset({"file", "sleep", "sleepeachrow", "getmacro", "getserversetting", "filesystemunreserved",
                               "naivebayesclassifier", "input", "url", "s3", "executable", "mysql", "remote",
                               "remotesecure", "cluster", "clusterallreplicas", "merge", "view", "dictionary",
                               "getclientheader", "showcertificate", "getsubcolumn", "currentprofiles",
                               "currentroles", "enabledprofiles", "enabledroles", "defaultprofiles",
                               "defaultroles", "getsetting", "getsettingordefault", "loop"})

# Output formats a restricted user may ask for (no formats that read schema or template files).
SAFE_OUTPUT_FORMATS = frozenset(f.lower() for f in (
    "TabSeparated", "TSV", "TabSeparatedRaw", "TSVRaw", "TabSeparatedWithNames", "TSVWithNames",
    "TabSeparatedWithNamesAndTypes", "TSVWithNamesAndTypes", "TabSeparatedRawWithNames",
    "TabSeparatedRawWithNamesAndTypes", "TSVRawWithNames", "TSVRawWithNamesAndTypes", "CSV", "CSVWithNames",
    "CSVWithNamesAndTypes", "JSON", "JSONStrings", "JSONCompact", "JSONCompactStrings", "JSONEachRow",
    "JSONStringsEachRow", "JSONCompactEachRow", "JSONCompactEachRowWithNames",
    "JSONCompactEachRowWithNamesAndTypes", "JSONCompactStringsEachRow", "JSONLines", "NDJSON", "JSONColumns",
    "JSONCompactColumns", "JSONObjectEachRow", "Native", "RowBinary", "RowBinaryWithNames",
    "RowBinaryWithNamesAndTypes", "Pretty", "PrettyCompact", "PrettyCompactMonoBlock", "PrettySpace",
    "PrettyNoEscapes", "PrettyCompactNoEscapes", "PrettySpaceNoEscapes", "Vertical", "Values", "XML",
    "Markdown", "Parquet", "Arrow", "ArrowStream", "ORC", "Avro", "Null", "TSKV", "LineAsString", "Raw",
    "SQLInsert"))


def session_setup(scope: Scope, database: str, tables: Sequence[str],
                  max_execution_time: float = 300, max_query_size: int = 256 * 1024) -> list[str]:
    """Statements that turn a fresh chDB session into one that only sees ``scope``.

    ``tables`` are all tables and views of the datalake database. The last statement
    sets ``readonly = 1``: from then on the engine refuses any setting change, so the
    filters cannot be lifted by the query (``SETTINGS``, ``SET``).
    """
    filters: dict[str, str] = {}
    for name in tables:
        filters[f"{database}.{name}"] = filter_rule_for(name).predicate(scope, database)
    filters.update(system_filters(database, visible_tables(tables)))
    for name in _SYSTEM_DENIED:
        filters[f"system.{name}"] = "0"
    literal = "{" + ", ".join(f"{sql_string(k)}: {sql_string(v)}" for k, v in filters.items()) + "}"
    return [
        f"SET additional_table_filters = {literal}",
        f"SET max_execution_time = {float(max_execution_time)}",
        f"SET max_query_size = {int(max_query_size)}",
        "SET max_ast_elements = 100000",
        "SET allow_ddl = 0",
        "SET allow_introspection_functions = 0",
        "SET readonly = 1",
    ]


# ---------------------------------------------------------------------------
# Server engine: ClickHouse users, grants and row policies from the same model
# ---------------------------------------------------------------------------

def server_statements(username: str, password: str, scope: Scope | None, database: str,
                      tables: Sequence[str], cluster: str = "") -> list[str]:
    """``CREATE USER``, ``GRANT`` and ``ROW POLICY`` statements for a real ClickHouse server.

    ``scope`` None means an admin. Row policies are named ``cairn_<user>_<table>`` so
    that ``drop_statements`` finds them again.
    """
    on_cluster = f" ON CLUSTER {sql_identifier(cluster)}" if cluster else ""
    user = sql_identifier(username)
    stmts = [f"CREATE USER IF NOT EXISTS {user}{on_cluster} IDENTIFIED WITH sha256_password BY "
             f"{sql_string(password)}"]
    if scope is None:
        stmts.append(f"GRANT{on_cluster} ALL ON *.* TO {user} WITH GRANT OPTION")
        return stmts
    stmts.append(f"GRANT{on_cluster} SHOW DATABASES ON {sql_identifier(database)}.* TO {user}")
    stmts.append(f"ALTER USER {user}{on_cluster} SETTINGS readonly = 1")
    for name in _policy_tables(tables):
        table = f"{sql_identifier(database)}.{sql_identifier(name)}"
        policy = sql_identifier(f"cairn_{username}_{name}")
        stmts.append(f"GRANT{on_cluster} SELECT ON {table} TO {user}")
        stmts.append(f"CREATE ROW POLICY OR REPLACE {policy}{on_cluster} ON {table} FOR SELECT USING "
                     f"{filter_rule_for(name).predicate(scope, database)} AS permissive TO {user}")
    # Tables not listed above are simply not granted (internal ones, undeclared ones).
    # Once a table has a row policy, ClickHouse users without one see no rows there unless
    # the server keeps `users_without_row_policies_can_read_rows` on (its default): admins
    # keep full access either way through their GRANT ALL when that setting is on.
    return stmts


def _policy_tables(tables: Sequence[str]) -> list[str]:
    # Views run with the invoker's rights on a server: their backing tables need the
    # grant and the row policy too.
    return sorted(n for n in tables if filter_rule_for(n).kind != "internal")


def drop_statements(username: str, database: str, tables: Sequence[str], cluster: str = "") -> list[str]:
    """Statements removing what ``server_statements`` created."""
    on_cluster = f" ON CLUSTER {sql_identifier(cluster)}" if cluster else ""
    stmts = []
    for name in _policy_tables(tables):
        stmts.append(f"DROP ROW POLICY IF EXISTS {sql_identifier(f'cairn_{username}_{name}')}{on_cluster} "
                     f"ON {sql_identifier(database)}.{sql_identifier(name)}")
    stmts.append(f"DROP USER IF EXISTS {sql_identifier(username)}{on_cluster}")
    return stmts


# ---------------------------------------------------------------------------
# Validation of scopes
# ---------------------------------------------------------------------------

_ORG_RE = re.compile(r"^[A-Za-z0-9_.~-]{1,64}$")


def _course_key(value: str):
    """``value`` parsed by edx-opaque-keys (``ccx-v1:`` keys through the edx-ccx-keys plugin)."""
    from opaque_keys import InvalidKeyError
    from opaque_keys.edx.keys import CourseKey

    try:
        return CourseKey.from_string(value)
    except InvalidKeyError:
        if value.startswith("ccx-v1:") and importlib.util.find_spec("ccx_keys") is None:
            raise CairnError(f"{value!r} is a CCX course id, which needs the edx-ccx-keys package: "
                             "pip install edx-ccx-keys") from None
        raise CairnError(f"{value!r} is not an Open edX course id (e.g. course-v1:ORG+COURSE+RUN, "
                         "ccx-v1:ORG+COURSE+RUN+ccx@ID or ORG/COURSE/RUN)") from None


def validate_course_id(value: str) -> str:
    """The canonical course key, or CairnError when ``value`` is not an Open edX course key.

    Accepted: ``course-v1:ORG+COURSE+RUN``, ``ccx-v1:ORG+COURSE+RUN+ccx@ID`` (a custom
    course, CCX) and the old ``ORG/COURSE/RUN``.
    """
    return str(_course_key(value))


def org_of_course_id(value: str) -> str:
    """The organisation a course key belongs to, as org scopes see it.

    A CCX belongs to the organisation of its master course: ``ccx-v1:ORG+C+R+ccx@3`` is
    ORG's, the same ORG that ``org_of_course`` computes in SQL.
    """
    return _course_key(value).org


def validate_org(value: str) -> str:
    """``value`` when it is a valid organisation short name (letters, digits, _ . ~ -)."""
    if not _ORG_RE.match(value or ""):
        raise CairnError(f"{value!r} is not a valid organisation id (letters, digits, '_', '.', '~', '-')")
    return value


def scope_of(course_ids: Iterable[str], org_ids: Iterable[str]) -> Scope:
    """A validated, de-duplicated Scope."""
    courses = tuple(dict.fromkeys(validate_course_id(c) for c in course_ids))
    orgs = tuple(dict.fromkeys(validate_org(o) for o in org_ids))
    return Scope(courses, orgs)

