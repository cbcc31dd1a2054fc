"""Every dashboard chart's query on a large demo datalake through `cairn serve`.

    .venv/bin/python bench/bench_dashboards.py --events 10000000          # the issue's size
    .venv/bin/python bench/bench_dashboards.py --events 300000 --runs 5   # a quick run

1. generates a demo platform of about --events events (`cairn demo`: 5 courses, 60 days,
   learners = events / 245; MySQL tables in a throw-away database) and loads it
   (`cairn migrate`, `import-course`, `backfill`, `mysql sync`), timing each step; the
   tracking log is deleted once loaded (--keep-log keeps it); with --workdir an existing
   datalake of an earlier run is reused (--prepare-only: build it and stop);
2. starts `cairn serve` on it and, for every chart of every dashboard, runs the query
   Superset sends for it (the chart's aggregation around the dataset's SQL rendered with
   the dashboard's filters, built like Superset builds it) --runs times without a filter
   and with a course filter (the largest course): p50 and p95 per chart;
3. loads each whole dashboard warm: its charts at once on 6 connections (a browser's
   limit per host), with the course filter, after one warm-up round;
4. for time spent per learner and the video x-ray, also runs the reference's
   exploded-rows approach on the same data (every event expanded to 120 one-second rows;
   one row per watched second) and prints the ratio to ours;
5. baseline in the same run: the plain engine's simplest work through the same server
   (`SELECT count()` of the events, whole lake and one course).

Targets (2 cores): p95 <= 1 s per chart with a course filter, <= 2 s without.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cairn.superset.sources import load_sources, render_sql  # noqa: E402

CAIRN = str(Path(sys.executable).parent / "cairn")
EVENTS_PER_LEARNER = 197  # 5 courses, 60 days, seed 3: 4000 learners -> 786,422 events
GRAINS = {"PT1M": "toStartOfMinute", "PT1H": "toStartOfHour", "P1D": "toStartOfDay", "P1W": "toMonday",
          "P1M": "toStartOfMonth"}

# GROUP BY rather than DISTINCT (the same rows): at 10 M events one course explodes into ~400 M
# rows, which DISTINCT must hold in memory (it failed at 6 GB) while GROUP BY can spill to disk.
TIME_SPENT_EXPLODED = """
SELECT round(count() / greatest(uniqExact(user_id), 1) / 60, 1) FROM (
    SELECT user_id, second FROM (
        SELECT assumeNotNull(user_id) AS user_id, arrayJoin(range(toUInt32(toUnixTimestamp(time)),
               toUInt32(toUnixTimestamp(time)) + 120)) AS second
        FROM events WHERE user_id > 0 AND course_id != '' {where})
    GROUP BY user_id, second)
SETTINGS max_memory_usage = 6000000000, max_bytes_before_external_group_by = 2000000000, max_execution_time = 900
"""
TIME_SPENT_OURS = "SELECT round(avg(seconds) / 60, 1) FROM ({sql})"
XRAY_EXPLODED = """
SELECT second, uniqExact(user_id) AS unique_viewers, count() - unique_viewers AS repeat_views FROM (
    SELECT user_id, arrayJoin(range(toUInt32(floor(s)), toUInt32(ceil(e)))) AS second FROM (
        SELECT user_id, start_at AS s, least(end_at, d) AS e FROM (
            SELECT assumeNotNull(user_id) AS user_id, ifNull(duration, 0) AS d,
                   multiIf(event_type IN ('pause_video', 'stop_video'), position, event_type = 'seek_video', old_time,
                           event_type = 'complete_video', ifNull(position, duration), NULL) AS end_at,
                   lagInFrame(multiIf(event_type = 'play_video', position, event_type = 'seek_video', new_time, NULL))
                       OVER (PARTITION BY user_id, video_id, session ORDER BY time
                             ROWS BETWEEN 1 PRECEDING AND CURRENT ROW) AS start_at
            FROM video_events
            WHERE course_id = {course} AND video_id = {video} AND user_id IS NOT NULL
              AND event_type IN ('play_video', 'pause_video', 'seek_video', 'stop_video', 'complete_video'))
        WHERE start_at IS NOT NULL AND end_at IS NOT NULL AND least(end_at, d) > start_at))
