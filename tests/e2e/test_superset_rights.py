"""One login per datalake user, rights enforced by the datalake, through one shared Superset Database.

A course user and an org user are created with `cairn createuser ... --email`; what they
see in a dashboard chart (its data and its CSV export), in SQL Lab and in the browser
is compared with what the datalake holds, right after the admin loaded the same chart
(the chart-data cache is per user).
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from conftest import Stack

COURSE_USER, COURSE_PASSWORD = "e2e_course_user", "course-user-password"
ORG_USER, ORG_PASSWORD = "e2e_org_user", "org-user-password"
CHART_COLUMNS = ["course_id", "org", "events"]
DATASET_SQL = "SELECT course_id, org, count() AS events FROM openedx.events GROUP BY course_id, org"


def _courses(stack: Stack) -> dict[str, str]:
    """The demo's courses and their orgs, from the datalake itself (course_id -> org)."""
    done = stack.cairn("client", "-q", "SELECT DISTINCT course_id, org FROM openedx.course_blocks ORDER BY course_id")
    return dict(line.split("\t") for line in done.stdout.strip().splitlines())


def _event_courses(stack: Stack) -> set[str]:
    """Every course with events in the datalake now, read directly (other e2e tests may add courses)."""
    done = stack.cairn("client", "-q", "SELECT DISTINCT course_id FROM openedx.events")
    return set(done.stdout.split())


@pytest.fixture(scope="module")
def people(stack: Stack) -> dict:
    """A user of one course and a user of one org, each with a Superset login (created with --email)."""
    courses = _courses(stack)
    assert len(courses) == 4, courses
    course = sorted(courses)[0]
    org = sorted(set(courses.values()))[-1]
    stack.cairn("createuser", COURSE_USER, "--password-stdin", "--course-id", course,
                "--email", "course-user@example.com", input=COURSE_PASSWORD + "\n")
    stack.cairn("createuser", ORG_USER, "--password-stdin", "--org-id", org,
                "--email", "org-user@example.com", input=ORG_PASSWORD + "\n")
    yield {"courses": courses, "course": course, "org": org,
           "org_courses": {c for c, o in courses.items() if o == org}}
    for name in (COURSE_USER, ORG_USER):
        stack.cairn("deleteuser", name, check=False)


@pytest.fixture(scope="module")
def chart(stack: Stack) -> dict:
    """A table chart on a dashboard, over a dataset of the shared Database "Cairn" (made by the admin)."""
    api = stack.api()
    database_id = stack.cairn_database_id()
    dataset = api.post("/api/v1/dataset/", {"database": database_id, "schema": "openedx",
                                            "table_name": "e2e_events_per_course", "sql": DATASET_SQL})
    assert dataset.status_code == 201, dataset.text
    dataset_id = dataset.json()["id"]
    form_data = {"viz_type": "table", "datasource": f"{dataset_id}__table", "query_mode": "raw",
                 "all_columns": CHART_COLUMNS, "row_limit": 1000, "order_by_cols": []}
    query_context = {"datasource": {"id": dataset_id, "type": "table"}, "force": False, "form_data": form_data,
                     "queries": [{"columns": CHART_COLUMNS, "metrics": [], "row_limit": 1000, "orderby": []}],
                     "result_format": "json", "result_type": "full"}
    dashboard = api.post("/api/v1/dashboard/", {"dashboard_title": "E2E rights", "slug": "e2e-rights",
                                                "published": True})
    assert dashboard.status_code == 201, dashboard.text
    created = api.post("/api/v1/chart/", {"slice_name": "E2E events per course", "viz_type": "table",
                                          "datasource_id": dataset_id, "datasource_type": "table",
                                          "params": json.dumps(form_data), "query_context": json.dumps(query_context),
                                          "dashboards": [dashboard.json()["id"]]})
    assert created.status_code == 201, created.text
    yield {"id": created.json()["id"], "dashboard": "e2e-rights", "dataset_id": dataset_id}
    api.delete(f"/api/v1/chart/{created.json()['id']}")
    api.delete(f"/api/v1/dashboard/{dashboard.json()['id']}")
    api.delete(f"/api/v1/dataset/{dataset_id}")


def _chart_rows(api, chart_id: int) -> list[dict]:
    answer = api.chart_data(chart_id)
    assert answer.status_code == 200, answer.text[:500]
    return answer.json()["result"][0]["data"]


