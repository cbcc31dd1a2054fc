"""The dashboards-as-code bundle, built offline: structure, stable UUIDs, valid YAML, renderable SQL."""

from __future__ import annotations

import io
import json
import shutil
import zipfile

import pytest
import yaml

from cairn.errors import CairnError
from cairn.superset.bundle import (DATABASE_UUID, ROOT, build_bundle, bundle_files, dataset_table_name,
                                   dataset_uuid)
from cairn.superset.sources import ASSETS, load_sources, render_sql

URI = "clickhousedb://cairn-superset@127.0.0.1:8123/openedx"
DASHBOARDS = {"Course overview", "Learners at risk", "Engagement over time", "Individual learner", "Operator"}


@pytest.fixture(scope="module")
def archive() -> dict[str, dict]:
    """Every YAML file of the built ZIP, parsed."""
    with zipfile.ZipFile(io.BytesIO(build_bundle(URI))) as bundle:
        return {name: yaml.safe_load(bundle.read(name)) for name in bundle.namelist()}


def by_folder(archive: dict[str, dict], folder: str) -> list[dict]:
    return [content for name, content in archive.items() if name.startswith(f"{ROOT}/{folder}/")]


def test_one_top_level_folder_and_assets_metadata(archive):
    assert {name.split("/")[0] for name in archive} == {ROOT}
    assert archive[f"{ROOT}/metadata.yaml"]["version"] == "1.0.0"
    assert archive[f"{ROOT}/metadata.yaml"]["type"] == "assets"


def test_the_shared_database(archive):
    [database] = by_folder(archive, "databases")
    assert database["database_name"] == "Cairn" and database["uuid"] == DATABASE_UUID
    assert database["sqlalchemy_uri"] == URI
    assert database["expose_in_sqllab"] is True and database["allow_dml"] is False
    assert database["extra"]["per_user_caching"] is True


def test_the_five_dashboards_refresh_themselves(archive):
    dashboards = by_folder(archive, "dashboards")
    assert {d["dashboard_title"] for d in dashboards} == DASHBOARDS
    for dashboard in dashboards:
        assert 0 < dashboard["metadata"]["refresh_frequency"] <= 30, dashboard["dashboard_title"]


def test_every_chart_has_its_dataset_and_a_query_context(archive):
    datasets = {d["uuid"]: d for d in by_folder(archive, "datasets")}
    charts = by_folder(archive, "charts")
    assert len(charts) >= 45
    for chart in charts:
        dataset = datasets[chart["dataset_uuid"]]
        columns = {c["column_name"] for c in dataset["columns"]}
        context = json.loads(chart["query_context"])
        assert context["form_data"] == chart["params"]
        [query] = context["queries"]
        for column in query["columns"]:
            name = column["sqlExpression"] if isinstance(column, dict) else column
            assert name in columns, (chart["slice_name"], name)
        assert chart["params"]["viz_type"] == chart["viz_type"]
        assert dataset["database_uuid"] == DATABASE_UUID


def test_positions_hold_exactly_the_charts_and_filters_target_bundled_datasets(archive):
    charts = {c["uuid"] for c in by_folder(archive, "charts")}
    datasets = {d["uuid"] for d in by_folder(archive, "datasets")}
    placed = set()
    for dashboard in by_folder(archive, "dashboards"):
        for item in dashboard["position"].values():
            if isinstance(item, dict) and item.get("type") == "CHART":
                placed.add(item["meta"]["uuid"])
        filters = dashboard["metadata"]["native_filter_configuration"]
        names = {f["name"] for f in filters}
        assert {"Organisation", "Course"} <= names, dashboard["dashboard_title"]
        for native_filter in filters:
            for target in native_filter["targets"]:
                assert "datasetUuid" not in target or target["datasetUuid"] in datasets
    assert placed == charts


