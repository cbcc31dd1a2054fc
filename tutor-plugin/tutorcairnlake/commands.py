"""`tutor local|dev|k8s do cairnlake-...`: each command yields (service, script) for Tutor to run.

Tutor runs a script with ``sh -e -c`` in the ``<service>-job`` container (Compose) or Job
(Kubernetes) after rendering it with Jinja. Everything an operator types is shell-quoted
and kept out of Jinja's reach ({% raw %}), so no value can change the script.
"""

from __future__ import annotations

import re
import shlex
from importlib import resources
from typing import Iterable, Iterator

import click

Task = tuple[str, str]
# Course keys, org ids and user names: what Open edX and Cairn accept, nothing a shell or Jinja reads.
COURSE_KEY = re.compile(r"^course-v1:[\w.\-~]+\+[\w.\-~]+\+[\w.\-~]+$|^ccx-v1:[\w.\-~+@]+$")
ORG_ID = re.compile(r"^[\w.\-~]+$")
USERNAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.@\-]{0,63}$")


def quote(value: str) -> str:
    """A shell word for ``value`` that Tutor's Jinja rendering leaves as it is."""
    if "endraw" in value:
        raise click.BadParameter(f"{value!r}: the text 'endraw' is not accepted here")
    return "{% raw %}" + shlex.quote(value) + "{% endraw %}"


def script(name: str) -> str:
    """A task script of the plugin (templates/cairnlake/tasks/NAME)."""
    return resources.files("tutorcairnlake").joinpath("templates", "cairnlake", "tasks", name).read_text(encoding="utf-8")


def datalake(command: str) -> Task:
    """A script for the cairnlake job: wait for the datalake, then run ``command``."""
    return ("cairnlake", script("wait-datalake.sh") + "\n" + command + "\n")


def _check(values: Iterable[str], pattern: re.Pattern, what: str) -> list[str]:
    checked = []
    for value in values:
        if not pattern.match(value):
            raise click.BadParameter(f"{value!r} is not {what}")
        checked.append(value)
    return checked


def _check_username(ctx, param, value: str) -> str:
    return _check([value], USERNAME, "a user name (letters, digits, _ . @ -, at most 64)")[0]


def _check_courses(ctx, param, values) -> list[str]:
    return _check(values, COURSE_KEY, "a course key (course-v1:ORG+COURSE+RUN)")


def _check_orgs(ctx, param, values) -> list[str]:
    return _check(values, ORG_ID, "an organisation id")


@click.command(name="cairnlake-createuser",
               help="Create a datalake user (and their Superset login) who sees only their courses/organisations.")
@click.argument("name", callback=_check_username)
@click.option("--email", required=True, help="Email address (Superset login).")
@click.option("-p", "--password", default="", help="Password (default: generated and printed once).")
@click.option("-c", "--course-id", "course_ids", multiple=True, callback=_check_courses,
              help="A course the user may see (repeatable).")
@click.option("--org-id", "org_ids", multiple=True, callback=_check_orgs,
              help="An organisation whose courses the user may see (repeatable).")
@click.option("--admin", is_flag=True, help="Sees and may do everything.")
@click.option("--replace", is_flag=True, help="Update the user if it exists.")
def createuser(name: str, email: str, password: str, course_ids: tuple[str, ...], org_ids: tuple[str, ...],
               admin: bool, replace: bool) -> Iterator[Task]:
    if "@" not in email or any(c.isspace() for c in email):
        raise click.BadParameter(f"{email!r} is not an email address", param_hint="--email")
    if admin and (course_ids or org_ids):
        raise click.UsageError("an admin sees everything: do not combine --admin with --course-id/--org-id")
    if not admin and not (course_ids or org_ids):
        raise click.UsageError("give at least one --course-id or --org-id (or --admin)")
    # The scope becomes the script's positional parameters ("$@"): one word each.
    scope = [word for course in course_ids for word in ("--course-id", quote(course))]
    scope += [word for org in org_ids for word in ("--org-id", quote(org))]
    scope += ["--admin"] if admin else []
    scope += ["--replace"] if replace else []
    lines = [
        f"CAIRNLAKE_NAME={quote(name)}",
        f"CAIRNLAKE_EMAIL={quote(email)}",
        f"CAIRNLAKE_PASSWORD={quote(password)}",
        "set -- " + " ".join(scope),
        script("createuser.sh"),
    ]
    yield datalake("\n".join(lines))


@click.command(name="cairnlake-deleteuser", help="Delete a datalake user (and their Superset login).")
@click.argument("name", callback=_check_username)
def deleteuser(name: str) -> Iterator[Task]:
    yield datalake(f"CAIRNLAKE_NAME={quote(name)}\n" + script("deleteuser.sh"))


@click.command(name="cairnlake-import-dashboards", help="Set up Superset and import Cairn's dashboards (again).")
def import_dashboards() -> Iterator[Task]:
    yield datalake(script("superset-setup.sh"))


@click.command(name="cairnlake-backfill",
               help="Load past tracking logs (resumable, idempotent). Default: the LMS and CMS log folders.")
@click.option("--path", "paths", multiple=True,
              help="File or folder inside the job, e.g. /openedx-data/lms/logs/tracking.log (repeatable).")
@click.option("--parallel", type=click.IntRange(1, 8), default=1, help="Chunks inserted at once.")
def backfill(paths: tuple[str, ...], parallel: int) -> Iterator[Task]:
    for path in paths:
        if not path.startswith("/"):
            raise click.BadParameter(f"{path!r}: give an absolute path inside the job (/openedx-data/...)")
    words = " ".join(quote(path) for path in paths)
    yield datalake(f"CAIRNLAKE_PARALLEL={parallel}\nset -- {words}\n" + script("backfill.sh"))


@click.command(name="cairnlake-import-courses",
               help="Dump course structures from the LMS modulestore and import them (default: every course).")
@click.option("-c", "--course-id", "course_ids", multiple=True, callback=_check_courses,
              help="Only this course (repeatable).")
def import_courses(course_ids: tuple[str, ...]) -> Iterator[Task]:
    which = " ".join(quote(course) for course in course_ids) or "--all"
    yield ("cairnlake-openedx", f"set -- {which}\n" + script("dump-courses.sh"))
    yield ("cairnlake", script("import-courses.sh"))


@click.command(name="cairnlake-migrate", help="Apply pending datalake migrations (--dry-run: print their SQL).")
@click.option("--dry-run", is_flag=True, help="Print the SQL of pending migrations; change nothing.")
@click.option("--fake", is_flag=True, help="Record pending migrations as applied without running them.")
def migrate(dry_run: bool, fake: bool) -> Iterator[Task]:
    if dry_run and fake:
        raise click.UsageError("choose one of --dry-run and --fake")
    flags = " --dry-run" if dry_run else " --fake" if fake else ""
    yield datalake(f"cairn migrate{flags}")


@click.command(name="cairnlake-status", help="Datalake status: tables, rows, freshness, collector lag, MySQL copies.")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def status(as_json: bool) -> Iterator[Task]:
    yield datalake("cairn status" + (" --json" if as_json else ""))


DO_COMMANDS = [createuser, deleteuser, import_dashboards, backfill, import_courses, migrate, status]
