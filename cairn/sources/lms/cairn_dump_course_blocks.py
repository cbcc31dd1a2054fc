"""Print the structure of Open edX courses as JSON lines, for `cairn import-course`.

Run it inside the LMS container, where the modulestore is reachable (Tutor)::

    tutor local run --volume "$(python -c 'import cairn.sources.lms as s; print(s.__path__[0])'):/cairn" \\
        lms python /cairn/cairn_dump_course_blocks.py course-v1:ORG+COURSE+RUN > blocks.jsonl
    cairn import-course blocks.jsonl

Arguments: one or more course keys, or ``--all`` for every course in the modulestore.
``--settings`` names the Django settings module (default: $DJANGO_SETTINGS_MODULE, else
``lms.envs.tutor.production``). Only JSON lines go to stdout; messages go to stderr.

It reads the published branch of the modulestore like Aspects' and Cairn's
``importcoursedata.py`` (``modulestore().get_course(key, depth=None)`` then the
children of every block, depth first) and prints one record per block with the same
fields as the OLX importer (``cairn/sources/course_structure.py``), which reuses ``course_block_records``
from this file: the two sources cannot drift apart.

This file must stay importable without Django and without Cairn (it is copied into
the LMS container alone): standard library only at module level.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime, timezone
from typing import IO, Any, Iterable, Iterator

#: Fields of a record, in this order (the columns of openedx.course_blocks but imported_at).
RECORD_FIELDS = (
    "course_id", "org", "block_key", "block_id", "block_type", "display_name", "parent",
    "position", "course_order", "depth",
    "section_key", "section_name", "section_index",
    "subsection_key", "subsection_name", "subsection_index",
    "unit_key", "unit_name", "unit_index",
    "graded", "assignment_type", "weight", "due", "start", "visible_to_staff_only", "source",
)

SECTION_TYPES = ("chapter",)
SUBSECTION_TYPES = ("sequential",)
UNIT_TYPES = ("vertical",)


def iso_datetime(value: Any) -> str | None:
    """A datetime (or an ISO-8601 text) as ``YYYY-MM-DDTHH:MM:SS[.ffffff]+00:00`` in UTC; None stays None.

    Raises ValueError for a text that is not a date.
    """
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "null", "none")):
        return None
    if isinstance(value, str):
        text = value.strip().strip('"')
        if text.endswith("Z"):
            text = text[:-1] + "+00:00"
        value = datetime.fromisoformat(text)
    if not isinstance(value, datetime):
        raise ValueError(f"not a date: {value!r}")
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).isoformat()


def _bool(value: Any) -> bool | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    return bool(value)


def _children(block: Any) -> list:
    getter = getattr(block, "get_children", None)
    if callable(getter):
        return list(getter())
    return list(getattr(block, "children", None) or [])


def _org_of(course_id: str) -> str:
    if ":" in course_id and "+" in course_id:
        return course_id.split(":", 1)[1].split("+", 1)[0]
    return course_id.split("/", 1)[0] if "/" in course_id else ""


def course_block_records(root: Any, course_id: str | None = None, source: str = "modulestore") -> Iterator[dict]:
    """One record per block under ``root`` (the course block), depth first.

    ``root`` and its descendants are XBlocks, or any objects shaped like them:
    ``location`` (``str()`` = usage key, ``.block_type``, ``.block_id``), ``display_name``,
    ``get_children()`` (or ``children``), and optionally ``graded``, ``format``, ``due``,
    ``start``, ``visible_to_staff_only``, ``weight``. Values left as None inherit from the
    parent (graded, format -> assignment_type, due, start, visible_to_staff_only), as
    Open edX's InheritanceMixin does; values set on the block win.
    """
    if course_id is None:
        course_key = getattr(root.location, "course_key", None)
        course_id = str(course_key) if course_key is not None else str(root.location)
    org = _org_of(course_id)
    order = 0
    # stack items: (block, parent record or None, position among siblings)
    stack: list[tuple[Any, dict | None, int]] = [(root, None, 0)]
    while stack:
        block, parent, position = stack.pop()
        location = block.location
        block_type = str(getattr(location, "block_type", "") or getattr(block, "category", ""))
        key = str(location)
        inherited = parent or {}
        own_graded = _bool(getattr(block, "graded", None))
        own_format = getattr(block, "format", None)
        if isinstance(own_format, str) and own_format.strip().lower() in ("null", "none"):
            own_format = None
        own_due = iso_datetime(getattr(block, "due", None))
        own_start = iso_datetime(getattr(block, "start", None))
        own_hidden = _bool(getattr(block, "visible_to_staff_only", None))
        weight = getattr(block, "weight", None)
        display_name = getattr(block, "display_name", None)
        record = {
            "course_id": course_id,
            "org": org,
            "block_key": key,
            "block_id": str(getattr(location, "block_id", "") or key.rsplit("@", 1)[-1]),
            "block_type": block_type,
            "display_name": "" if display_name is None else str(display_name),
            "parent": inherited.get("block_key", ""),
            "position": position,
            "course_order": order,
            "depth": 0 if parent is None else inherited["depth"] + 1,
            "section_key": inherited.get("section_key", ""),
            "section_name": inherited.get("section_name", ""),
            "section_index": inherited.get("section_index", 0),
            "subsection_key": inherited.get("subsection_key", ""),
            "subsection_name": inherited.get("subsection_name", ""),
            "subsection_index": inherited.get("subsection_index", 0),
            "unit_key": inherited.get("unit_key", ""),
            "unit_name": inherited.get("unit_name", ""),
            "unit_index": inherited.get("unit_index", 0),
            "graded": own_graded if own_graded is not None else bool(inherited.get("graded", False)),
            "assignment_type": str(own_format) if own_format else inherited.get("assignment_type", ""),
            "weight": None if weight is None or weight == "" else float(weight),
            "due": own_due if own_due is not None else inherited.get("due"),
            "start": own_start if own_start is not None else inherited.get("start"),
            "visible_to_staff_only": (own_hidden if own_hidden is not None
                                      else bool(inherited.get("visible_to_staff_only", False))),
            "source": source,
        }
        for kinds, level in ((SECTION_TYPES, "section"), (SUBSECTION_TYPES, "subsection"), (UNIT_TYPES, "unit")):
            if block_type in kinds:
                record[f"{level}_key"] = key
                record[f"{level}_name"] = record["display_name"]
                record[f"{level}_index"] = position
        order += 1
        yield record
        children = _children(block)
        for index in range(len(children), 0, -1):  # reversed so that the first child pops first
            stack.append((children[index - 1], record, index))


def write_records(records: Iterable[dict], out: IO[str]) -> int:
    """Write records as JSON lines (keys in RECORD_FIELDS order); returns how many."""
    count = 0
    for record in records:
        out.write(json.dumps({name: record.get(name) for name in RECORD_FIELDS}, ensure_ascii=True) + "\n")
        count += 1
    return count


def main(argv: list[str] | None = None) -> int:  # pragma: no cover - needs a running LMS
    """Entry point inside the LMS container."""
    import os

    args = list(sys.argv[1:] if argv is None else argv)
    settings = os.environ.get("DJANGO_SETTINGS_MODULE", "lms.envs.tutor.production")
    if "--settings" in args:
        index = args.index("--settings")
        settings = args[index + 1]
        del args[index:index + 2]
    dump_all = "--all" in args
    keys = [a for a in args if a != "--all"]
    if not keys and not dump_all:
        print(__doc__, file=sys.stderr)
        return 2
    os.environ["DJANGO_SETTINGS_MODULE"] = settings
    import django

    django.setup()
    from opaque_keys.edx.keys import CourseKey
    from xmodule.modulestore import ModuleStoreEnum
    from xmodule.modulestore.django import modulestore

    store = modulestore()
    if dump_all:
        keys = [str(course.id) for course in store.get_courses()]
    total = 0
    with store.branch_setting(ModuleStoreEnum.Branch.published_only):
        for key in keys:
            course = store.get_course(CourseKey.from_string(key), depth=None)
            if course is None:
                print(f"course {key} not found", file=sys.stderr)
                continue
            count = write_records(course_block_records(course, key, "modulestore"), sys.stdout)
            print(f"{key}: {count} blocks", file=sys.stderr)
            total += count
    sys.stdout.flush()
    return 0 if total else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
