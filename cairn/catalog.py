"""The catalog of the datalake's tables and views, declared once.

Every table or view of the datalake database has one ``Table`` entry here: its name,
its kind, the Open edX MySQL table it comes from (if any), how its rows belong to
courses, organisations or learners, and a one-line description. The rest of Cairn
reads this list instead of keeping its own:

* configuration (``cairn.config``): one ``mysql.tables.T.*`` setting pair per MySQL table;
* access rights (``cairn.serve.access``): the ``Rule`` of every table comes from its entry;
* the MySQL sync (``cairn.sources.openedx_mysql``): which MySQL table feeds which view;
* ``cairn status`` and the generated ``docs/schema.md``.

Kinds:

``event``    a typed table of tracking-log events (rows carry ``course_id`` and ``org``);
``course``   rows belong to a course (a course key column, maybe an org column);
``learner``  rows are about a learner: visible with the learner's enrollments;
``shared``   reference data every datalake user may read;
``internal`` Cairn's own storage (names start with ``_``): admins only.

Adding a table to the datalake means adding its migration *and* its entry here; a
public table without an entry is invisible to restricted users (fail closed) and the
tests name it. The SQL itself stays in the migrations (``cairn/schema/migrations``);
``0100_mysql_tables.sql`` lists the MySQL tables again because migration text is
checksummed, and the tests check that both lists agree.
"""

from __future__ import annotations

from dataclasses import dataclass

KINDS = ("event", "course", "learner", "shared", "internal")


@dataclass(frozen=True)
class Table:
    """One table or view of the datalake database."""

    name: str
    kind: str
    description: str
    mysql: str = ""           # the Open edX MySQL table it is synced from / reads live
    course_column: str = ""   # course and event kinds: the course key column
    org_column: str = ""      # course and event kinds: an org column ("" = taken from the course key)
    learner_column: str = ""  # learner kind: the user id column
    access_note: str = ""     # why the access rule is what it is, when it needs saying

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"{self.name}: unknown kind {self.kind!r} (one of {', '.join(KINDS)})")

    @property
    def public(self) -> bool:
        """Whether restricted users may query it (with their rows only)."""
        return self.kind != "internal"

    def describe_access(self) -> str:
        """Who sees which rows, in words (for the docs and `cairn status`)."""
        if self.kind in ("event", "course"):
            org = f" or of their orgs ({self.org_column})" if self.org_column else " or of their orgs"
            return f"rows of the user's courses ({self.course_column}){org}"
        if self.kind == "learner":
            return f"learners ({self.learner_column}) enrolled in the user's courses or orgs"
        if self.kind == "shared":
            return "every datalake user"
        return "admins only"


def _event(name: str, description: str) -> Table:
    return Table(name, "event", description, course_column="course_id", org_column="org")


def _mysql(name: str, source: str, description: str, course: str = "", org: str = "", learner: str = "",
           note: str = "") -> Table:
    kind = "learner" if learner else "course"
    return Table(name, kind, description, mysql=source, course_column=course, org_column=org,
                 learner_column=learner, access_note=note)


def _internal(name: str, description: str) -> Table:
    return Table(name, "internal", description)


