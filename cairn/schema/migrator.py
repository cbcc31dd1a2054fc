"""Schema migrations: ordered ``.sql`` files rendered with Jinja, recorded in ``_migrations``.

Cairn's own migrations ship in ``cairn/schema/migrations/``; users add folders of their
own (``migrations_folders`` in the configuration, or ``cairn migrate --path``), and
packages theirs through the ``cairn.hooks.MIGRATION_FOLDERS`` extension point.
All files are merged and applied in name order. A file is applied once; its
checksum (of the template text) is recorded so that a later edit is reported.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable

import jinja2

from cairn import hooks
from cairn.engine import sql_identifier, sql_string
from cairn.errors import EngineError, MigrationError

if TYPE_CHECKING:  # pragma: no cover
    from cairn.config import Config
    from cairn.engine import Engine

PACKAGE_MIGRATIONS = Path(__file__).parent / "migrations"
MIGRATIONS_TABLE = "_migrations"


@dataclass(frozen=True)
class Migration:
    """One migration file."""

    name: str
    path: Path

    @property
    def source(self) -> str:
        return self.path.read_text()

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()


@dataclass
class MigrationStatus:
    migration: Migration
    state: str  # "applied", "pending", "changed"
    applied_at: datetime | None = None


@dataclass
class MigrationReport:
    """What a run did, migration by migration: (state, name) in order."""

    steps: list[tuple[str, str]] = field(default_factory=list)


def discover(extra_folders: Iterable[str | Path] = ()) -> list[Migration]:
    """All migration files, Cairn's and the user's, in name order."""
    found: dict[str, Migration] = {}
    folders = [PACKAGE_MIGRATIONS, *[Path(f).expanduser() for f in extra_folders]]
    for folder in folders:
        if not folder.is_dir():
            raise MigrationError(f"migrations folder {folder} does not exist or is not a folder")
        for path in sorted(folder.glob("*.sql")):
            if path.name in found and found[path.name].path != path:
                raise MigrationError(
                    f"two migrations are named {path.name}: {found[path.name].path} and {path}; rename one")
            found[path.name] = Migration(path.name, path)
    return [found[name] for name in sorted(found)]


def template_context(config: "Config") -> dict:
    """Variables available to every migration template."""
    cluster = config["clickhouse.cluster"]
    mysql = config.section("mysql")
    return {
        "database": config.database,
        "cluster": cluster,
        "on_cluster": f"ON CLUSTER {cluster}" if cluster else "",
        "engine_kind": config.engine,
        "mysql": mysql,
    }


def _table_engine(cluster: str) -> Callable[..., str]:
    """Jinja function ``table_engine('ReplacingMergeTree', 'version')``: replicated on a cluster."""

    def table_engine(name: str = "MergeTree", *args: str) -> str:
        if cluster:
            replicated = "Replicated" + name
            params = ["'/clickhouse/tables/{shard}/{database}/{table}'", "'{replica}'", *args]
            return f"{replicated}({', '.join(params)})"
        return f"{name}({', '.join(args)})"

    return table_engine


def render(migration: Migration, config: "Config") -> str:
    """The migration's SQL with the configuration filled in."""
    context = template_context(config)
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader([str(migration.path.parent), str(PACKAGE_MIGRATIONS)]),
        undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False)
    env.filters["sql_string"] = sql_string
    env.globals["table_engine"] = _table_engine(context["cluster"])
    try:
        return env.from_string(migration.source).render(**context)
    except jinja2.TemplateError as exc:
        raise MigrationError(f"{migration.path}: template error: {exc}") from None


def split_statements(sql: str) -> list[str]:
    """Split SQL text on ``;`` outside quotes and comments; drop empty statements."""
    statements, current, i, n = [], [], 0, len(sql)
    while i < n:
        ch = sql[i]
        if ch in "'\"`":
            j = i + 1
            while j < n:
                if sql[j] == "\\":
                    j += 2
                    continue
                if sql[j] == ch:
                    if j + 1 < n and sql[j + 1] == ch:  # doubled quote
                        j += 2
                        continue
                    break
                j += 1
            current.append(sql[i:j + 1])
            i = j + 1
        elif sql.startswith("--", i):
            j = sql.find("\n", i)
            j = n if j == -1 else j
            current.append(sql[i:j])
            i = j
        elif sql.startswith("/*", i):
            j = sql.find("*/", i + 2)
            j = n if j == -1 else j + 2
            current.append(sql[i:j])
            i = j
        elif ch == ";":
            statements.append("".join(current))
            current = []
            i += 1
        else:
            current.append(ch)
            i += 1
    statements.append("".join(current))
    return [s.strip() for s in statements if _has_code(s)]


