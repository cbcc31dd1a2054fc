"""Who studies what, and when: the demo's enrollments and their planned study sessions.

Each enrollment gets its own random stream (seeded from the run's seed, the user and
the course), a planned series of study sessions (daily and weekly rhythm in the
learner's time zone, gaps that grow as engagement falls, drop-out at some unit) and a
state (next unit, problem scores, grades) that ``cairn.demo.events`` fills in while
rendering the sessions as tracking-log lines.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timezone

from cairn.demo.courses import DemoCourse
from cairn.demo.people import Learner

# Relative activity by local hour (0-23): low at night, peaks in the evening.
HOUR_WEIGHTS = (2, 1, 1, 1, 1, 2, 4, 6, 8, 9, 9, 9, 8, 8, 8, 8, 9, 10, 12, 14, 15, 13, 9, 5)
_HOUR_CUMULATIVE = [sum(HOUR_WEIGHTS[:i + 1]) for i in range(24)]
MODES = ((55, "audit"), (28, "verified"), (10, "honor"), (5, "professional"), (2, "no-id-professional"))


@dataclass
class GroundTruth:
    """What the generator knows it wrote (history only, not --live appends)."""

    events: int = 0
    by_name: dict[str, int] = field(default_factory=dict)
    video_watchers: dict[str, set] = field(default_factory=dict)  # course -> users with play_video
    video_viewers: dict[tuple[str, str], set] = field(default_factory=dict)  # (course, video id) -> users
    last_grade: dict[tuple[str, str], dict[int, tuple[float, float]]] = field(default_factory=dict)
    enrolled: dict[str, int] = field(default_factory=dict)
    passed: dict[str, int] = field(default_factory=dict)
    forum_posts: dict[str, int] = field(default_factory=dict)


@dataclass
class Enrollment:
    """One learner in one course: plan and state."""

    learner: Learner
    course: DemoCourse
    mode: str
    created: float
    rng: random.Random
    target_units: int
    sessions: list[tuple[float, int]] = field(default_factory=list)  # (start, units)
    next_unit: int = 0
    scores: dict[str, tuple[float, float, int, float]] = field(default_factory=dict)  # problem -> earned, possible, attempts, t
    completions: dict[str, tuple[str, float]] = field(default_factory=dict)  # usage key -> (block type, time)
    first_attempted: dict[str, float] = field(default_factory=dict)  # sequential id -> time
    subsection_grades: dict[str, tuple[float, float, float, float, float]] = field(default_factory=dict)
    percent: float | None = None
    graded_at: float = 0.0
    passed_at: float | None = None
    certificate: tuple[str, str, float] | None = None  # (verify uuid, status, time)
    deactivated_at: float | None = None
    last_activity: float = 0.0

    @property
    def course_id(self) -> str:
        return self.course.course_id


# ---------------------------------------------------------------------------
# Planning
# ---------------------------------------------------------------------------

def local_time(rng: random.Random, day_start: float, utc_offset: float) -> float:
    """A moment of the day starting at ``day_start`` (UTC midnight) following the daily rhythm."""
    r = rng.random() * _HOUR_CUMULATIVE[-1]
    hour = 0
    while _HOUR_CUMULATIVE[hour] < r:
        hour += 1
    return day_start + (hour + rng.random() - utc_offset) * 3600


def plan_sessions(e: Enrollment, period_start: float, period_end: float) -> None:
    """Fill ``e.sessions``: when the learner comes back, and how many units each time."""
    rng = e.rng
    remaining = e.target_units
    engagement = e.learner.engagement
    t = e.created + (30 + 570 * rng.random()) if rng.random() < 0.6 else None
    day = int(e.created // 86400) * 86400
    while remaining > 0:
        if t is None:
            day += 86400 * max(1, int(rng.expovariate(1 / (1 + 5 * (1 - engagement)))))
            weekday = datetime.fromtimestamp(day, timezone.utc).weekday()
            if weekday >= 5 and rng.random() < 0.45:
                day += 86400 * (7 - weekday)  # weekends are quieter: often postponed to Monday
            t = local_time(rng, day, e.learner.utc_offset)
        if t >= period_end:
            break
        n = min(remaining, rng.randint(1, 3 + int(5 * engagement)))
        e.sessions.append((max(t, e.created + 1), n))
        remaining -= n
        t = None


def build_enrollments(rng: random.Random, learners: list[Learner], courses: list[DemoCourse],
                      seed: int, period_start: float, period_end: float) -> list[Enrollment]:
    """Enrollments across courses (popular courses draw more), with their journey plans."""
    from cairn.demo.people import weighted

    enrollments = []
    span = period_end - period_start
    for learner in learners:
        k = weighted(rng, ((55, 1), (30, 2), (15, 3)))[1]
        chosen: list[DemoCourse] = []
        for _ in range(min(k, len(courses))):
            pool = [c for c in courses if c not in chosen]
            chosen.append(weighted(rng, pool, key=lambda c: c.popularity))
        for course in chosen:
            created = max(learner.joined, period_start) + rng.random() ** 1.6 * max(
                0.0, period_end - max(learner.joined, period_start)) * 0.95
            created = min(created, period_start + span - 3600)
            mode = weighted(rng, MODES)[1]
            e_rng = random.Random(f"{seed}:{learner.user_id}:{course.course_id}")
            total = len(course.units())
            engagement = learner.engagement + (0.15 if mode != "audit" else 0.0)
            roll = e_rng.random()
            if roll < 0.12:
                target = 0  # enrolled, never started
            elif roll < 0.12 + 0.5 * engagement ** 1.5:
                target = total  # goes through everything
            else:
                target = max(1, int(total * e_rng.random() ** 1.4))  # drops out somewhere
            e = Enrollment(learner, course, mode, created, e_rng, target)
            plan_sessions(e, period_start, period_end)
            enrollments.append(e)
    return enrollments
