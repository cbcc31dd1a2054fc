"""The demo's Open edX MySQL database: tables created with the real Open edX column
definitions (``cairn.sources.openedx_mysql.create_openedx_tables``) and filled consistently
with the generated tracking log (same users, enrollments, grades, completions).

The demo owns the database it writes: it refuses to touch one holding users that
it did not generate (emails outside ``@demo.cairn.invalid``), and otherwise replaces
the rows of the Open edX tables.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone
from typing import Any, Iterable

from cairn.catalog import MYSQL_TABLES
from cairn.demo.courses import DemoCourse
from cairn.demo.events import CERTIFICATE_MODES, LETTER
from cairn.demo.people import EMAIL_DOMAIN, Learner
from cairn.errors import CairnError
from cairn.sources.openedx_mysql import quote_mysql_identifier

# The Open edX MySQL tables the demo fills (and empties first): those the datalake reads.
TABLES = tuple(MYSQL_TABLES.values())
BATCH = 5000


def _dt(t: float | None) -> datetime | None:
    """Epoch seconds as a naive UTC datetime (Open edX stores UTC)."""
    if t is None:
        return None
    return datetime.fromtimestamp(t, timezone.utc).replace(tzinfo=None)


def _insert(cursor, table: str, columns: tuple[str, ...], rows: Iterable[tuple]) -> int:
    sql = (f"INSERT INTO {quote_mysql_identifier(table)} ("
           + ", ".join(quote_mysql_identifier(c) for c in columns) + ") VALUES ("
           + ", ".join(["%s"] * len(columns)) + ")")
    rows = list(rows)
    for start in range(0, len(rows), BATCH):
        cursor.executemany(sql, rows[start:start + BATCH])
    return len(rows)


def fill_mysql(params: Any, courses: list[DemoCourse], people: list[Learner], enrollments: list,
               now: float) -> dict[str, int]:
    """Create the Open edX tables in the configured MySQL database and fill them; rows per table."""
    from cairn.sources.openedx_mysql import connect_mysql, create_openedx_tables

    create_openedx_tables(params)
    conn = connect_mysql(params)
    counts: dict[str, int] = {}
    try:
        with conn.cursor() as cur:
            _refuse_foreign_users(conn, cur)
            conn.autocommit(False)
            for table in TABLES:
                cur.execute(f"DELETE FROM {quote_mysql_identifier(table)}")
            counts.update(_fill_people(cur, people, enrollments))
            counts.update(_fill_courses(cur, courses, people, enrollments))
            counts.update(_fill_progress(cur, enrollments))
        conn.commit()
    except BaseException:
        conn.rollback()
        raise
    finally:
        conn.close()
    return counts


def _refuse_foreign_users(conn, cur) -> None:
    """The demo only replaces a database it made: one with other users is an error."""
    cur.execute("SELECT count(*) FROM auth_user WHERE email NOT LIKE %s", (f"%@{EMAIL_DOMAIN}",))
    foreign = cur.fetchone()[0]
    if foreign:
        raise CairnError(
            f"MySQL database {conn.db.decode() if isinstance(conn.db, bytes) else conn.db!r} already "
            f"holds {foreign} users that `cairn demo` did not create; point mysql.database at a "
            "database for the demo")


def _fill_people(cur, people: list[Learner], enrollments: list) -> dict[str, int]:
    """auth_user and auth_userprofile."""
    counts: dict[str, int] = {}
    last_seen: dict[int, float] = {}
    for e in enrollments:
        last_seen[e.learner.user_id] = max(last_seen.get(e.learner.user_id, 0.0), e.last_activity)
    counts["auth_user"] = _insert(cur, "auth_user", (
        "id", "password", "last_login", "is_superuser", "username", "first_name", "last_name", "email",
        "is_staff", "is_active", "date_joined"), (
        (p.user_id, _password(p), _dt(last_seen.get(p.user_id) or None), int(p.user_id == 1), p.username,
         "", "", p.email, int(p.is_staff), int(p.user_id % 37 != 0), _dt(p.joined)) for p in people))
    counts["auth_userprofile"] = _insert(cur, "auth_userprofile", (
        "user_id", "name", "meta", "courseware", "language", "location", "year_of_birth", "gender",
        "level_of_education", "country", "goals"), (
        (p.user_id, p.name, "", "course.xml", "", "", p.year_of_birth, p.gender, p.education, p.country,
         None) for p in people))
    return counts


def _fill_courses(cur, courses: list[DemoCourse], people: list[Learner], enrollments: list) -> dict[str, int]:
    """Course overviews, staff roles and enrollments."""
    counts: dict[str, int] = {}
    counts["course_overviews_courseoverview"] = _insert(cur, "course_overviews_courseoverview", (
        "created", "modified", "version", "id", "_location", "org", "display_name",
        "display_number_with_default", "display_org_with_default", "start", "end", "banner_image_url",
        "course_image_url", "certificates_display_behavior", "certificates_show_before_end",
        "cert_html_view_enabled", "has_any_active_web_certificate", "cert_name_short", "cert_name_long",
        "lowest_passing_grade", "mobile_available", "visible_to_staff_only",
        "_pre_requisite_courses_json", "invitation_only", "self_paced", "eligible_for_financial_aid",
        "enable_proctored_exams", "allow_proctoring_opt_out", "entrance_exam_enabled", "entrance_exam_id",
        "entrance_exam_minimum_score_pct", "force_on_flexible_peer_openassessments", "language",
        "short_description", "catalog_visibility"), (
        (c.edited.replace(tzinfo=None), c.edited.replace(tzinfo=None), 19, c.course_id,
         c.usage_key("course", "course"), c.org, c.display_name, c.number, c.org,
         c.start.replace(tzinfo=None), c.end.replace(tzinfo=None), "/static/images/pencils.jpg",
         f"/asset-v1:{c.org}+{c.number}+{c.run}+type@asset+block@images_course_image.jpg",
         "end_with_date", 0, 1, 1, "", "", c.cutoff, 1, 0, "[]", 0, 1, 1, 0, 0, 0, "", 0.5, 0, "en",
         f"{c.display_name}: a generated Cairn demo course.", "both") for c in courses))
    roles = []
    instructors = {p.username.split("_instructor")[0]: p for p in people if p.username.endswith("_instructor")}
    for c in courses:
        teacher = instructors.get(c.org.lower())
        if teacher is not None:
            roles.append((teacher.user_id, c.org, c.course_id, "instructor"))
            roles.append((teacher.user_id, c.org, c.course_id, "staff"))
    for org, teacher in sorted(instructors.items()):
        roles.append((teacher.user_id, teacher.username.split("_instructor")[0], "", "data_researcher"))
    beta = [e for e in enrollments if e.learner.user_id % 97 == 0]
    roles.extend((e.learner.user_id, e.course.org, e.course_id, "beta_testers") for e in beta)
    counts["student_courseaccessrole"] = _insert(cur, "student_courseaccessrole",
                                                 ("user_id", "org", "course_id", "role"), roles)
    counts["student_courseenrollment"] = _insert(cur, "student_courseenrollment", (
        "user_id", "course_id", "created", "is_active", "mode"), (
        (e.learner.user_id, e.course_id, _dt(e.created), int(e.deactivated_at is None), e.mode)
        for e in enrollments))
    return counts


def _fill_progress(cur, enrollments: list) -> dict[str, int]:
    """What learners achieved: course and subsection grades, completions, certificates."""
    counts: dict[str, int] = {}
    course_grades, sub_grades, completions, certificates = [], [], [], []
    for e in enrollments:
        c = e.course
        edited = c.edited.replace(tzinfo=None)
        if e.percent is not None:
            first_graded = min(g[4] for g in e.subsection_grades.values())
            course_grades.append((
                e.learner.user_id, c.course_id, edited, c.course_version, c.grading_policy_hash,
                e.percent, LETTER if e.percent >= c.cutoff else "", _dt(e.passed_at),
                _dt(first_graded), _dt(e.graded_at)))
        for sub in c.subsections():
            grade = e.subsection_grades.get(sub.block_id)
            if grade is None:
                continue
            sub_grades.append((
                e.learner.user_id, c.course_id, sub.usage_key, edited, c.course_version,
                grade[0], grade[1], grade[2], grade[3], _dt(e.first_attempted.get(sub.block_id)),
                c.grading_policy_hash[:28], _dt(e.first_attempted.get(sub.block_id, grade[4])), _dt(grade[4])))
        for key, (block_type, when) in e.completions.items():
            completions.append((_dt(when), _dt(when), c.course_id, key, block_type, 1.0, e.learner.user_id))
        certificate = _certificate(e)
        if certificate is not None:
            verify, status, when = certificate
            certificates.append((
                e.learner.user_id, c.course_id, verify, f"{e.percent:.2f}"[:5], "", 0, status, e.mode,
                e.learner.name, _dt(when), _dt(when), verify if status == "downloadable" else "",
                f"/certificates/{verify}" if status == "downloadable" else "", ""))
    counts["grades_persistentcoursegrade"] = _insert(cur, "grades_persistentcoursegrade", (
        "user_id", "course_id", "course_edited_timestamp", "course_version", "grading_policy_hash",
        "percent_grade", "letter_grade", "passed_timestamp", "created", "modified"), course_grades)
    counts["grades_persistentsubsectiongrade"] = _insert(cur, "grades_persistentsubsectiongrade", (
        "user_id", "course_id", "usage_key", "subtree_edited_timestamp", "course_version", "earned_all",
        "possible_all", "earned_graded", "possible_graded", "first_attempted", "visible_blocks_hash",
        "created", "modified"), sub_grades)
    counts["completion_blockcompletion"] = _insert(cur, "completion_blockcompletion", (
        "created", "modified", "course_key", "block_key", "block_type", "completion", "user_id"), completions)
    counts["certificates_generatedcertificate"] = _insert(cur, "certificates_generatedcertificate", (
        "user_id", "course_id", "verify_uuid", "grade", "key", "distinction", "status", "mode", "name",
        "created_date", "modified_date", "download_uuid", "download_url", "error_reason"), certificates)
    return counts


def _certificate(e) -> tuple[str, str, float] | None:
    """The certificate row of an enrollment: issued, audit passing, or verified but not passing."""
    if e.certificate is not None:
        return e.certificate
    if e.percent is None:
        return None
    seed = hashlib.md5(f"{e.learner.user_id}:{e.course_id}".encode()).hexdigest()
    if e.passed_at is not None and e.mode not in CERTIFICATE_MODES:
        return seed, "audit_passing", e.passed_at
    if e.passed_at is None and e.mode in CERTIFICATE_MODES and e.next_unit >= len(e.course.units()):
        return seed, "notpassing", e.graded_at
    return None


def _password(person: Learner) -> str:
    digest = hashlib.sha256(f"cairn-demo:{person.username}".encode()).hexdigest()
    return f"pbkdf2_sha256$600000${digest[:22]}${digest[22:65]}="
