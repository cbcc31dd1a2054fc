"""`cairn demo`: a realistic Open edX platform, generated.

``generate_demo(options, mysql=...)`` writes, for a seed:

* ``DIR/courses/<org>-<course>-<run>/``: OLX exports of the generated courses
  (importable with ``cairn import-course``);
* ``DIR/tracking.log``: the LMS tracking log of every learner's journey, in the
  on-disk Tutor format (see ``cairn.demo.events``, planned in ``cairn.demo.journeys``,
  written by ``cairn.demo.history``);
* ``DIR/ground_truth.json``: what the generator knows it wrote, to check queries;
* the Open edX MySQL tables (users, profiles, enrollments, grades, completion,
  course overviews, staff roles, certificates) in ``mysql.database``, consistent
  with the log.

Same seed, same ``--start``: same files and rows. ``live(...)`` keeps appending
events with the current time at a given rate.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable

from cairn.demo.courses import DemoCourse, build_courses, write_olx
from cairn.demo.events import JourneyWriter
from cairn.demo.history import ThreadedWriter, render_history
from cairn.demo.journeys import GroundTruth, build_enrollments
from cairn.demo.people import build_learners, build_staff
from cairn.errors import CairnError


@dataclass
class DemoOptions:
    """What to generate."""

    learners: int = 2000
    courses: int = 5
    days: int = 60
    seed: int = 42
    output: Path = Path("demo")
    start: datetime | None = None  # first day (UTC); default: `days` days before today
    mysql: bool = True
    write_courses: bool = True


@dataclass
class DemoResult:
    """What was generated, and the state needed to continue live."""

    options: DemoOptions
    courses: list[DemoCourse]
    enrollments: list
    events: int
    seconds: float
    tracking_log: Path
    ground_truth: Path
    course_folders: list[Path] = field(default_factory=list)
    mysql_rows: dict[str, int] = field(default_factory=dict)
    writer: Any = None

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


def period(options: DemoOptions) -> tuple[float, float]:
    """(start, end) epoch seconds of the generated history."""
    if options.start is not None:
        start = options.start.replace(tzinfo=options.start.tzinfo or timezone.utc)
    else:
        today = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
        start = today - timedelta(days=options.days)
    start = start.replace(hour=0, minute=0, second=0, microsecond=0)
    return start.timestamp(), start.timestamp() + options.days * 86400


def generate_demo(options: DemoOptions, mysql_params: Any = None) -> DemoResult:
    """Generate the demo platform (see the module docstring). ``mysql_params``: a Config or mapping."""
    if options.learners < 1 or options.courses < 1 or options.days < 1:
        raise CairnError("--learners, --courses and --days must be at least 1")
    if options.mysql:  # fail before generating anything when MySQL cannot be reached
        from cairn.sources.openedx_mysql import connect_mysql

        connect_mysql(mysql_params, database=False).close()
    output = Path(options.output)
    output.mkdir(parents=True, exist_ok=True)
    rng = random.Random(options.seed)
    start, end = period(options)
    start_dt = datetime.fromtimestamp(start, timezone.utc)
    courses = build_courses(rng, options.courses, start_dt, options.days)
    staff = build_staff(rng, sorted({c.org for c in courses}), start)
    learners = build_learners(rng, options.learners, len(staff) + 1, start, options.days)
    folders = []
    if options.write_courses:
        for course in courses:
            folders.append(write_olx(course, output / "courses"))
    began = time.perf_counter()
    enrollments = build_enrollments(rng, learners, courses, options.seed, start, end)
    truth = GroundTruth()
    writer = JourneyWriter(courses, truth)
    writer.history_end = end
    log_path = output / "tracking.log"
    with ThreadedWriter(log_path) as out:
        events = render_history(writer, enrollments, end, out)
    seconds = time.perf_counter() - began
    truth_path = output / "ground_truth.json"
    truth_path.write_text(json.dumps(ground_truth(options, courses, learners, enrollments, truth, folders),
                                     indent=1, sort_keys=False) + "\n")
    result = DemoResult(options, courses, enrollments, events, seconds, log_path, truth_path, folders, writer=writer)
    if options.mysql:
        from cairn.demo.platform import fill_mysql

        result.mysql_rows = fill_mysql(mysql_params, courses, staff + learners, enrollments, end)
    return result


def ground_truth(options: DemoOptions, courses: list[DemoCourse], learners: list, enrollments: list,
                 truth: GroundTruth, folders: list[Path]) -> dict:
    """The generator's own answers, per course, video and problem (history only)."""
    out_courses = []
    for index, course in enumerate(courses):
        cid = course.course_id
        problems = {}
        for problem in course.components("problem"):
            grades = truth.last_grade.get((cid, problem.block_id), {})
            if not grades:
                continue
            earned = [g[0] for g in grades.values()]
            problems[problem.block_id] = {
                "usage_key": problem.usage_key,
                "display_name": problem.display_name,
                "learners_attempted": len(grades),
                "average_grade": sum(earned) / len(earned),
                "max_grade": float(problem.n_inputs),
                "average_percent": sum(earned) / len(earned) / problem.n_inputs,
            }
        videos = {video.block_id: len(truth.video_viewers.get((cid, video.block_id), ()))
                  for video in course.components("video")}
        course_enrollments = [e for e in enrollments if e.course_id == cid]
        out_courses.append({
            "course_id": cid,
            "org": course.org,
            "display_name": course.display_name,
            "olx_folder": str(folders[index]) if index < len(folders) else None,
            "blocks": course.block_counts(),
            "enrollments": len(course_enrollments),
            "learners_who_watched_a_video": len(truth.video_watchers.get(cid, ())),
            "learners_passed": truth.passed.get(cid, 0),
            "certificates": sum(1 for e in course_enrollments if e.certificate),
            "forum_posts": truth.forum_posts.get(cid, 0),
            "videos": videos,
            "problems": problems,
        })
    return {
        "generator": "cairn demo",
        "seed": options.seed,
        "learners": options.learners,
        "days": options.days,
        "events": truth.events,
        "events_by_name": dict(sorted(truth.by_name.items())),
        "definitions": {
            "learners_who_watched_a_video": "distinct learners with at least one play_video event in the course",
            "average_grade": "mean over the learners who submitted the problem of the grade (points) of their "
                             "last server problem_check",
        },
        "courses": out_courses,
    }


