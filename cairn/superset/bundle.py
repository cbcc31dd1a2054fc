"""Superset's v1 assets bundle, built from the dashboards written in the repository.

``build_bundle(database_uri)`` turns ``cairn/superset/assets/`` (see ``sources.py``) into the
ZIP that ``POST /api/v1/assets/import/`` takes: one top-level folder holding
``metadata.yaml`` (type ``assets``), ``databases/``, ``datasets/Cairn/``, ``charts/`` (with
``query_context``, so the chart-data API answers for saved charts) and ``dashboards/``.
Every UUID is a uuid5 of the object's name, so a re-import updates the same objects.
"""

from __future__ import annotations

import io
import json
import uuid
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cairn.errors import CairnError
from cairn.superset.sources import DashboardSource, DatasetSource, Sources, load_sources

NAMESPACE = uuid.UUID("5b0c3f3e-58a4-4f1e-9d0e-0c8a1d2b7c61")
DATABASE_NAME = "Cairn"
DATABASE_UUID = str(uuid.uuid5(NAMESPACE, "database:Cairn"))
ROOT = "cairn_assets"
VERSION = "1.0.0"
DEFAULT_REFRESH_SECONDS = 10

# Chart kinds of the source format and the Superset viz_type each becomes.
VIZ_TYPES = {
    "big_number": "big_number_total",
    "trend": "big_number",
    "pie": "pie",
    "bar": "echarts_timeseries_bar",
    "line": "echarts_timeseries_line",
    "area": "echarts_area",
    "table": "table",
    "histogram": "histogram_v2",
}
TIME_GRAINS = ("PT1M", "PT1H", "P1D", "P1W", "P1M")


def stable_uuid(kind: str, name: str) -> str:
    """The UUID of an asset: the same name always gives the same UUID."""
    return str(uuid.uuid5(NAMESPACE, f"{kind}:{name}"))


def dataset_uuid(name: str) -> str:
    return stable_uuid("dataset", name)


def dataset_table_name(name: str) -> str:
    """The dataset's name in Superset (unique per database): ``cairn_<file name>``."""
    return f"cairn_{name}"


# ---------------------------------------------------------------------------------------
# Datasets and the database


def database_config(database_uri: str) -> dict[str, Any]:
    """The one shared Database every dataset queries (the user is chosen per connection)."""
    return {
        "database_name": DATABASE_NAME,
        "sqlalchemy_uri": database_uri,
        "cache_timeout": None,
        "expose_in_sqllab": True,
        "allow_run_async": False,
        "allow_ctas": False,
        "allow_cvas": False,
        "allow_dml": False,
        "allow_csv_upload": False,
        "impersonate_user": False,
        # No server session per connection: Superset opens a connection per query, and cairn serve
        # (like ClickHouse) caps the sessions a user may hold.
        "extra": {"per_user_caching": True, "allows_virtual_table_explore": True, "metadata_params": {},
                  "engine_params": {"connect_args": {"autogenerate_session_id": False}},
                  "cancel_query_on_windows_unload": True},
        "uuid": DATABASE_UUID,
        "version": VERSION,
    }


def dataset_config(sources: Sources, dataset: DatasetSource) -> dict[str, Any]:
    """One virtual dataset: the macros and the dataset's SQL, its columns, no cache override."""
    columns = [{
        "column_name": column.name,
        "verbose_name": column.name.replace("_", " ").capitalize(),
        "is_dttm": column.is_temporal,
        "is_active": True,
        "type": column.type,
        "groupby": True,
        "filterable": True,
        "expression": None,
        "description": None,
        "python_date_format": None,
        "extra": {},
    } for column in dataset.columns]
    return {
        "table_name": dataset_table_name(dataset.name),
        "main_dttm_col": dataset.time_column,
        "description": dataset.description,
        "default_endpoint": None,
        "offset": 0,
        "cache_timeout": None,  # superset.data_cache_seconds applies: data follows the events
        "schema": None,
        "sql": sources.template(dataset.name),
        "params": None,
        "template_params": None,
        "filter_select_enabled": True,
        "fetch_values_predicate": None,
        "extra": None,
        "normalize_columns": False,
        "uuid": dataset_uuid(dataset.name),
        "metrics": [{"metric_name": "count", "verbose_name": "Rows", "metric_type": "count",
                     "expression": "count()", "description": None, "d3format": None, "extra": {},
                     "warning_text": None}],
        "columns": columns,
        "version": VERSION,
        "database_uuid": DATABASE_UUID,
    }


# ---------------------------------------------------------------------------------------
# Charts