GROUP BY second ORDER BY second
"""


def env(data_dir: Path, mysql_db: str) -> dict:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CAIRN_")}
    return {**clean, "CAIRN_DATA_DIR": str(data_dir), "CAIRN_MYSQL_DATABASE": mysql_db, "COLUMNS": "200"}


def cairn(data_dir: Path, mysql_db: str, *args: str) -> float:
    started = time.monotonic()
    done = subprocess.run([CAIRN, *args], env=env(data_dir, mysql_db), capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"cairn {' '.join(args)} failed: {done.stdout[-2000:]}{done.stderr[-2000:]}")
    return time.monotonic() - started


def prepare(workdir: Path, events: int, mysql_db: str, keep_log: bool = False) -> dict:
    """Generate and load the demo unless the work folder already holds it; the steps' durations."""
    data, demo, marker = workdir / "data", workdir / "demo", workdir / "prepared.json"
    if marker.exists():
        return json.loads(marker.read_text())
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    learners = max(50, events // EVENTS_PER_LEARNER)
    steps = {"learners": learners}
    steps["generate"] = cairn(data, mysql_db, "demo", "--learners", str(learners), "--courses", "5", "--days", "60",
                              "--seed", "3", "--output", str(demo))
    steps["migrate"] = cairn(data, mysql_db, "migrate")
    steps["import_courses"] = cairn(data, mysql_db, "import-course", *map(str, sorted((demo / "courses").iterdir())))
    # `backfill`, not `load`: backfill inserts in large batches (tens of thousands of events/s);
    # `load` uses the real-time batch size and made a 10 M-event lake take hours.
    steps["backfill"] = cairn(data, mysql_db, "backfill", "--quiet", str(demo / "tracking.log"))
    steps["mysql_sync"] = cairn(data, mysql_db, "mysql", "sync")
    steps["events"] = json.loads((demo / "ground_truth.json").read_text())["events"]
    if not keep_log:  # 10 M events are ~14 GB of log; the datalake holds them in well under 2 GB
        (demo / "tracking.log").unlink()
    marker.write_text(json.dumps(steps))
    return steps


def start_serve(data: Path, mysql_db: str):
    sys.path.insert(0, str(ROOT / "tests"))
    from support.serve import start_server

    return start_server(data, env={"CAIRN_MYSQL_DATABASE": mysql_db}, timeout=600)


# ---------------------------------------------------------------------------------------
# The query Superset sends for a chart


def chart_sql(chart: dict, dataset_sql: str, columns: dict) -> str:
    """The chart's aggregation around its dataset, as Superset builds it (virtual_table)."""
    def metric(spec):
        return spec if isinstance(spec, str) else spec["sql"]

    metrics = [metric(m) for m in (chart.get("metrics") or ([chart["metric"]] if chart.get("metric") else []))]
    where = " AND ".join(f"({w})" for w in chart.get("where", [])) or "1"
    source = f"({dataset_sql}) AS virtual_table"
    viz = chart["viz"]
    if viz == "big_number":
        return f"SELECT {metrics[0]} FROM {source} WHERE {where} LIMIT 1"
    if viz == "histogram":
        return f"SELECT {chart['column']} FROM {source} WHERE {where} LIMIT 10000"
    if viz == "table" and chart.get("columns"):
        order = chart.get("order")
        order_by = f" ORDER BY {order[0]} {'ASC' if order[1] == 'asc' else 'DESC'}" if order else ""
        return f"SELECT {', '.join(chart['columns'])} FROM {source} WHERE {where}{order_by} LIMIT {chart.get('limit', 10000)}"
    dims = []
    if chart.get("x"):
        x = chart["x"]
        dims.append(f"{GRAINS[chart.get('grain', 'P1D')]}(toDateTime({x})) AS {x}" if columns[x].is_temporal else x)
    dims += list(chart.get("groupby") or [])
    names = [d.split(" AS ")[-1] for d in dims]
    select = ", ".join(dims + [f"{m} AS m{i}" for i, m in enumerate(metrics)])
    return (f"SELECT {select} FROM {source} WHERE {where} GROUP BY {', '.join(names)} "
            f"ORDER BY m0 DESC LIMIT {chart.get('limit', 10000)}")


def charts(sources) -> list[tuple[str, dict]]:
    found = []
    for dashboard in sources.dashboards:
        for row in dashboard.spec.get("rows") or []:
            if isinstance(row, list):
                found.extend((dashboard.spec["title"], chart) for chart in row)
    return found


def timed(client, sql: str) -> float:
    started = time.perf_counter()
    client.query(sql)
    return time.perf_counter() - started


def loadavg() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--workdir", type=Path, default=None, help="keep (and reuse) the generated datalake here")
    parser.add_argument("--keep-log", action="store_true", help="keep the generated tracking log after loading it")
    parser.add_argument("--prepare-only", action="store_true", help="build the datalake, run no query")
    parser.add_argument("--report", type=Path, default=None, help="also write the report (Markdown) to this file")
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-dash-"))
    mysql_db = "cairn_bench_dashboards"
    steps = prepare(workdir, args.events, mysql_db, args.keep_log)
    print(f"prepared in {workdir}: {json.dumps(steps)}", flush=True)
    if args.prepare_only:
        return
    served = start_serve(workdir / "data", mysql_db)
    try:
        report = run(served, steps, args)
    finally:
        from support.serve import stop_server

        stop_server(served)
    print(report)
    if args.report is not None:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(report)


def run(served, steps: dict, args) -> str:
    sources = load_sources()
    client = served.client(database="openedx", send_receive_timeout=600)
    course, total = client.query("SELECT course_id, count() AS n FROM events WHERE course_id != '' "
                                 "GROUP BY course_id ORDER BY n DESC LIMIT 1").result_rows[0]
    events = client.query("SELECT count() FROM events").result_rows[0][0]
    lines = [f"# Dashboard queries through `cairn serve` ({events:,} events)", "",
             f"Command: `.venv/bin/python bench/bench_dashboards.py --events {args.events} --runs {args.runs}`", "",
             f"Preparation: {json.dumps(steps)}", "",
             f"Course filter: {course} ({total:,} events, the largest course).", "",
             f"Load average (1, 5, 15 min) at the start: {loadavg()}.", ""]
    # Baseline: the plain engine's simplest work through the same server.
    base_all = [timed(client, "SELECT count() FROM events") for _ in range(args.runs)]
    base_one = [timed(client, f"SELECT count() FROM events WHERE course_id = '{course}'") for _ in range(args.runs)]
    lines += [f"Baseline `SELECT count() FROM events`: p50 {statistics.median(base_all):.3f} s; one course: "
              f"p50 {statistics.median(base_one):.3f} s.", "",
              "| dashboard | chart | p50 all | p95 all | p50 course | p95 course |", "|---|---|---|---|---|---|"]
    worst = {"all": 0.0, "course": 0.0}
    per_dashboard: dict[str, list[str]] = {}
    for title, chart in charts(sources):
        dataset = sources.datasets[chart["dataset"]]
        columns = {c.name: c for c in dataset.columns}
        row = []
        for label, filters in (("all", {}), ("course", {"course_id": [course]})):
            sql = chart_sql(chart, render_sql(sources.template(dataset.name), filters), columns)
            timed(client, sql)  # warm
            times = [timed(client, sql) for _ in range(args.runs)]
            worst[label] = max(worst[label], percentile(times, 0.95))
            row += [statistics.median(times), percentile(times, 0.95)]
            if label == "course":
                per_dashboard.setdefault(title, []).append(sql)
        lines.append(f"| {title} | {chart['name']} | " + " | ".join(f"{v:.3f}" for v in row) + " |")
    lines += ["", f"Worst p95: {worst['all']:.3f} s without a filter (target <= 2 s), "
                  f"{worst['course']:.3f} s with a course filter (target <= 1 s). Load average after the "
                  f"charts: {loadavg()}.", ""]
    lines += ["| dashboard (course filter, warm, 6 connections) | charts | load time |", "|---|---|---|"]
    for title, queries in per_dashboard.items():
        clients = [served.client(database="openedx", send_receive_timeout=600) for _ in range(6)]

        def load() -> float:
            # one connection per worker, as a browser keeps 6 per host
            batches = [queries[i::6] for i in range(6)]
            started = time.perf_counter()
            with ThreadPoolExecutor(6) as pool:
                list(pool.map(lambda i: [clients[i].query(sql) for sql in batches[i]], range(6)))
            return time.perf_counter() - started

        load()
        lines.append(f"| {title} | {len(queries)} | {statistics.median([load() for _ in range(3)]):.2f} s |")
        for extra in clients:
            extra.close()
    lines += ["", f"Load average after the dashboards: {loadavg()}.", "",
              *compare_exploded(client, sources, course, args.runs), "", f"Load average at the end: {loadavg()}."]
    client.close()
    return "\n".join(lines) + "\n"


def compare_exploded(client, sources, course: str, runs: int) -> list[str]:
    """Ours against the reference's exploded rows, same data, same course."""
    quoted = "'" + course.replace("\\", "\\\\").replace("'", "\\'") + "'"
    small = client.query("SELECT count() FROM events").result_rows[0][0] < 2_000_000
    out = ["| approach | ours p50 | exploded p50 | exploded / ours |", "|---|---|---|---|"]
    for label, where in (("time spent per learner, one course", f"AND course_id = {quoted}"),
                         ("time spent per learner, whole lake", "")):
        ours_sql = TIME_SPENT_OURS.format(sql=render_sql(sources.template("learner_time"),
                                                          {"course_id": [course]} if where else {}))
        exploded_sql = TIME_SPENT_EXPLODED.format(where=where)
        ours = statistics.median([timed(client, ours_sql) for _ in range(max(3, runs // 2))])
        # one run on a large lake: each takes from seconds to minutes of both cores
        exploded = statistics.median([timed(client, exploded_sql) for _ in range(3 if small else 1)])
        out.append(f"| {label} | {ours:.3f} s | {exploded:.3f} s | {exploded / ours:.1f}x |")
    video = client.query(
        f"SELECT video_id FROM video_events WHERE course_id = {quoted} AND event_type = 'play_video' "
        "GROUP BY video_id ORDER BY uniqExact(user_id) DESC, video_id LIMIT 1").result_rows[0][0]
    # Both sides get the video: ours through the Video filter (its label), the exploded one by id.
    label = client.query(
        "SELECT concat(leftPad(toString(section_index), 2, '0'), '.', toString(subsection_index), '.', "
        f"toString(unit_index), ' ', display_name) FROM course_blocks WHERE course_id = {quoted} "
        f"AND block_id = '{video}'").result_rows[0][0]
    xray_sql = render_sql(sources.template("video_xray"), {"course_id": [course], "video": [label]})
    exploded_sql = XRAY_EXPLODED.format(course=quoted, video="'" + video + "'")
    ours = statistics.median([timed(client, xray_sql) for _ in range(max(3, runs // 2))])
    exploded = statistics.median([timed(client, exploded_sql) for _ in range(3)])
    rows = client.query(f"SELECT sum(unique_viewers), sum(repeat_views) FROM ({xray_sql})").result_rows[0]
    check = client.query(f"SELECT sum(unique_viewers), sum(repeat_views) FROM ({exploded_sql})").result_rows[0]
    out.append(f"| video x-ray, most watched video | {ours:.3f} s | {exploded:.3f} s | {exploded / ours:.1f}x |")
    out += ["", f"X-ray totals (viewer-seconds, repeat-seconds): ours {tuple(rows)}, exploded {tuple(check)}"
                f" ({'equal' if tuple(rows) == tuple(check) else 'DIFFERENT'})."]
    return out


if __name__ == "__main__":
    main()
