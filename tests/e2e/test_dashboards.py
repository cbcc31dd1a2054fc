"""Every dashboard of `cairn up --demo`, opened in headless Chromium: each chart rendered with data.

The browser's own requests to ``/api/v1/chart/data`` are watched: every chart of a dashboard must be
answered with HTTP 200, no error and rows (big numbers: one row), except the few charts the demo has no
data for. A screenshot of each dashboard goes to docs/img/ (the README shows them).
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import pytest

from support.paths import PROJECT_ROOT

from conftest import wait_for

IMAGES = PROJECT_ROOT / "docs" / "img"
DASHBOARDS = ("course-overview", "learners-at-risk", "engagement-over-time", "individual-learner", "operator")
# Charts the demo has no rows for: it writes no broken line, so nothing is quarantined.
EMPTY_IN_DEMO = {"Quarantined lines by reason"}
LOAD_TIMEOUT = 420


def dashboard_charts(api, slug: str) -> dict[int, str]:
    answer = api.get(f"/api/v1/dashboard/{slug}/charts")
    assert answer.status_code == 200, answer.text[:300]
    return {chart["id"]: chart["slice_name"] for chart in answer.json()["result"]}


def chart_id_of(request) -> int | None:
    """The chart a /api/v1/chart/data request is for (native filters' option queries have none)."""
    try:
        body = json.loads(request.post_data or "{}")
    except ValueError:
        return None
    form_data = body.get("form_data") or {}
    return form_data.get("slice_id")


def open_dashboard(page, base_url: str, slug: str, charts: dict[int, str]) -> dict[int, tuple[int, dict]]:
    """Open a dashboard and wait until each of its charts has its data; their answers by chart id."""
    answers: dict[int, tuple[int, dict]] = {}

    def on_response(response):
        if "/api/v1/chart/data" not in response.url:
            return
        chart_id = chart_id_of(response.request)
        if chart_id in charts:
            try:
                answers[chart_id] = (response.status, response.json())
            except Exception:  # noqa: BLE001 - a body that is not JSON is a failure reported below
                answers[chart_id] = (response.status, {"text": response.text()[:300]})

    page.on("response", on_response)
    page.goto(f"{base_url}/superset/dashboard/{slug}/", wait_until="domcontentloaded")
    try:
        page.wait_for_selector(".dashboard-component-chart-holder", timeout=120_000)
    except Exception as error:  # noqa: BLE001 - re-raised with what the page shows instead
        shot = Path(tempfile.gettempdir()) / f"cairn-e2e-failed-{slug}.png"
        page.screenshot(path=str(shot))
        text = page.evaluate("document.body ? document.body.innerText.slice(0, 500) : ''")
        raise AssertionError(f"{slug}: no chart holder after 120 s at {page.url}; the page says "
                             f"{text!r}; screenshot {shot}") from error
    def all_answered() -> bool:
        # Charts below the fold load when they come into view (dashboard virtualisation).
        page.evaluate("window.scrollBy(0, 600)")
        return set(answers) >= set(charts)

    wait_for(all_answered, LOAD_TIMEOUT,
             f"the data of every chart of {slug} (got {len(answers)} of {len(charts)})", every=2)
    page.remove_listener("response", on_response)
    return answers


def problems_of(answers: dict[int, tuple[int, dict]], charts: dict[int, str]) -> list[str]:
    problems = []
    for chart_id, (status, body) in answers.items():
        name = charts[chart_id]
        if status != 200:
            problems.append(f"{name}: HTTP {status} {json.dumps(body)[:300]}")
            continue
        for result in body.get("result", []):
            if result.get("error"):
                problems.append(f"{name}: {result['error'][:300]}")
            elif not result.get("data") and name not in EMPTY_IN_DEMO:
                problems.append(f"{name}: no rows")
    return problems


@pytest.mark.parametrize("slug", DASHBOARDS)
def test_dashboard_renders_every_chart_with_data(stack, slug):
    api = stack.api()
    charts = dashboard_charts(api, slug)
    assert len(charts) >= 6, charts
    # Tall enough for every chart to be in view: Superset draws only the charts in view.
    with stack.browser_page(width=1600, height=3400) as page:
        answers = open_dashboard(page, stack.superset_url, slug, charts)
        assert problems_of(answers, charts) == []
        # Rendered, not only answered: no chart shows an error or is still loading.
        wait_for(lambda: page.locator(".dashboard-component-chart-holder .loading").count() == 0, 120,
                 f"{slug}'s charts to finish drawing")
        holders = page.locator(".dashboard-component-chart-holder")
        assert holders.count() == len(charts)
        page.evaluate("window.scrollTo(0, 0)")
        time.sleep(2)  # ECharts animates
        IMAGES.mkdir(parents=True, exist_ok=True)
        height = page.evaluate("Math.min(3400, 40 + Math.max(...Array.from(document.querySelectorAll("
                               "'.dashboard-component-chart-holder')).map(e => e.getBoundingClientRect().bottom)))")
        page.screenshot(path=str(IMAGES / f"dashboard-{slug}.png"),
                        clip={"x": 0, "y": 0, "width": 1600, "height": height})
        alerts = page.locator(".dashboard-component-chart-holder [role=alert]").all_inner_texts()
        assert alerts == [], alerts


def test_dashboards_refresh_themselves(stack):
    api = stack.api()
    for slug in DASHBOARDS:
        answer = api.get(f"/api/v1/dashboard/{slug}")
        assert answer.status_code == 200
        metadata = json.loads(answer.json()["result"]["json_metadata"])
        assert 0 < metadata["refresh_frequency"] <= 30, slug


def test_reimport_updates_a_changed_chart_in_place(stack, tmp_path):
    """Import again after changing one dataset's SQL and one chart's metric: same objects, new content."""
    import shutil

    from cairn.superset.dashboards import import_dashboards
    from cairn.superset.sources import ASSETS

    api = stack.api()
    connection = api.get(f"/api/v1/database/{stack.cairn_database_id()}/connection")
    assert connection.status_code == 200, connection.text[:300]
    uri = connection.json()["result"]["sqlalchemy_uri"]  # the placeholder user: no password to mask

    def state() -> tuple[dict, dict]:
        charts = api.get("/api/v1/chart/", params={"q": "(page_size:1000)"}).json()["result"]
        datasets = api.get("/api/v1/dataset/", params={"q": "(page_size:1000)"}).json()["result"]
        return {c["slice_name"]: c["id"] for c in charts}, {d["table_name"]: d["id"] for d in datasets}

    charts_before, datasets_before = state()
    assets = tmp_path / "assets"
    shutil.copytree(ASSETS, assets)
    sql_path = assets / "datasets" / "courses.sql"
    sql_path.write_text(sql_path.read_text().replace("ORDER BY course_id", "ORDER BY course_id -- edited by the e2e test"))
    yaml_path = assets / "dashboards" / "operator.yaml"
    yaml_path.write_text(yaml_path.read_text().replace('metric: "uniqExact(org)"', 'metric: "uniq(org)"'))
    try:
        imported = import_dashboards(stack.superset_url, stack.admin_user, stack.admin_password, uri, assets)
        assert imported["dashboards"] == 5 and imported["charts"] >= 45
        charts_after, datasets_after = state()
        assert charts_after == charts_before and datasets_after == datasets_before  # same ids, no copies
        dataset = api.get(f"/api/v1/dataset/{datasets_after['cairn_courses']}").json()["result"]
        assert "edited by the e2e test" in dataset["sql"]
        chart = api.get(f"/api/v1/chart/{charts_after['Organisations']}").json()["result"]
        assert json.loads(chart["params"])["metric"]["sqlExpression"] == "uniq(org)"
        answer = api.chart_data(charts_after["Organisations"])
        assert answer.status_code == 200 and "uniq(org)" in answer.text
    finally:
        import_dashboards(stack.superset_url, stack.admin_user, stack.admin_password, uri)
    dataset = api.get(f"/api/v1/dataset/{datasets_before['cairn_courses']}").json()["result"]
    assert "edited by the e2e test" not in dataset["sql"]
