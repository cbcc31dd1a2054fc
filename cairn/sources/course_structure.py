"""Course structure: OLX exports (and LMS dumps) into ``openedx.course_blocks``.

* ``parse_olx(path)``: read a Studio export (folder or ``.tar.gz``) following the
  recipe of the Open edX data model notes (section 4): start at ``course.xml`` ->
  ``course/RUN.xml``, walk children depth first, follow pointer children
  (``<tag url_name="X"/>`` -> ``tag/X.xml``), read inline definitions in place,
  ``html/X.xml`` (+ ``X.html`` body), ``library_content`` children, skip ``drafts/``.
  Records are built by ``course_block_records`` of the LMS dump script, so both
  sources give the same fields (graded/format/due/start/visible_to_staff_only inherit
  from the subsection or section, as in the LMS).
* ``read_block_records(path)``: JSON lines printed by ``cairn_dump_course_blocks.py``.
* ``replace_course_blocks(engine, records)``: atomic replacement of a course's rows
  (staging table + ``ALTER TABLE ... REPLACE PARTITION``).
* ``import_course(engine, path)``: any of the above inputs, then the replacement.
* ``watch_exports`` / ``stale_courses`` / ``refresh_stale_courses``: automatic refresh
  (a folder of exports, or course_overviews.modified newer than the last import).

Bad input raises a one-line CairnError naming the file and the element.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import subprocess
import tarfile
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

from cairn.engine import sql_identifier
from cairn.errors import CairnError
from cairn.sources.lms.cairn_dump_course_blocks import RECORD_FIELDS, course_block_records, iso_datetime

if TYPE_CHECKING:  # pragma: no cover
    from cairn.engine import Engine

#: Block types whose child elements are blocks (other blocks' children are their content).
CONTAINER_TYPES = frozenset({
    "course", "chapter", "sequential", "vertical", "library_content", "split_test", "conditional",
    "randomize", "unit", "itembank", "library", "problem-builder", "mentoring",
})
#: Child elements of the course root that are settings, not blocks.
NON_BLOCK_TAGS = frozenset({"wiki", "textbook", "tab", "tabs", "info", "about", "updates", "static_tab"})
POINTER_ATTRIBUTES = frozenset({"url_name"})

COLUMNS = RECORD_FIELDS + ("imported_at",)
_DATE_FIELDS = ("due", "start")


class OlxError(CairnError):
    """A course export is corrupted or incomplete."""


# ---------------------------------------------------------------------------
# OLX parsing
# ---------------------------------------------------------------------------

class _Location:
    """The parts of a usage key that course_block_records reads."""

    def __init__(self, course_id: str, block_type: str, block_id: str):
        if block_type == "course":
            block_id = "course"
        self.block_type = block_type
        self.block_id = block_id
        self._key = "block-v1:" + course_id.split(":", 1)[1] + f"+type@{block_type}+block@{block_id}"

    def __str__(self) -> str:
        return self._key


@dataclass
class OlxBlock:
    """A block read from OLX, shaped like an XBlock for ``course_block_records``."""

    location: _Location
    display_name: str | None
    file: str
    graded: Any = None
    format: Any = None
    due: Any = None
    start: Any = None
    visible_to_staff_only: Any = None
    weight: Any = None
    children: list["OlxBlock"] = field(default_factory=list)

    def get_children(self) -> list["OlxBlock"]:
        return self.children


@dataclass
class OlxCourse:
    """A parsed export: its course key and root block."""

    course_id: str
    root: OlxBlock
    folder: Path

    def records(self, source: str = "") -> list[dict]:
        return list(course_block_records(self.root, self.course_id, source or f"olx:{self.folder}"))


def _describe(element: ET.Element) -> str:
    attrs = " ".join(f'{k}="{v}"' for k, v in list(element.attrib.items())[:3])
    return f"<{element.tag}{' ' + attrs if attrs else ''}>"


def _parse_xml(path: Path, root_folder: Path) -> ET.Element:
    rel = _rel(path, root_folder)
    try:
        return ET.parse(path).getroot()
    except FileNotFoundError:
        raise OlxError(f"{rel}: file missing from the export") from None
    except ET.ParseError as exc:
        raise OlxError(f"{rel}: invalid XML ({exc})") from None
    except OSError as exc:
        raise OlxError(f"{rel}: cannot read ({exc.strerror})") from None


def _rel(path: Path, root_folder: Path) -> str:
    try:
        return str(path.relative_to(root_folder))
    except ValueError:
        return str(path)


def _is_pointer(element: ET.Element) -> bool:
    return (bool(element.get("url_name")) and set(element.attrib) <= POINTER_ATTRIBUTES
            and len(element) == 0 and not (element.text or "").strip())


def find_course_folder(folder: Path) -> Path:
    """The folder holding course.xml: ``folder`` itself or its single top folder (tar layout)."""
    if (folder / "course.xml").is_file():
        return folder
    candidates = [p for p in folder.iterdir() if p.is_dir() and (p / "course.xml").is_file()]
    if len(candidates) == 1:
        return candidates[0]
    if len(candidates) > 1:
        raise OlxError(f"{folder}: several course exports inside ({', '.join(c.name for c in candidates)}); "
                       "import them one at a time")
    raise OlxError(f"{folder}: no course.xml found (not an OLX course export)")


def parse_olx_folder(folder: Path, course_id: str | None = None) -> OlxCourse:
    """Parse an extracted OLX export. ``course_id`` overrides the key written in course.xml."""
    folder = find_course_folder(Path(folder))
    course_xml = folder / "course.xml"
    top = _parse_xml(course_xml, folder)
    if top.tag != "course":
        raise OlxError(f"course.xml: root element is {_describe(top)}, expected <course>")
    run, org, number = top.get("url_name"), top.get("org"), top.get("course")
    missing = [name for name, value in (("url_name", run), ("org", org), ("course", number)) if not value]
    if missing:
        raise OlxError(f"course.xml: element {_describe(top)} lacks {', '.join(missing)}")
    if course_id is None:
        course_id = f"course-v1:{org}+{number}+{run}"
    elif not course_id.startswith("course-v1:") or course_id.count("+") != 2:
        raise OlxError(f"invalid course key {course_id!r} (expected course-v1:ORG+COURSE+RUN)")
    run_file = folder / "course" / f"{run}.xml"
    element = _parse_xml(run_file, folder)
    if element.tag != "course":
        raise OlxError(f"{_rel(run_file, folder)}: root element is {_describe(element)}, expected <course>")
    seen: set[tuple[str, str]] = set()
    root = _build(element, "course", run, run_file, folder, course_id, seen, depth=0)
    return OlxCourse(course_id, root, folder)


def _build(element: ET.Element, block_type: str, url_name: str, file: Path, folder: Path,
           course_id: str, seen: set, depth: int) -> OlxBlock:
    if depth > 50:
        raise OlxError(f"{_rel(file, folder)}: element {_describe(element)} is nested more than 50 levels deep")
    rel = _rel(file, folder)
    if block_type == "html" and element.get("filename"):
        body = folder / "html" / (element.get("filename", "") + ".html")
        if not body.is_file():
            raise OlxError(f"{rel}: element {_describe(element)} names html/{body.name}, which is missing")
    try:
        due = iso_datetime(element.get("due"))
        start = iso_datetime(element.get("start"))
    except ValueError:
        raise OlxError(f"{rel}: element {_describe(element)} has an invalid date "
                       f"(due={element.get('due')!r}, start={element.get('start')!r})") from None
    weight = element.get("weight")
    if weight is not None and weight.strip().lower() in ("", "null", "none"):
        weight = None
    if weight is not None:
        try:
            float(weight)
        except ValueError:
            raise OlxError(f"{rel}: element {_describe(element)} has an invalid weight {weight!r}") from None
    block = OlxBlock(
        location=_Location(course_id, block_type, url_name),
        display_name=element.get("display_name"),
        file=rel,
        graded=element.get("graded"),
        format=element.get("format"),
        due=due,
        start=start,
        visible_to_staff_only=element.get("visible_to_staff_only"),
        weight=weight,
    )
    if block_type not in CONTAINER_TYPES:
        return block
    for child in element:
        if not isinstance(child.tag, str):  # comments, processing instructions
            continue
        tag = child.tag
        if tag in NON_BLOCK_TAGS:
            continue
        child_url = child.get("url_name")
        child_file = _pointer_file(folder, tag, child_url) if child_url and len(child) == 0 else None
        if _is_pointer(child) or (child_file is not None and set(child.attrib) <= {"url_name", "xblock-family"}):
            if child_file is None:
                raise OlxError(f"{rel}: element {_describe(child)} points to {tag}/{child_url}.xml, "
                               "which is missing (partial export?)")
            child_element = _parse_xml(child_file, folder)
            if child_element.tag != tag:
                raise OlxError(f"{_rel(child_file, folder)}: root element is {_describe(child_element)}, "
                               f"expected <{tag}> (pointed to by {rel})")
            definition_file = child_file
        else:
            if not child_url:
                # Inline definitions without url_name get a stable id from their content.
                digest = hashlib.sha1(ET.tostring(child)).hexdigest()[:32]
                child_url = digest
            child_element, definition_file = child, file
        if (tag, child_url) in seen:
            raise OlxError(f"{rel}: element {_describe(child)} repeats block {tag}/{child_url} "
                           "(a block can have only one parent)")
        seen.add((tag, child_url))
        block.children.append(_build(child_element, tag, child_url, definition_file, folder,
                                     course_id, seen, depth + 1))
    return block


def _pointer_file(folder: Path, tag: str, url_name: str) -> Path | None:
    for name in (url_name, url_name.replace(":", "_")):
        path = folder / tag / f"{name}.xml"
        if path.is_file():
            return path
    return None


@contextmanager
def extracted(path: Path) -> Iterator[Path]:
    """A folder with the export: ``path`` itself, or a temporary extraction of a .tar.gz."""
    path = Path(path)
    if path.is_dir():
        yield path
        return
    if not path.exists():
        raise OlxError(f"{path}: no such file or folder")
    if not tarfile.is_tarfile(path):
        raise OlxError(f"{path}: not a folder, a .tar.gz export or a JSON-lines dump")
    with tempfile.TemporaryDirectory(prefix="cairn-olx-") as tmp:
        try:
            with tarfile.open(path) as archive:
                archive.extractall(tmp, filter="data")
        except (tarfile.TarError, EOFError, OSError, ValueError) as exc:
            raise OlxError(f"{path}: corrupted archive ({' '.join(str(exc).split())})") from None
        yield Path(tmp)


def parse_olx(path: str | os.PathLike, course_id: str | None = None) -> list[dict]:
    """Block records of an OLX export (folder or .tar.gz), depth first."""
    path = Path(path)
    with extracted(path) as folder:
        course = parse_olx_folder(folder, course_id)
        return course.records(source=f"olx:{path}")


def is_jsonl_dump(path: Path) -> bool:
    """True when ``path`` is a text file of JSON lines (what the LMS dump script prints),
    possibly with other lines around them (Django or Tutor messages)."""
    if not path.is_file():
        return False
    with open(path, "rb") as handle:
        head = handle.read(65536)
    if head[:2] == b"\x1f\x8b" or b"\x00" in head:
        return False
    return any(line.startswith(b"{") for line in head.split(b"\n")[:50])


def read_block_records(path: str | os.PathLike, course_id: str | None = None) -> list[dict]:
    """Records from JSON lines printed by cairn_dump_course_blocks.py (other lines ignored)."""
    path = Path(path)
    records = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.startswith("{"):
                continue  # Django/Tutor chatter that reached stdout
            try:
                record = json.loads(line)
            except ValueError as exc:
                raise OlxError(f"{path}: line {number} is not valid JSON ({exc})") from None
            missing = [name for name in ("course_id", "block_key", "block_type") if not record.get(name)]
            if missing:
                raise OlxError(f"{path}: line {number} lacks {', '.join(missing)}")
            records.append(record)
    if not records:
        raise OlxError(f"{path}: no block records found")
    if course_id:
        old = records[0]["course_id"]
        records = [_rekey(record, old, course_id) for record in records if record["course_id"] == old]
    return records


def _rekey(record: dict, old: str, new: str) -> dict:
    old_part, new_part = old.split(":", 1)[1], new.split(":", 1)[1]
    out = dict(record)
    out["course_id"] = new
    out["org"] = new_part.split("+", 1)[0]
    for name in ("block_key", "parent", "section_key", "subsection_key", "unit_key"):
        if out.get(name):
            out[name] = out[name].replace(f"block-v1:{old_part}+", f"block-v1:{new_part}+", 1)
    return out


def load_records(path: str | os.PathLike, course_id: str | None = None) -> list[dict]:
    """Records of any supported input: OLX folder, OLX .tar.gz, or JSON-lines dump."""
    path = Path(path)
    if is_jsonl_dump(path):
        return read_block_records(path, course_id)
    return parse_olx(path, course_id)


# ---------------------------------------------------------------------------
# Writing to the datalake
# ---------------------------------------------------------------------------

_import_lock = threading.Lock()


@dataclass
class ImportResult:
    """What one course import did."""

    course_id: str
    blocks: int
    by_type: dict[str, int]
    source: str


def _row(record: dict, imported_at: datetime) -> list:
    row = []
    for name in RECORD_FIELDS:
        value = record.get(name)
        if name in _DATE_FIELDS:
            value = None if value in (None, "") else datetime.fromisoformat(iso_datetime(value))
        elif name in ("graded", "visible_to_staff_only"):
            value = bool(value)
        elif name in ("position", "course_order", "depth", "section_index", "subsection_index", "unit_index"):
            value = int(value or 0)
        elif name == "weight":
            value = None if value in (None, "") else float(value)
        else:
            value = "" if value is None else str(value)
        row.append(value)
    row.append(imported_at)
    return row


def replace_course_blocks(engine: "Engine", records: list[dict], database: str | None = None) -> list[ImportResult]:
    """Replace the rows of each course in ``records`` atomically.

    The new rows go to ``_course_blocks_staging`` (same partitioning), then
    ``ALTER TABLE course_blocks REPLACE PARTITION <course> FROM _course_blocks_staging``
    swaps them in one step: readers see the old version or the new one, never an empty course.
    """
    database = database or engine.database
    db = sql_identifier(database)
    table, staging = f"{db}.course_blocks", f"{db}._course_blocks_staging"
    by_course: dict[str, list[dict]] = {}
    for record in records:
        by_course.setdefault(record["course_id"], []).append(record)
    results = []
    imported_at = datetime.now(timezone.utc)
    with _import_lock:
        for course_id, course_records in by_course.items():
            params = {"course": course_id}
            engine.command(f"ALTER TABLE {staging} DROP PARTITION {{course:String}}", parameters=params)
            try:
                rows = [_row(record, imported_at) for record in course_records]
            except ValueError as exc:
                raise OlxError(f"course {course_id}: invalid value in block records ({exc})") from None
            engine.insert(staging, rows, COLUMNS)
            engine.command(f"ALTER TABLE {table} REPLACE PARTITION {{course:String}} FROM {staging}",
                           parameters=params)
            engine.command(f"ALTER TABLE {staging} DROP PARTITION {{course:String}}", parameters=params)
            by_type: dict[str, int] = {}
            for record in course_records:
                by_type[record["block_type"]] = by_type.get(record["block_type"], 0) + 1
            results.append(ImportResult(course_id, len(course_records), by_type,
                                        str(course_records[0].get("source", ""))))
    return results


def import_course(engine: "Engine", path: str | os.PathLike, course_id: str | None = None) -> list[ImportResult]:
    """Import a course structure from an OLX folder, .tar.gz, or JSON-lines dump."""
    return replace_course_blocks(engine, load_records(path, course_id))


# ---------------------------------------------------------------------------
# Automatic refresh
# ---------------------------------------------------------------------------

def export_signature(path: Path) -> str:
    """Changes whenever an export changes: size+mtime of the file, or of every file in the folder."""
    path = Path(path)
    if path.is_file():
        stat = path.stat()
        return f"{stat.st_size}:{stat.st_mtime_ns}"
    digest = hashlib.sha1()
    for item in sorted(path.rglob("*")):
        if item.is_file():
            stat = item.stat()
            digest.update(f"{item.relative_to(path)}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def list_exports(folder: Path) -> list[Path]:
    """The course exports in ``folder``: .tar.gz/.tgz files, .jsonl dumps and export folders."""
    found = []
    for item in sorted(Path(folder).iterdir()):
        if item.name.startswith("."):
            continue
        if item.is_file() and item.name.endswith((".tar.gz", ".tgz", ".jsonl")):
            found.append(item)
        elif item.is_dir() and ((item / "course.xml").is_file()
                                or any((sub / "course.xml").is_file() for sub in item.iterdir() if sub.is_dir())):
            found.append(item)
    return found


def watch_exports(engine: "Engine", folder: str | os.PathLike, interval: float = 5.0,
                  rounds: int | None = None, on_event: Callable[[str, Path, Any], None] | None = None,
                  stop: threading.Event | None = None) -> dict[Path, str]:
    """Import every export in ``folder``, then re-import the ones that change, every ``interval`` s.

    A file still being written (size or mtime changed since the previous look) is
    imported on the next round, once stable. ``on_event(kind, path, detail)`` is told
    ``imported`` (detail: results) or ``failed`` (detail: the error); a failed export
    keeps its previous blocks. ``rounds`` bounds the loop (None: until ``stop`` is set).
    Returns the signatures of the exports imported last.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise CairnError(f"{folder}: not a folder")
    on_event = on_event or (lambda kind, path, detail: None)
    imported: dict[Path, str] = {}
    previous: dict[Path, str] = {}
    done = 0
    while True:
        current = {path: export_signature(path) for path in list_exports(folder)}
        for path, signature in current.items():
            if imported.get(path) == signature:
                continue
            if path.is_file() and previous.get(path) != signature and done > 0:
                continue  # changed since the last look: wait until it is stable
            try:
                results = import_course(engine, path)
            except CairnError as exc:
                on_event("failed", path, exc)
            else:
                on_event("imported", path, results)
            imported[path] = signature
        previous = current
        done += 1
        if rounds is not None and done >= rounds:
            return imported
        if stop is not None:
            if stop.wait(interval):
                return imported
        else:
            time.sleep(interval)