def _metric(spec: Any, where: str) -> dict[str, Any]:
    """An ad-hoc SQL metric from ``"SQL"`` or ``{sql: ..., label: ...}``."""
    if isinstance(spec, str):
        spec = {"sql": spec}
    if not isinstance(spec, dict) or not spec.get("sql"):
        raise CairnError(f"{where}: a metric is SQL text or {{sql: ..., label: ...}}")
    label = spec.get("label") or spec["sql"]
    return {"expressionType": "SQL", "sqlExpression": spec["sql"], "label": label, "hasCustomLabel": True,
            "optionName": "metric_" + stable_uuid("metric", label).replace("-", "")[:12]}


@dataclass
class ChartBuild:
    """A chart of a dashboard, as Superset wants it."""

    uuid: str
    name: str
    width: int
    height: int
    config: dict[str, Any]


def chart_config(dashboard: DashboardSource, spec: dict[str, Any], sources: Sources) -> ChartBuild:
    """Turn one chart of a dashboard's YAML into Superset's chart config."""
    name = spec.get("name")
    where = f"{dashboard.path.name}: chart {name!r}"
    if not name:
        raise CairnError(f"{dashboard.path.name}: every chart needs a `name`")
    kind = spec.get("viz")
    if kind not in VIZ_TYPES:
        raise CairnError(f"{where}: `viz` must be one of {sorted(VIZ_TYPES)}")
    dataset = sources.datasets.get(spec.get("dataset", ""))
    if dataset is None:
        raise CairnError(f"{where}: dataset {spec.get('dataset')!r} is not one of {sorted(sources.datasets)}")
    for column in _columns_named(spec):
        if dataset.column(column) is None:
            raise CairnError(f"{where}: dataset {dataset.name!r} has no column {column!r}")
    params, query = _params_and_query(kind, spec, dataset, where)
    datasource = {"id": 0, "type": "table"}
    params.update({"viz_type": VIZ_TYPES[kind], "datasource": "0__table", "adhoc_filters": _filters(spec),
                   "extra_form_data": {}, "dashboards": []})
    query.setdefault("filters", [])
    query.setdefault("extras", {"having": "", "where": " AND ".join(f"({f})" for f in spec.get("where", []))})
    query_context = {"datasource": datasource, "force": False, "queries": [query], "form_data": params,
                     "result_format": "json", "result_type": "full"}
    chart_uuid = stable_uuid("chart", f"{dashboard.name}/{name}")
    config = {
        "slice_name": name,
        "description": spec.get("description"),
        "certified_by": None,
        "certification_details": None,
        "viz_type": VIZ_TYPES[kind],
        "params": params,
        "query_context": json.dumps(query_context, sort_keys=True),
        "cache_timeout": None,
        "uuid": chart_uuid,
        "version": VERSION,
        "dataset_uuid": dataset_uuid(dataset.name),
    }
    return ChartBuild(chart_uuid, name, int(spec.get("width", 4)), int(spec.get("height", 50)), config)


def _columns_named(spec: dict[str, Any]) -> list[str]:
    names = []
    for key in ("x", "column"):
        if spec.get(key):
            names.append(spec[key])
    for key in ("groupby", "columns"):
        names.extend(spec.get(key) or [])
    if spec.get("order"):
        names.append(spec["order"][0])
    return names


def _filters(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"expressionType": "SQL", "sqlExpression": clause, "clause": "WHERE", "subject": None,
             "operator": None, "comparator": None, "isExtra": False, "isNew": False,
             "filterOptionName": "filter_" + stable_uuid("filter", clause).replace("-", "")[:12]}
            for clause in spec.get("where", [])]