def _csv_rows(api, chart_id: int) -> list[dict]:
    answer = api.chart_data(chart_id, fmt="csv")
    assert answer.status_code == 200, answer.text[:500]
    return list(csv.DictReader(io.StringIO(answer.text)))


def test_the_admin_sees_every_course(stack, people, chart):
    rows = _chart_rows(stack.api(), chart["id"])
    assert {row["course_id"] for row in rows} == _event_courses(stack)
    assert set(people["courses"]) <= {row["course_id"] for row in rows}


def test_a_course_user_sees_only_their_course_right_after_the_admin(stack, people, chart):
    admin, user = stack.api(), stack.api(COURSE_USER, COURSE_PASSWORD)
    every = len(_event_courses(stack))
    assert every >= 4
    for _ in range(2):  # the admin's result is fresh in the cache, then the user's: never shared
        assert len(_chart_rows(admin, chart["id"])) == every
        rows = _chart_rows(user, chart["id"])
        assert [row["course_id"] for row in rows] == [people["course"]]
        assert rows[0]["events"] > 0
    exported = _csv_rows(user, chart["id"])
    assert [row["course_id"] for row in exported] == [people["course"]]
    assert len(_csv_rows(admin, chart["id"])) == every


def test_an_org_user_sees_only_their_org(stack, people, chart):
    _chart_rows(stack.api(), chart["id"])
    rows = _chart_rows(stack.api(ORG_USER, ORG_PASSWORD), chart["id"])
    assert {row["course_id"] for row in rows} == people["org_courses"]
    assert {row["org"] for row in rows} == {people["org"]}


def test_sql_lab_runs_as_the_person(stack, people, chart):
    database_id = stack.cairn_database_id()
    query = "SELECT currentUser() AS who, course_id FROM openedx.events GROUP BY course_id ORDER BY course_id"
    admin = stack.api().sql(query, database_id)
    assert admin.status_code == 200, admin.text
    assert len(admin.json()["data"]) == len(_event_courses(stack)) >= 4
    answer = stack.api(COURSE_USER, COURSE_PASSWORD).sql(query, database_id)
    assert answer.status_code == 200, answer.text
    assert answer.json()["data"] == [{"who": COURSE_USER, "course_id": people["course"]}]
    # Tables the datalake hides from the user stay hidden in SQL Lab too.
    hidden = stack.api(COURSE_USER, COURSE_PASSWORD).sql("SELECT count() FROM openedx._users", database_id)
    assert hidden.status_code != 200


def test_the_browser_shows_a_course_user_only_their_course(stack, people, chart):
    others = set(people["courses"]) - {people["course"]}
    with stack.browser_page() as page:  # the admin first: all four courses on the dashboard
        page.goto(f"{stack.superset_url}/superset/dashboard/{chart['dashboard']}/")
        page.wait_for_selector(f"text={sorted(others)[0]}", timeout=120_000)
    with stack.browser_page(COURSE_USER, COURSE_PASSWORD) as page:
        page.goto(f"{stack.superset_url}/superset/dashboard/{chart['dashboard']}/")
        page.wait_for_selector(f"text={people['course']}", timeout=120_000)
        page.wait_for_timeout(1000)
        text = page.inner_text("body")
        assert not [course for course in others if course in text]
        page.screenshot(path=str(stack.cwd / "rights-course-user.png"))


def test_sql_lab_in_the_browser(stack, people):
    """SQL Lab as the course user: the result and its CSV download list their course only."""
    from urllib.parse import urlencode

    query = {"dbid": stack.cairn_database_id(), "schema": "openedx", "name": "e2e",
             "sql": "SELECT course_id, count() AS events FROM openedx.events GROUP BY course_id"}
    others = set(people["courses"]) - {people["course"]}
    with stack.browser_page(COURSE_USER, COURSE_PASSWORD) as page:
        page.goto(f"{stack.superset_url}/sqllab/?{urlencode(query)}")
        page.locator("[data-test=run-query-action]").first.click(timeout=120_000)
        results = page.locator("[data-test=table-container]").first
        results.wait_for(timeout=120_000)
        page.wait_for_selector("text=1 row", timeout=60_000)
        text = results.inner_text()
        assert people["course"] in text
        assert not [course for course in others if course in text]
        page.mouse.move(700, 700)
        page.screenshot(path=str(stack.cwd / "sqllab-course-user.png"))
        with page.expect_download(timeout=120_000) as download:
            page.locator("[data-test=export-csv-button]").first.click()
        rows = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text(encoding="utf-8-sig"))))
        assert [row["course_id"] for row in rows] == [people["course"]]
