"""The dashboards as they are written in the repository: dataset SQL and dashboard YAML.

``cairn/superset/assets/`` holds:

* ``datasets/NAME.sql``: one Superset dataset each. Leading ``-- key: value`` comment lines
  describe it (the first line is its description; ``columns: name Type, ...``;
  ``time: column`` for its main time column); the rest is the SQL, a Jinja template that
  Superset renders for every query with the dashboard's filters (``filter_values``).
* ``macros.sql``: Jinja macros put in front of every dataset's SQL (``scope()``,
  ``period()``, ...), because Superset cannot include files.
* ``dashboards/NAME.yaml``: one dashboard each, its filters and its charts row by row.

This module reads and checks them, and renders dataset SQL the way Superset does (for
tests and benchmarks that run it against ``cairn serve`` without Superset).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cairn.engine.sql import sql_string
from cairn.errors import CairnError

ASSETS = Path(__file__).resolve().parent / "assets"

# Superset column types by the ClickHouse type named in a dataset's header.
_TEMPORAL = ("Date", "DateTime")
_NUMERIC = ("Int8", "Int16", "Int32", "Int64", "UInt8", "UInt16", "UInt32", "UInt64", "Float32", "Float64", "Bool")
_TYPES = {*_TEMPORAL, *_NUMERIC, "String"}


@dataclass(frozen=True)
class Column:
    """One column a dataset returns, with its ClickHouse type."""

    name: str
    type: str

    @property
    def is_temporal(self) -> bool:
        return self.type in _TEMPORAL


@dataclass(frozen=True)
class DatasetSource:
    """A dataset as written in ``datasets/NAME.sql``."""

    name: str
    description: str
    columns: tuple[Column, ...]
    time_column: str | None
    sql: str  # the template, header removed, without the macros
    path: Path

    def column(self, name: str) -> Column | None:
        return next((c for c in self.columns if c.name == name), None)


@dataclass(frozen=True)
class DashboardSource:
    """A dashboard as written in ``dashboards/NAME.yaml`` (the parsed YAML)."""

    name: str
    spec: dict[str, Any]
    path: Path


@dataclass(frozen=True)
class Sources:
    """Everything under an assets folder."""

    macros: str
    datasets: dict[str, DatasetSource]
    dashboards: list[DashboardSource] = field(default_factory=list)

    def template(self, dataset: str) -> str:
        """The SQL Superset stores for ``dataset``: the macros, then the dataset's SQL."""
        return self.macros.rstrip() + "\n" + self.datasets[dataset].sql


_HEADER = re.compile(r"^--\s?(?:(?P<key>[a-z_]+):\s*(?P<value>.*)|(?P<text>.*))$")


def read_dataset(path: Path) -> DatasetSource:
    """Parse one dataset file; a malformed header raises CairnError naming the file."""
    lines = path.read_text().splitlines()
    meta: dict[str, str] = {}
    description: list[str] = []
    body_start = 0
    for index, line in enumerate(lines):
        match = _HEADER.match(line)
        if not match:
            body_start = index
            break
        if match.group("key") and match.group("key") in ("columns", "time"):
            meta[match.group("key")] = match.group("value").strip()
        else:
            description.append((match.group("text") or line[2:]).strip())
    else:
        raise CairnError(f"{path}: no SQL after the header comment")
    columns = []
    for item in filter(None, (part.strip() for part in meta.get("columns", "").split(","))):
        name, _, type_ = item.partition(" ")
        if type_.strip() not in _TYPES:
            raise CairnError(f"{path}: column {name!r} has type {type_.strip()!r}; use one of {sorted(_TYPES)}")
        columns.append(Column(name, type_.strip()))
    if not columns:
        raise CairnError(f"{path}: the header needs a `-- columns: name Type, ...` line")
    time_column = meta.get("time") or None
    if time_column and not any(c.name == time_column and c.is_temporal for c in columns):
        raise CairnError(f"{path}: time column {time_column!r} is not a Date/DateTime column of the dataset")
    return DatasetSource(path.stem, " ".join(description), tuple(columns), time_column,
                         "\n".join(lines[body_start:]).strip() + "\n", path)


def load_sources(folder: Path | None = None) -> Sources:
    """Read every dataset and dashboard under ``folder`` (the packaged assets by default)."""
    import yaml

    folder = Path(folder or ASSETS)
    datasets = {p.stem: read_dataset(p) for p in sorted((folder / "datasets").glob("*.sql"))}
    dashboards = []
    for path in sorted((folder / "dashboards").glob("*.yaml")):
        try:
            spec = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            raise CairnError(f"{path}: not valid YAML ({exc})") from None
        if not isinstance(spec, dict) or "title" not in spec:
            raise CairnError(f"{path}: a dashboard needs at least a `title`")
        dashboards.append(DashboardSource(path.stem, spec, path))
    dashboards.sort(key=lambda d: (d.spec.get("order", 99), d.name))
    return Sources((folder / "macros.sql").read_text(), datasets, dashboards)


# ---------------------------------------------------------------------------------------
# Rendering dataset SQL as Superset does, outside Superset.


def render_sql(template: str, filters: dict[str, list] | None = None, from_dttm: str | None = None,
               to_dttm: str | None = None) -> str:
    """Render a dataset template with the same Jinja context Superset gives it.

    ``filters`` maps a filter's column (``course_id``, ``org``, ``video``, ``username``) to
    its values, as a dashboard's native filters would; ``from_dttm``/``to_dttm`` are the
    date range (ISO text). Values are quoted with ``cairn.engine.sql.sql_string``.
    """
    from jinja2 import DebugUndefined
    from jinja2.sandbox import SandboxedEnvironment

    filters = filters or {}
    env = SandboxedEnvironment(undefined=DebugUndefined)
    env.filters["where_in"] = lambda values: "(" + ", ".join(_literal(v) for v in values) + ")"

    def filter_values(column: str, default: Any = None, remove_filter: bool = False) -> list:
        values = list(filters.get(column) or [])
        return values or ([default] if default else [])

    context = {"filter_values": filter_values, "from_dttm": from_dttm, "to_dttm": to_dttm}
    return env.from_string(template).render(**context)


def _literal(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, (int, float)):
        return repr(value)
    return sql_string(value)
