"""Real time: an event appended to the tracking log `cairn up` follows shows in a chart's data within 15 s.

The event is for a course nobody else writes to, so the saved chart "Events per course" (Operator
dashboard) has a row for it only once the event went through the collector, the datalake and
Superset's data cache; the chart's data is read through the chart-data API without forcing a refresh.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import datetime, timezone

DEADLINE = 15.0


def saved_chart_id(api, name: str) -> int:
    query = "(filters:!((col:slice_name,opr:eq,value:'" + name + "')))"
    answer = api.get("/api/v1/chart/", params={"q": query})
    assert answer.status_code == 200, answer.text[:300]
    [chart] = answer.json()["result"]
    return chart["id"]


def courses_in(api, chart_id: int) -> set[str]:
    answer = api.chart_data(chart_id)
    assert answer.status_code == 200, answer.text[:300]
    return {row["course_id"] for result in answer.json()["result"] for row in result["data"]}


def test_an_appended_event_reaches_a_chart_within_15_seconds(stack):
    api = stack.api()
    chart_id = saved_chart_id(api, "Events per course")
    assert courses_in(api, chart_id), "the chart has no data before the test"
    course = f"course-v1:RealTime+RT{uuid.uuid4().hex[:6]}+2026"
    now = datetime.now(timezone.utc)
    event = {"name": "edx.ui.lms.link_clicked", "event_type": "edx.ui.lms.link_clicked", "event_source": "browser",
             "time": now.isoformat(), "username": "realtime_probe", "session": uuid.uuid4().hex,
             "context": {"course_id": course, "org_id": "RealTime", "user_id": 1, "path": "/event"},
             "event": json.dumps({"current_url": "https://lms.example/x", "target_url": "https://lms.example/y"}),
             "page": "https://lms.example/x"}
    log = stack.data_dir / "demo" / "tracking.log"
    line = json.dumps(event) + "\n"
    with open(log, "a") as handle:  # one write: O_APPEND keeps it whole beside the live demo's writes
        handle.write(line)
    written = time.monotonic()
    seen_after = None
    while time.monotonic() - written < DEADLINE + 30:
        if course in courses_in(api, chart_id):
            seen_after = time.monotonic() - written
            break
        time.sleep(0.5)
    assert seen_after is not None, "the event never reached the chart"
    print(f"event visible in the chart's data after {seen_after:.1f} s")
    assert seen_after <= DEADLINE