def live(result: DemoResult, rate: float, duration: float | None = None,
         on_tick: Callable[[int], None] | None = None) -> int:
    """Append events with the current time to the tracking log, about ``rate`` per second.

    Learners continue their journeys (a learner who finished starts reviewing). Runs
    for ``duration`` seconds (None: until interrupted). Returns the number of lines added.
    """
    if rate <= 0:
        raise CairnError("--rate must be positive")
    enrollments = [e for e in result.enrollments if e.deactivated_at is None] or result.enrollments
    writer = result.writer
    writer.truth = GroundTruth()  # live events are not part of the ground truth
    writer.names = []
    writer.time_scale = 0.0005  # a session of an hour lasts about two seconds
    writer.history_end = None  # live events happen now
    rng = random.Random(result.options.seed + 1)
    added = 0
    began = time.time()
    with open(result.tracking_log, "a", encoding="ascii") as out:
        while duration is None or time.time() - began < duration:
            tick = time.time()
            while len(writer.out) < rate:
                e = rng.choice(enrollments)
                if e.next_unit >= len(e.course.units()):
                    e.next_unit = 0
                writer.session(e, time.time() + rng.random() * 0.5, rng.randint(1, 3))
            lines = sorted(writer.out)
            writer.out = []
            writer.names.clear()  # live events are not counted in the ground truth
            out.write("".join(lines))
            out.flush()
            added += len(lines)
            if on_tick:
                on_tick(len(lines))
            time.sleep(max(0.0, 1.0 - (time.time() - tick)))
    return added
