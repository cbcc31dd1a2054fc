"""Datasets rewritten for speed give the numbers an independent computation gives.

"Completion per unit" (dataset unit_completion) once joined the completions with the blocks and
then with the units' block counts; on 10 M events the planner reordered that chain badly (4-8 s on
one course instead of 0.2 s), so it now joins once with blocks that carry their unit's count. This
test recomputes the dataset in Python from the raw tables, whole lake, one course and one org.
"""

from __future__ import annotations

from collections import defaultdict

import pytest

from cairn.superset.sources import load_sources, render_sql
from support.demo_lake import served_demo

COUNTED = ("html", "video", "problem")


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    """An admin client of `cairn serve` on a small demo (3 courses, so filters leave some out)."""
    with served_demo(tmp_path_factory.mktemp("rewrites"), learners=200, courses=3, days=21, seed=11,
                     loader="backfill") as (served, _):
        admin = served.client(database="openedx")
        yield admin
        admin.close()


def expected_unit_completion(client, courses: set[str]) -> dict:
    """(course, unit order) -> (blocks, learners started, learners who completed every block), in Python."""
    blocks = client.query("SELECT course_id, block_key, unit_key, block_type, depth, course_order "
                          "FROM course_blocks").result_rows
    blocks = [b for b in blocks if b[0] in courses]
    total: dict = defaultdict(int)
    for course, _, unit, kind, depth, _ in blocks:
        if depth > 3 and kind in COUNTED:
            total[(course, unit)] += 1
    unit_of = {(b[0], b[1]): b[2] for b in blocks if b[3] in COUNTED and total.get((b[0], b[2]))}
    done: dict = defaultdict(int)
    for course, block, user in client.query("SELECT course_key, block_key, user_id FROM block_completion "
                                            "WHERE completion >= 1").result_rows:
        if (course, block) in unit_of:
            done[(course, unit_of[(course, block)], user)] += 1
    started: dict = defaultdict(int)
    completed: dict = defaultdict(int)
    for (course, unit, _), count in done.items():
        started[(course, unit)] += 1
        completed[(course, unit)] += count >= total[(course, unit)]
    order: dict = {}
    for course, _, unit, kind, depth, position in blocks:
        if unit and (kind == "vertical" or (depth > 3 and kind in COUNTED)):
            order[(course, unit)] = min(order.get((course, unit), position), position)
    return {(course, order[(course, unit)]): (count, started[(course, unit)], completed[(course, unit)])
            for (course, unit), count in total.items() if unit and (course, unit) in order}


def test_completion_per_unit_matches_the_raw_tables(client):
    template = load_sources().template("unit_completion")
    all_courses = {row[0] for row in client.query("SELECT DISTINCT course_id FROM course_blocks").result_rows}
    assert len(all_courses) == 3
    course = sorted(all_courses)[0]
    org = course.split(":")[1].split("+")[0]
    org_courses = {c for c in all_courses if c.split(":")[1].split("+")[0] == org}
    for filters, courses in (({}, all_courses), ({"course_id": [course]}, {course}), ({"org": [org]}, org_courses)):
        result = client.query(render_sql(template, filters))
        got = {(r["course_id"], r["unit_order"]): (r["blocks"], r["learners_started"], r["learners_completed"])
               for r in (dict(zip(result.column_names, row)) for row in result.result_rows)}
        expected = expected_unit_completion(client, courses)
        assert got == expected, filters
        assert any(v[2] for v in got.values()) and any(v[1] > v[2] for v in got.values()), filters