TABLES: tuple[Table, ...] = (
    # Tracking-log events (migrations 0002-0010), filled by the same insert as `events`.
    _event("events", "Every Open edX tracking event, one row each"),
    _event("video_events", "Video events, one row per event"),
    _event("problem_events", "Problem events, one row per event"),
    _event("enrollment_events", "Enrollment events, one row per event"),
    _event("navigation_events", "Navigation events, one row per event"),
    _event("grade_events", "Grade events, one row per event"),
    _event("forum_events", "Forum events, one row per event"),
    _event("completion_events", "Completion events, one row per event"),
    _event("certificate_events", "Certificate events, one row per event"),
    # Open edX MySQL tables (migration 0100), synced copies or read live.
    _mysql("users", "auth_user", "Open edX accounts (the password hash is not copied)", learner="id",
           note="auth_user: only learners enrolled in the user's courses (email, username)"),
    _mysql("user_profiles", "auth_userprofile", "Learner profiles", learner="user_id",
           note="auth_userprofile: name, city, ... of enrolled learners only"),
    _mysql("enrollments", "student_courseenrollment", "Course enrollments", course="course_id"),
    _mysql("course_grades", "grades_persistentcoursegrade", "Course grades", course="course_id"),
    _mysql("subsection_grades", "grades_persistentsubsectiongrade", "Subsection grades", course="course_id"),
    _mysql("block_completion", "completion_blockcompletion", "Block completion", course="course_key"),
    _mysql("course_overviews", "course_overviews_courseoverview", "Course settings, rebuilt on publish",
           course="id", org="org"),
    _mysql("course_access_roles", "student_courseaccessrole", "Staff roles on courses and organisations",
           course="course_id", org="org"),
    _mysql("certificates", "certificates_generatedcertificate", "Course certificates", course="course_id"),
    # Course structure (migration 0200), imported from OLX exports or the LMS dump script.
    Table("course_blocks", "course", "Course structure: one row per block of each imported course",
          course_column="course_id", org_column="org"),
    # Convenience views (0110, 0290). Their base tables are filtered too; the view's own
    # predicate is a second, independent guard on what it returns.
    Table("enrollments_with_profile", "course", "One row per enrollment with the learner account and profile",
          course_column="course_id", org_column="org"),
    Table("grades_with_learner", "course", "One row per course grade with the learner and the enrollment mode",
          course_column="course_id", org_column="org"),
    Table("learner_activity", "course", "Per learner and course: first and last event, active days, events",
          course_column="course_id", org_column="org"),
    Table("completion_with_blocks", "course", "One row per completed block and learner, with the block names",
          course_column="course_id"),
    # Cairn's own storage.
    _internal("_ingest_chunks", "Insert chunks of whole tracking-log lines here; _ingest_split cuts them into lines"),
    _internal("_ingest", "Insert tracking-log lines here; materialized views route them"),
    _internal("_lines", "Classified lines (stores nothing)"),
    _internal("_event_rows", "Parsed events (stores nothing)"),
    _internal("_quarantine", "Lines that are not valid events, kept for inspection and reprocessing"),
    _internal("_ingest_stats", "Line counts per source and outcome"),
    _internal("_checkpoints", "Load positions per file"),
    _internal("_course_blocks_staging", "A course import is written here, then swapped into course_blocks"),
    _internal("_migrations", "Migrations applied, with their checksums"),
    _internal("_users", "Datalake users and their course/org scopes"),
    _internal("_query_log", "Statements cairn serve finished: who, how long, outcome (admins only)"),
)

BY_NAME: dict[str, Table] = {table.name: table for table in TABLES}

#: The typed event tables, in migration order.
EVENT_TABLES: tuple[str, ...] = tuple(t.name for t in TABLES if t.kind == "event")

#: Datalake table -> Open edX MySQL table, in declaration order.
MYSQL_TABLES: dict[str, str] = {t.name: t.mysql for t in TABLES if t.mysql}

# Storage behind a MySQL-derived view: `_mysql_<name>_copy` (synced copy),
# `_mysql_<name>_live` (MySQL engine) and `_mysql_<name>_refresh` (the view copying).
MYSQL_BACKING = ("copy", "live", "refresh")


def table(name: str) -> Table | None:
    """The catalog entry of ``name``, or None when the datalake does not declare it."""
    return BY_NAME.get(name)


def public_tables() -> list[Table]:
    """Entries restricted users may query (with their rows only), in declaration order."""
    return [t for t in TABLES if t.public]


def backing_table(name: str, role: str) -> str:
    """``_mysql_<name>_<role>``: the storage of MySQL table ``name`` (role copy, live or refresh)."""
    if role not in MYSQL_BACKING:
        raise ValueError(f"unknown role {role!r} (one of {', '.join(MYSQL_BACKING)})")
    return f"_mysql_{name}_{role}"