def _has_code(statement: str) -> bool:
    for line in statement.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("--"):
            return True
    return False


class Migrator:
    """Applies migrations to an engine and records them."""

    def __init__(self, engine: "Engine", config: "Config", extra_folders: Iterable[str | Path] = ()):
        self.engine = engine
        self.config = config
        # Packages' folders first, then the user's: name order decides anyway, and a clash
        # of names is reported whatever the order.
        folders = ([str(f) for f in hooks.MIGRATION_FOLDERS] + list(config["migrations_folders"])
                   + [str(f) for f in extra_folders])
        self.migrations = discover(folders)
        self.database = config.database

    def _bootstrap(self) -> None:
        """Create the database and the bookkeeping table (idempotent)."""
        ctx = template_context(self.config)
        self.engine.command(f"CREATE DATABASE IF NOT EXISTS {sql_identifier(self.database)} {ctx['on_cluster']}")
        engine = _table_engine(ctx["cluster"])("MergeTree")
        self.engine.command(
            f"CREATE TABLE IF NOT EXISTS {sql_identifier(self.database)}.{MIGRATIONS_TABLE} {ctx['on_cluster']} ("
            " name String COMMENT 'migration file name',"
            " checksum String COMMENT 'sha256 of the file when it was applied',"
            " applied_at DateTime64(3, 'UTC') COMMENT 'when it was applied (or faked)',"
            " faked Bool DEFAULT false COMMENT 'recorded with --fake, not run'"
            f") ENGINE = {engine} ORDER BY name")

    def applied(self) -> dict[str, tuple[str, datetime]]:
        """Recorded migrations: name -> (checksum, applied_at). Empty before the first run."""
        if MIGRATIONS_TABLE not in self.engine.tables(self.database):
            return {}
        rows = self.engine.query_rows(
            f"SELECT name, argMax(checksum, applied_at), max(applied_at) "
            f"FROM {sql_identifier(self.database)}.{MIGRATIONS_TABLE} GROUP BY name")
        return {name: (checksum, applied_at) for name, checksum, applied_at in rows}

    def status(self) -> list[MigrationStatus]:
        """Every known migration with its state."""
        applied = self.applied()
        out = []
        for migration in self.migrations:
            if migration.name not in applied:
                out.append(MigrationStatus(migration, "pending"))
            else:
                checksum, when = applied[migration.name]
                state = "applied" if checksum == migration.checksum else "changed"
                out.append(MigrationStatus(migration, state, when))
        return out

    def pending(self) -> list[Migration]:
        """Migrations not applied yet, in name order."""
        return [s.migration for s in self.status() if s.state == "pending"]

    def run(self, dry_run: bool = False, fake: bool = False,
            echo: Callable[[str, str, str], None] | None = None) -> MigrationReport:
        """Apply pending migrations in order.

        ``echo(state, name, detail)`` is told about each one: SKIP, CHANGED,
        APPLY, FAKE, DRY-RUN (detail = rendered SQL). A failing statement stops
        the run with a MigrationError naming the file and the statement;
        migrations before it stay applied and recorded.
        """
        echo = echo or (lambda state, name, detail: None)
        report = MigrationReport()
        if not dry_run:
            self._bootstrap()
        for status in self.status():
            migration = status.migration
            if status.state == "applied":
                echo("SKIP", migration.name, "")
                report.steps.append(("SKIP", migration.name))
                continue
            if status.state == "changed":
                echo("CHANGED", migration.name,
                     "applied earlier, but the file has changed since; it is not applied again "
                     "(write a new migration for the change)")
                report.steps.append(("CHANGED", migration.name))
                continue
            sql = render(migration, self.config)
            if dry_run:
                echo("DRY-RUN", migration.name, sql)
                report.steps.append(("DRY-RUN", migration.name))
                continue
            if fake:
                self._record(migration, faked=True)
                echo("FAKE", migration.name, "")
                report.steps.append(("FAKE", migration.name))
                continue
            statements = split_statements(sql)
            for number, statement in enumerate(statements, 1):
                try:
                    self.engine.command(statement)
                except EngineError as exc:
                    first_line = " ".join(statement.split())[:160]
                    raise MigrationError(
                        f"migration {migration.path} failed at statement {number} of {len(statements)} "
                        f"({first_line}): {exc}") from None
            self._record(migration, faked=False)
            echo("APPLY", migration.name, "")
            report.steps.append(("APPLY", migration.name))
        return report

    def _record(self, migration: Migration, faked: bool) -> None:
        self.engine.insert(
            f"{sql_identifier(self.database)}.{MIGRATIONS_TABLE}",
            [[migration.name, migration.checksum, datetime.now(timezone.utc), faked]],
            ["name", "checksum", "applied_at", "faked"])