def stale_courses(engine: "Engine", database: str | None = None,
                  overviews_table: str = "course_overviews") -> list[tuple[str, datetime, datetime | None]]:
    """Courses published since their last import: (course_id, modified, last import or None).

    Reads ``openedx.course_overviews`` (the datalake copy of
    ``course_overviews_courseoverview``: ``id``, ``modified``), rewritten by Open edX
    on every publish, and compares with ``max(imported_at)`` in course_blocks.
    """
    db = sql_identifier(database or engine.database)
    sql = (
        f"SELECT o.id, o.modified, b.last_import FROM "
        f"(SELECT toString(id) AS id, max(toDateTime64(modified, 3, 'UTC')) AS modified "
        f" FROM {db}.{sql_identifier(overviews_table)} GROUP BY id) AS o "
        f"LEFT JOIN (SELECT course_id, max(imported_at) AS last_import FROM {db}.course_blocks "
        f" GROUP BY course_id) AS b ON b.course_id = o.id "
        f"WHERE b.last_import IS NULL OR o.modified > b.last_import ORDER BY o.id"
    )
    rows = engine.query_rows(sql, settings={"join_use_nulls": 1})
    return [(course, modified, last) for course, modified, last in rows]


def dump_with_command(command: str, course_id: str, timeout: float = 600.0) -> list[dict]:
    """Run ``command`` (``{course_id}`` replaced, e.g. the tutor line running the LMS dump script)
    and read the JSON lines it prints."""
    argv = [part.replace("{course_id}", course_id) for part in shlex.split(command)]
    try:
        done = subprocess.run(argv, capture_output=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise CairnError(f"course dump command {argv[0]!r} failed for {course_id}: {exc}") from None
    if done.returncode != 0:
        tail = " ".join(done.stderr.decode(errors="replace").split())[-300:]
        raise CairnError(f"course dump command exited with {done.returncode} for {course_id}: {tail}")
    with tempfile.NamedTemporaryFile("wb", suffix=".jsonl", delete=False) as tmp:
        tmp.write(done.stdout)
    try:
        return read_block_records(tmp.name)
    finally:
        os.unlink(tmp.name)


def refresh_stale_courses(engine: "Engine", exports_dir: str | os.PathLike | None = None,
                          dump_command: str = "", database: str | None = None,
                          on_event: Callable[[str, str, Any], None] | None = None) -> list[ImportResult]:
    """Re-import every stale course (see ``stale_courses``).

    The new structure comes from ``dump_command`` (run per course, printing JSON lines)
    when set, else from the export in ``exports_dir`` whose course.xml names that course.
    """
    on_event = on_event or (lambda kind, course, detail: None)
    stale = stale_courses(engine, database)
    by_course: dict[str, Path] = {}
    if exports_dir and not dump_command:
        for path in list_exports(Path(exports_dir)):
            try:
                key = _course_key_of(path)
            except CairnError:
                continue
            by_course[key] = path
    results: list[ImportResult] = []
    for course_id, _modified, _last in stale:
        try:
            if dump_command:
                records = dump_with_command(dump_command, course_id)
            elif course_id in by_course:
                records = load_records(by_course[course_id])
            else:
                on_event("missing", course_id, None)
                continue
            done = replace_course_blocks(engine, records, database)
        except CairnError as exc:
            on_event("failed", course_id, exc)
            continue
        on_event("imported", course_id, done)
        results.extend(done)
    return results


def _course_key_of(path: Path) -> str:
    if is_jsonl_dump(path):
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("{"):
                    return json.loads(line)["course_id"]
        raise OlxError(f"{path}: no block records")
    with extracted(path) as folder:
        top = _parse_xml(find_course_folder(folder) / "course.xml", folder)
        return f"course-v1:{top.get('org')}+{top.get('course')}+{top.get('url_name')}"


def refresh_courses(engine: "Engine", config: Any, on_event: Callable[[str, str, Any], None],
                    once: bool = False, interval: float | None = None) -> None:
    """Re-import the courses published since their last import, every ``interval`` seconds.

    Structures come from ``courses.dump_command`` or ``courses.exports_dir`` (one of them
    must be set); ``interval`` defaults to ``courses.poll_interval``. Runs until
    interrupted, or one pass with ``once``.
    """
    dump_command = config["courses.dump_command"]
    exports_dir = config["courses.exports_dir"]
    if not dump_command and not exports_dir:
        raise CairnError("set courses.dump_command or courses.exports_dir to tell where course structures come from")
    every = interval or config["courses.poll_interval"]
    while True:
        refresh_stale_courses(engine, exports_dir=exports_dir or None, dump_command=dump_command, on_event=on_event)
        if once:
            return
        time.sleep(every)