def test_the_must_have_charts_are_there(archive):
    names = {c["slice_name"] for c in by_folder(archive, "charts")}
    for name in ("Enrolled learners", "Enrollments over time by mode", "Gender", "Level of education",
                 "Active learners (7 days)", "Watched a video (7 days)", "Tried a problem (7 days)",
                 "Time spent per learner (minutes)", "Learners passing", "Grade distribution", "Completion per unit",
                 "Engagement per section", "Engagement per subsection", "Unique video viewers",
                 "Total watch time (hours)", "Average watch time per viewer (minutes)", "Video x-ray",
                 "Partial and full views", "Problem attempts and results", "At-risk learners", "Last visit",
                 "Daily active learners", "Weekly active learners", "Events by type", "New enrollments per week",
                 "Video minutes watched", "Problem submissions", "Top units", "Events per minute",
                 "Ingestion per source", "Quarantined lines by reason"):
        assert name in names


def test_uuids_are_stable_and_distinct():
    first, second = bundle_files(URI), bundle_files("clickhousedb://other@host:1/openedx")
    uuids = [content["uuid"] for content in first.values() if "uuid" in content]
    assert len(uuids) == len(set(uuids))
    assert uuids == [content["uuid"] for content in second.values() if "uuid" in content]
    assert first["datasets/Cairn/cairn_courses.yaml"]["uuid"] == dataset_uuid("courses")
    assert build_bundle(URI) == build_bundle(URI)  # byte for byte: fixed timestamps and order


def test_dataset_sql_renders_with_and_without_filters():
    sources = load_sources()
    assert len(sources.datasets) >= 15
    for name in sources.datasets:
        template = sources.template(name)
        for filters, since in (({}, None), ({"course_id": ["course-v1:A+B+C"], "org": ["A"], "video": ["01.1.1 v"],
                                             "username": ["ann"]}, "2026-01-01T00:00:00")):
            sql = render_sql(template, filters, from_dttm=since, to_dttm=since and "2026-02-01T00:00:00")
            assert "{{" not in sql and "{%" not in sql and "filter_values" not in sql, name
            assert "SELECT" in sql
            if filters and "scope(" in sources.datasets[name].sql:
                assert "IN ('course-v1:A+B+C')" in sql and "IN ('A')" in sql, name


def test_filter_values_are_quoted():
    sources = load_sources()
    sql = render_sql(sources.template("enrollments"), {"course_id": ["x') OR 1=1 --"]})
    assert "IN ('x\\') OR 1=1 --')" in sql


def test_reference_mistakes_are_not_repeated():
    sources = load_sources()
    recent = sources.datasets["recent_activity"].sql
    assert "name = 'play_video'" in recent and "'''" not in recent
    for name in ("learner_time", "video_xray", "video_views"):
        sql = sources.datasets[name].sql
        assert "range(120)" not in sql and "arrayJoin(range(floor" not in sql, name


def copy_assets(tmp_path):
    target = tmp_path / "assets"
    shutil.copytree(ASSETS, target)
    return target


def test_a_chart_on_a_missing_dataset_is_one_clear_error(tmp_path):
    assets = copy_assets(tmp_path)
    path = assets / "dashboards" / "operator.yaml"
    path.write_text(path.read_text().replace("dataset: ingestion,", "dataset: nowhere,", 1))
    with pytest.raises(CairnError, match=r"operator.yaml: chart 'Ingestion lag \(s\)': dataset 'nowhere' is not one"):
        bundle_files(URI, assets)


def test_a_chart_on_a_missing_column_is_one_clear_error(tmp_path):
    assets = copy_assets(tmp_path)
    path = assets / "dashboards" / "operator.yaml"
    path.write_text(path.read_text().replace("x: minute,", "x: second,", 1))
    with pytest.raises(CairnError, match="dataset 'events_per_minute' has no column 'second'"):
        bundle_files(URI, assets)


def test_a_dataset_without_columns_is_one_clear_error(tmp_path):
    assets = copy_assets(tmp_path)
    (assets / "datasets" / "broken.sql").write_text("-- Broken\nSELECT 1\n")
    with pytest.raises(CairnError, match="broken.sql: the header needs a `-- columns: name Type, ...` line"):
        bundle_files(URI, assets)


def test_dataset_names_in_superset():
    assert dataset_table_name("courses") == "cairn_courses"