def _params_and_query(kind: str, spec: dict[str, Any], dataset: DatasetSource,
                      where: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Form data (``params``) and the query of ``query_context`` for one kind of chart."""
    metrics = [_metric(m, where) for m in (spec.get("metrics") or ([spec["metric"]] if spec.get("metric") else []))]
    limit = int(spec.get("limit", 10000))
    common = {"row_limit": limit, "y_axis_format": spec.get("format", "SMART_NUMBER"),
              "number_format": spec.get("format", "SMART_NUMBER")}
    if kind in ("big_number", "trend", "pie") and len(metrics) != 1:
        raise CairnError(f"{where}: a {kind} chart takes exactly one `metric`")
    if kind == "big_number":
        params = {**common, "metric": metrics[0], "subheader": spec.get("subheader", ""),
                  "header_font_size": 0.3, "subheader_font_size": 0.125, "force_timestamp_formatting": False}
        return params, {"metrics": metrics, "columns": [], "row_limit": 1}
    if kind in ("trend", "bar", "line", "area"):
        return _series_chart(kind, spec, dataset, where, metrics, common)
    if kind == "pie":
        groupby = list(spec.get("groupby") or [])
        params = {**common, "metric": metrics[0], "groupby": groupby, "show_labels": True,
                  "label_type": "key_percent", "show_legend": True, "legendOrientation": "right",
                  "donut": bool(spec.get("donut")), "innerRadius": 40, "outerRadius": 70, "sort_by_metric": True}
        return params, {"metrics": metrics, "columns": groupby, "row_limit": limit,
                        "orderby": [[metrics[0], False]]}
    if kind == "histogram":
        column = spec.get("column")
        if not column:
            raise CairnError(f"{where}: a histogram needs a `column`")
        params = {**common, "column": column, "groupby": [], "bins": int(spec.get("bins", 10)),
                  "normalize": False, "cumulative": False, "x_axis_title": spec.get("x_title", column),
                  "y_axis_title": spec.get("y_title", "Learners"), "show_value": True}
        return params, {"columns": [column], "metrics": [], "row_limit": limit}
    return _table_chart(spec, where, metrics, common)


def _series_chart(kind: str, spec: dict[str, Any], dataset: DatasetSource, where: str,
                  metrics: list, common: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A chart along an x axis (trend, bar, line, area): its form data and query."""
    limit = common["row_limit"]
    x = spec.get("x")
    if not x:
        raise CairnError(f"{where}: a {kind} chart needs an `x` column")
    if not metrics:
        raise CairnError(f"{where}: a {kind} chart needs `metric` or `metrics`")
    temporal = dataset.column(x).is_temporal
    grain = spec.get("grain", "P1D") if temporal else None
    if grain and grain not in TIME_GRAINS:
        raise CairnError(f"{where}: `grain` must be one of {TIME_GRAINS}")
    axis = {"columnType": "BASE_AXIS", "sqlExpression": x, "label": x, "expressionType": "SQL"}
    if grain:
        axis["timeGrain"] = grain
    groupby = list(spec.get("groupby") or [])
    params = {**common, "x_axis": x, "time_grain_sqla": grain, "metrics": metrics, "groupby": groupby,
              "x_axis_sort_asc": True, "x_axis_sort_series": "name", "x_axis_sort_series_ascending": True,
              "order_desc": True, "truncate_metric": True, "show_legend": bool(groupby) or len(metrics) > 1,
              "legendType": "scroll", "legendOrientation": "top", "rich_tooltip": True,
              "x_axis_title": spec.get("x_title", ""), "y_axis_title": spec.get("y_title", ""),
              "time_range": "No filter", "comparison_type": "values"}
    if kind == "trend":
        params = {**common, "metric": metrics[0], "x_axis": x, "time_grain_sqla": grain,
                  "show_trend_line": True, "start_y_axis_at_zero": True, "time_range": "No filter",
                  "subheader": spec.get("subheader", "")}
    if not temporal:
        params["x_axis_sort"] = x
    if spec.get("stack"):
        params["stack"] = "Stack"
    if kind == "area":
        params.update({"opacity": 0.4, "markerEnabled": False})
    if kind == "line":
        params.update({"markerEnabled": True, "markerSize": 4})
    query = {"metrics": metrics, "columns": [axis, *groupby], "orderby": [[x, True]], "row_limit": limit,
             "time_range": "No filter"}
    return params, query


def _table_chart(spec: dict[str, Any], where: str, metrics: list,
                 common: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A table: rows as they are (`columns`) or aggregated (`groupby` and `metrics`)."""
    limit = common["row_limit"]
    if spec.get("columns"):
        columns = list(spec["columns"])
        order = spec.get("order")
        order_by = [json.dumps([order[0], order[1] == "asc"])] if order else []
        params = {**common, "query_mode": "raw", "all_columns": columns, "order_by_cols": order_by,
                  "groupby": [], "metrics": [], "server_pagination": False, "include_search": True,
                  "table_timestamp_format": "%Y-%m-%d %H:%M"}
        query = {"columns": columns, "metrics": [], "row_limit": limit,
                 "orderby": [[order[0], order[1] == "asc"]] if order else []}
        return params, query
    groupby = list(spec.get("groupby") or [])
    if not metrics or not groupby:
        raise CairnError(f"{where}: a table needs `columns` (rows as they are) or `groupby` and `metrics`")
    order_metric = metrics[int(spec.get("order_metric", 0))]
    params = {**common, "query_mode": "aggregate", "groupby": groupby, "metrics": metrics, "all_columns": [],
              "timeseries_limit_metric": order_metric, "order_desc": True, "include_search": True,
              "server_pagination": False, "table_timestamp_format": "%Y-%m-%d %H:%M"}
    return params, {"columns": groupby, "metrics": metrics, "row_limit": limit,
                    "orderby": [[order_metric, False]]}


# ---------------------------------------------------------------------------------------
# Dashboards: layout and native filters

# The native filters a dashboard may list under `filters:` and how each is built.
FILTERS = ("org", "course", "date", "grain", "video", "learner")


def _filter_id(dashboard: DashboardSource, key: str) -> str:
    return "NATIVE_FILTER-" + stable_uuid("filter", f"{dashboard.name}/{key}")[:13].replace("-", "")


def native_filters(dashboard: DashboardSource, sources: Sources, time_datasets: list[str]) -> list[dict[str, Any]]:
    """The dashboard's native filters; org/course/video/learner values reach each dataset's SQL through
    ``filter_values`` (the ``scope``/``chosen`` macros)."""
    keys = dashboard.spec.get("filters") or []
    unknown = [k for k in keys if k not in FILTERS]
    if unknown:
        raise CairnError(f"{dashboard.path.name}: unknown filters {unknown}; use some of {list(FILTERS)}")

    def select(key: str, name: str, dataset: str, column: str, parents: list[str], multi: bool = True,
               first: bool = False) -> dict[str, Any]:
        if dataset not in sources.datasets:
            raise CairnError(f"{dashboard.path.name}: the {key} filter needs the dataset {dataset!r}")
        return {
            "id": _filter_id(dashboard, key), "name": name, "filterType": "filter_select", "type": "NATIVE_FILTER",
            "targets": [{"datasetUuid": dataset_uuid(dataset), "column": {"name": column}}],
            "controlValues": {"enableEmptyFilter": first, "defaultToFirstItem": first, "multiSelect": multi,
                              "searchAllOptions": False, "inverseSelection": False, "sortAscending": True},
            "defaultDataMask": {"extraFormData": {}, "filterState": {}, "ownState": {}},
            "cascadeParentIds": [_filter_id(dashboard, p) for p in parents if p in keys],
            "scope": {"rootPath": ["ROOT_ID"], "excluded": []}, "description": "",
        }

    built = []
    for key in keys:
        if key == "org":
            built.append(select(key, "Organisation", "courses", "org", []))
        elif key == "course":
            built.append(select(key, "Course", "courses", "course_id", ["org"]))
        elif key == "video":
            built.append(select(key, "Video", "videos", "video", ["org", "course"], multi=False))
        elif key == "learner":
            # no value: the datasets show the most active learner (macro learner())
            built.append(select(key, "Learner", "learners", "username", ["org", "course"], multi=False))
        elif key == "date":
            built.append({
                "id": _filter_id(dashboard, key), "name": "Date range", "filterType": "filter_time",
                "type": "NATIVE_FILTER", "targets": [{}], "controlValues": {"enableEmptyFilter": False},
                "defaultDataMask": {"extraFormData": {"time_range": "No filter"},
                                    "filterState": {"value": "No filter"}, "ownState": {}},
                "cascadeParentIds": [], "scope": {"rootPath": ["ROOT_ID"], "excluded": []}, "description": ""})
        elif key == "grain":
            targets = [{"datasetUuid": dataset_uuid(time_datasets[0])}] if time_datasets else [{}]
            built.append({
                "id": _filter_id(dashboard, key), "name": "Time grain", "filterType": "filter_timegrain",
                "type": "NATIVE_FILTER", "targets": targets, "controlValues": {"enableEmptyFilter": False},
                "defaultDataMask": {"extraFormData": {}, "filterState": {}, "ownState": {}},
                "cascadeParentIds": [], "scope": {"rootPath": ["ROOT_ID"], "excluded": []}, "description": ""})
    return built


def dashboard_assets(dashboard: DashboardSource, sources: Sources) -> tuple[dict[str, Any], list[ChartBuild]]:
    """The dashboard's config and its charts, laid out row by row as in its YAML."""
    spec = dashboard.spec
    position: dict[str, Any] = {
        "DASHBOARD_VERSION_KEY": "v2",
        "ROOT_ID": {"type": "ROOT", "id": "ROOT_ID", "children": ["GRID_ID"]},
        "GRID_ID": {"type": "GRID", "id": "GRID_ID", "children": [], "parents": ["ROOT_ID"]},
        "HEADER_ID": {"id": "HEADER_ID", "type": "HEADER", "meta": {"text": spec["title"]}},
    }
    charts: list[ChartBuild] = []
    for row_number, row in enumerate(spec.get("rows") or [], start=1):
        if isinstance(row, dict) and "header" in row:
            header_id = f"HEADER-{row_number}"
            position["GRID_ID"]["children"].append(header_id)
            position[header_id] = {"type": "HEADER", "id": header_id, "children": [],
                                   "parents": ["ROOT_ID", "GRID_ID"],
                                   "meta": {"text": row["header"], "headerSize": "MEDIUM_HEADER",
                                            "background": "BACKGROUND_TRANSPARENT"}}
            continue
        if not isinstance(row, list) or not row:
            raise CairnError(f"{dashboard.path.name}: row {row_number} must be a list of charts or {{header: ...}}")
        row_id = f"ROW-{row_number}"
        position["GRID_ID"]["children"].append(row_id)
        position[row_id] = {"type": "ROW", "id": row_id, "children": [], "parents": ["ROOT_ID", "GRID_ID"],
                            "meta": {"background": "BACKGROUND_TRANSPARENT"}}
        if sum(int(item.get("width", 4)) for item in row) > 12:
            raise CairnError(f"{dashboard.path.name}: row {row_number} is wider than 12 columns")
        for item in row:
            chart = chart_config(dashboard, item, sources)
            charts.append(chart)
            chart_id = f"CHART-{len(charts)}"
            position[row_id]["children"].append(chart_id)
            position[chart_id] = {"type": "CHART", "id": chart_id, "children": [],
                                  "parents": ["ROOT_ID", "GRID_ID", row_id],
                                  "meta": {"width": chart.width, "height": chart.height, "chartId": len(charts),
                                           "uuid": chart.uuid, "sliceName": chart.name}}
    names = [c.name for c in charts]
    if len(set(names)) != len(names):
        raise CairnError(f"{dashboard.path.name}: two charts have the same name")
    temporal = [item.get("dataset") for row in spec.get("rows") or [] if isinstance(row, list) for item in row
                if item.get("x") and sources.datasets[item["dataset"]].column(item["x"]).is_temporal]
    metadata = {
        "refresh_frequency": int(spec.get("refresh", DEFAULT_REFRESH_SECONDS)),
        "timed_refresh_immune_slices": [],
        "expanded_slices": {},
        "color_scheme": "supersetColors",
        "label_colors": {},
        "shared_label_colors": [],
        "color_scheme_domain": [],
        "cross_filters_enabled": False,
        "native_filter_configuration": native_filters(dashboard, sources, temporal),
        "chart_configuration": {},
        "global_chart_configuration": {"scope": {"rootPath": ["ROOT_ID"], "excluded": []}, "chartsInScope": []},
    }
    config = {
        "dashboard_title": spec["title"],
        "description": spec.get("description"),
        "css": "",
        "slug": spec.get("slug", dashboard.name.replace("_", "-")),
        "certified_by": None,
        "certification_details": None,
        "published": True,
        "uuid": stable_uuid("dashboard", dashboard.name),
        "position": position,
        "metadata": metadata,
        "version": VERSION,
    }
    return config, charts


# ---------------------------------------------------------------------------------------
# The bundle


def bundle_files(database_uri: str, assets: Path | None = None) -> dict[str, dict[str, Any]]:
    """Every file of the bundle (path inside the top folder -> its YAML content as a dict)."""
    sources = load_sources(assets)
    files: dict[str, dict[str, Any]] = {
        "metadata.yaml": {"version": VERSION, "type": "assets", "timestamp": "2026-01-01T00:00:00+00:00"},
        f"databases/{DATABASE_NAME}.yaml": database_config(database_uri),
    }
    for dataset in sources.datasets.values():
        files[f"datasets/{DATABASE_NAME}/{dataset_table_name(dataset.name)}.yaml"] = dataset_config(sources, dataset)
    for dashboard in sources.dashboards:
        config, charts = dashboard_assets(dashboard, sources)
        files[f"dashboards/{dashboard.name}.yaml"] = config
        for chart in charts:
            files[f"charts/{dashboard.name}_{chart.uuid[:8]}.yaml"] = chart.config
    return files


def build_bundle(database_uri: str, assets: Path | None = None) -> bytes:
    """The ZIP for ``/api/v1/assets/import/``: YAML files under one top-level folder."""
    import yaml

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path, content in bundle_files(database_uri, assets).items():
            text = yaml.safe_dump(content, sort_keys=False, allow_unicode=True, width=120)
            archive.writestr(zipfile.ZipInfo(f"{ROOT}/{path}", (2026, 1, 1, 0, 0, 0)), text)
    return buffer.getvalue()
