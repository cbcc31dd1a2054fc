"""Learner journeys rendered as Open edX tracking-log lines.

The sessions planned for each enrollment (``cairn.demo.journeys``) become events
here, and update the enrollment's state (next unit, problem scores, grades). The
history is written day by day by ``cairn.demo.history``.

Lines follow the on-disk Tutor shape (``asctime LEVEL PID [tracking] [user N] [ip
IP] logger.py:41 - {json}``, keys in LegacyFieldMappingProcessor order): browser
events carry ``event`` as a JSON-encoded string (or a URL-encoded form string for
problem_check, an array for problem_graded), server events an object, Celery grade
events no username / user id in context and ``user_id`` as a string in ``event``,
request-path events the URL path as name with ``{"GET": ..., "POST": ...}`` as a string.

Speed: payloads are assembled from strings precomputed per course, learner and
session; nothing is passed through json.dumps per event.
"""

from __future__ import annotations

import json
import random
from datetime import datetime, timezone

from cairn.demo.courses import CHOICE_WORDS, Component, DemoCourse, Subsection
from cairn.demo.journeys import Enrollment, GroundTruth

LMS_HOST = "local.openedx.io"
MFE_HOST = "apps.local.openedx.io"
CERTIFICATE_MODES = ("verified", "honor", "professional", "no-id-professional")
LETTER = "Pass"


def _s(text: str) -> str:
    """``text`` as the inside of a JSON string (ASCII, escaped)."""
    return json.dumps(text)[1:-1]


_day_cache: dict[int, str] = {}
_HMS = [f"{h:02d}:{m:02d}:{sec:02d}" for h in range(24) for m in range(60) for sec in range(60)]


_last_second = [-1, "", ""]


def _second(sec: int) -> None:
    """Point the time-string cache at second ``sec`` (epoch)."""
    day, rem = divmod(sec, 86400)
    date = _day_cache.get(day)
    if date is None:
        date = datetime.fromtimestamp(day * 86400, timezone.utc).strftime("%Y-%m-%d")
        _day_cache[day] = date
    hms = _HMS[rem]
    last = _last_second
    last[0], last[1], last[2] = sec, date + "T" + hms, date + " " + hms


def format_times(t: float) -> tuple[str, str]:
    """(event time ``2023-05-23T14:12:17.308123+00:00``, log asctime ``2023-05-23 14:12:17,308``)."""
    sec = int(t)
    last = _last_second
    if sec != last[0]:
        _second(sec)
    micro = int((t - sec) * 1_000_000)
    # Python's isoformat drops the fraction when it is zero; so does Open edX's log.
    if micro:
        digits = str(1_000_000 + micro)
        return last[1] + "." + digits[1:] + "+00:00", last[2] + "," + digits[1:4]
    return last[1] + "+00:00", last[2] + ",000"


def str_datetime(t: float) -> str:
    """``str(datetime)`` as grade events write it: ``2023-05-12 20:55:53.096285+00:00``."""
    sec = int(t)
    last = _last_second
    if sec != last[0]:
        _second(sec)
    micro = int((t - sec) * 1_000_000)
    if micro:
        return last[2] + "." + str(1_000_000 + micro)[1:] + "+00:00"
    return last[2] + "+00:00"



class CourseInfo:
    """Precomputed strings and grading structure of a course."""

    def __init__(self, course: DemoCourse):
        self.course = course
        self.cid = course.course_id
        self.units = course.units()
        self.problems_by_sub: dict[str, list[Component]] = {}
        self.possible_by_sub: dict[str, float] = {}
        for sub in course.subsections():
            problems = [c for unit in sub.units for c in unit.components if c.block_type == "problem"]
            self.problems_by_sub[sub.block_id] = problems
            self.possible_by_sub[sub.block_id] = float(sum(p.n_inputs for p in problems))
        self.sub_of_problem = {p.block_id: sub for sub in course.subsections()
                               for p in self.problems_by_sub[sub.block_id]}
        self.weights = {g["type"]: g["weight"] for g in course.grader}
        self.graded_subs: dict[str, list[Subsection]] = {}
        for sub in course.subsections():
            if sub.graded:
                self.graded_subs.setdefault(sub.assignment_type, []).append(sub)
        # (weight of the type / number of its subsections, subsection, points possible)
        self.grade_terms = [(self.weights.get(kind, 0.0) / len(subs), sub.block_id, self.possible_by_sub[sub.block_id])
                            for kind, subs in self.graded_subs.items() for sub in subs
                            if self.possible_by_sub[sub.block_id]]
        self.edited = str_datetime(course.edited.timestamp())
        self.threads: list[tuple[str, float, str]] = []  # (thread id, created, commentable id)
        self.server_ctx_head = f'"context": {{"course_id": "{self.cid}", "course_user_tags": {{}}, "user_id": '
        self.names = {c.block_id: _s(c.display_name) for c in course.components()}
        self.modules = {c.block_id: f', "module": {{"display_name": "{_s(c.display_name)}", "usage_key": "{c.usage_key}"}}'
                        for c in course.components()}
        self.pages = {unit.block_id: (
            f"http://{MFE_HOST}/learning/course/{self.cid}/{sub.usage_key}/{unit.usage_key}",
            f"http://{LMS_HOST}/xblock/{unit.usage_key}?show_title=0&show_bookmark_button=0"
            "&recheck_access=1&view=student_view") for _, sub, unit in self.units}
        # Per problem, input and choice: the strings of the answer in each event's payload.
        self.pieces: dict[str, list[list[tuple[str, ...]]]] = {}
        self.input_states: dict[str, str] = {}
        for c in course.components("problem"):
            ids = [f"{c.block_id}_{i + 2}_1" for i in range(c.n_inputs)]
            self.input_states[c.block_id] = ", ".join(f'"{i}": {{}}' for i in ids)
            self.pieces[c.block_id] = [[(
                f"input_{ids[i]}=choice_{k}",
                f'\\"input_{ids[i]}\\": [\\"choice_{k}\\"]',
                f'"{ids[i]}": "choice_{k}"',
                f'"{ids[i]}": {{"correctness": "{"correct" if k == c.correct[i] else "incorrect"}", "npoints": null, '
                f'"msg": "", "hint": "", "hintmode": null, "queuestate": null, "answervariable": null}}',
                f'"{ids[i]}": {{"question": "Question {i + 1}", "answer": "Option {CHOICE_WORDS[k]}", '
                f'"response_type": "multiplechoiceresponse", "input_type": "choicegroup", '
                f'"correct": {"true" if k == c.correct[i] else "false"}, "variant": "", "group_label": ""}}',
            ) for k in range(c.n_choices)] for i in range(c.n_inputs)]
        self.handler_paths = {c.block_id: f"/courses/{self.cid}/xblock/{c.usage_key}/handler/" + (
            "xmodule_handler/problem_check" if c.block_type == "problem" else "publish_completion")
            for c in course.components()}


class JourneyWriter:
    """Renders enrollments' sessions into tracking-log lines."""

    def __init__(self, courses: list[DemoCourse], truth: GroundTruth | None = None, time_scale: float = 1.0):
        self.info = {course.course_id: CourseInfo(course) for course in courses}
        self.truth = truth or GroundTruth()
        self.names: list[str] = []  # name of every event rendered (counted once at the end)
        self.time_scale = time_scale
        self.history_end: float | None = None  # no event of the history may be later than this
        self.out: list[str] = []  # lines; they start with asctime, so sorting them sorts by time

    # -- low-level emitters ------------------------------------------------
    def browser(self, t: float, s: "_Session", name: str, event_type: str, event: str, page: str) -> None:
        """A browser event: ``event`` is the already-encoded JSON value (usually a JSON string)."""
        # format_times(), inlined: this is the hottest code of the generator
        sec = int(t)
        last = _last_second
        if sec != last[0]:
            _second(sec)
        micro = int((t - sec) * 1_000_000)
        if micro:
            digits = str(1_000_000 + micro)
            iso, asc = last[1] + "." + digits[1:] + "+00:00", last[2] + "," + digits[1:4]
        else:
            iso, asc = last[1] + "+00:00", last[2] + ",000"
        self.out.append((
            f'{asc}{s.prefix}{name}", {s.browser_head}"referer": "{page}", {s.lang_field}'
            f'"event": {event}, "time": "{iso}", "event_type": "{event_type}", "event_source": "browser", '
            f'"page": "{page}"}}\n'))
        self.names.append(name)

    def server(self, t: float, s: "_Session", name: str, path: str, event: str, referer: str,
               module: str = "", page: str = "null", event_type: str | None = None) -> None:
        """A server event in a learner's request (``event``: encoded JSON value)."""
        sec = int(t)
        last = _last_second
        if sec != last[0]:
            _second(sec)
        micro = int((t - sec) * 1_000_000)
        if micro:
            digits = str(1_000_000 + micro)
            iso, asc = last[1] + "." + digits[1:] + "+00:00", last[2] + "," + digits[1:4]
        else:
            iso, asc = last[1] + "+00:00", last[2] + ",000"
        self.out.append((
            f'{asc}{s.prefix}{name}", {s.server_head}"path": "{path}", "org_id": "{s.org}", "enterprise_uuid": ""'
            f'{module}}}, {s.request}"referer": "{referer}", {s.lang_field}"event": {event}, '
            f'"time": "{iso}", "event_type": "{event_type or name}", "event_source": "server", "page": {page}}}\n'))
        self.names.append(name)

    def celery(self, t: float, cid: str, org: str, name: str, event: str) -> None:
        """A server event emitted by a Celery worker: no user, no request."""
        iso, asc = format_times(t)
        self.out.append((
            f'{asc} INFO 42 [tracking] [user None] [ip None] logger.py:41 - {{"name": "{name}", '
            f'"context": {{"course_id": "{cid}", "org_id": "{org}", "enterprise_uuid": ""}}, "username": "", '
            f'"session": "", "ip": "", "agent": "", "host": "", "referer": "", "accept_language": "", '
            f'"event": {event}, "time": "{iso}", "event_type": "{name}", "event_source": "server", "page": null}}\n'))
        self.names.append(name)

    # -- journeys --------------------------------------------------------------
    def enroll(self, e: Enrollment) -> None:
        """The enrollment itself (server event from the enrollment API request)."""
        s = _Session(self.info[e.course_id], e, e.created)
        referer = f"http://{LMS_HOST}/courses/{s.cid}/about"
        self.server(e.created, s, "edx.course.enrollment.activated", "/api/enrollment/v1/enrollment",
                    f'{{"course_id": "{s.cid}", "user_id": {s.uid}, "mode": "{e.mode}"}}', referer)
        self.truth.enrolled[s.cid] = self.truth.enrolled.get(s.cid, 0) + 1

    def unenroll(self, e: Enrollment, t: float) -> None:
        s = _Session(self.info[e.course_id], e, t)
        self.server(t, s, "edx.course.enrollment.deactivated", "/api/enrollment/v1/enrollment",
                    f'{{"course_id": "{s.cid}", "user_id": {s.uid}, "mode": "{e.mode}"}}',
                    f"http://{LMS_HOST}/dashboard")
        e.deactivated_at = t

    def session(self, e: Enrollment, t: float, n_units: int, stop_at: float = float("inf")) -> float:
        """Render one study session of ``n_units`` units from ``e.next_unit``; returns its end time.

        No unit is started at or after ``stop_at`` (the session ends there, short).
        """
        info = self.info[e.course_id]
        s = _Session(info, e, t)
        rng, scale = e.rng, self.time_scale
        units = info.units
        first = e.next_unit
        last = min(len(units), first + n_units)
        cid = s.cid
        previous_sub = None
        for index in range(first, last):
            if t >= stop_at:
                last = index
                break
            section, sub, unit = units[index]
            position = sub.units.index(unit) + 1
            mfe_page, xblock_page = info.pages[unit.block_id]
            if previous_sub is None:
                path = f"/courses/{cid}/courseware/{section.block_id}/{sub.block_id}/{position}"
                self.server(t, s, path, path, '"{\\"GET\\": {}, \\"POST\\": {}}"', f"http://{MFE_HOST}/learning/course/{cid}/home")
                t += (1 + 3 * rng.random()) * scale
                self.browser(t, s, "edx.ui.lms.sequence.tab_selected", "seq_goto",
                             f'"{{\\"current_tab\\": {position}, \\"id\\": \\"{sub.usage_key}\\", \\"target_tab\\": '
                             f'{position}, \\"tab_count\\": {len(sub.units)}, \\"widget_placement\\": \\"top\\"}}"',
                             mfe_page)
            else:
                name = "edx.ui.lms.sequence.next_selected"
                current = position - 1 if previous_sub is sub else len(previous_sub.units)
                self.browser(t, s, name, "seq_next" if previous_sub is sub else name,
                             f'"{{\\"current_tab\\": {current}, \\"id\\": \\"{previous_sub.usage_key}\\", '
                             f'\\"tab_count\\": {len(previous_sub.units)}, \\"widget_placement\\": \\"bottom\\"}}"',
                             mfe_page)
            previous_sub = sub
            t += (2 + 6 * rng.random()) * scale
            for component in unit.components:
                kind = component.block_type
                if kind == "html":
                    t += (20 + 220 * rng.random()) * scale
                    self._complete(s, component, t, xblock_page)
                elif kind == "video":
                    t = self._video(s, component, t, xblock_page)
                elif kind == "problem":
                    t = self._problem(s, component, sub, t, xblock_page)
                elif kind == "discussion":
                    t = self._discussion(s, component, t, xblock_page)
                t += (3 + 17 * rng.random()) * scale
        e.next_unit = last
        e.last_activity = t
        return t

    def _complete(self, s: "_Session", c: Component, t: float, referer: str) -> None:
        e = s.e
        is_new = c.usage_key not in e.completions
        e.completions[c.usage_key] = (c.block_type, e.completions.get(c.usage_key, (None, t))[1] if not is_new else t)
        path = s.info.handler_paths[c.block_id]
        stamp = str_datetime(t)
        module = s.info.modules[c.block_id]
        self.server(t, s, "edx.completion.block_completion.changed", path,
                    f'{{"user_id": {s.uid}, "course_id": "{s.cid}", "block_id": "{c.usage_key}", '
                    f'"block_type": "{c.block_type}", "completion": 1.0, "modified": "{stamp}", '
                    f'"created": "{stamp if is_new else str_datetime(e.completions[c.usage_key][1])}"}}',
                    referer, module)

    def _video(self, s: "_Session", c: Component, t: float, page: str) -> float:
        rng, scale = s.e.rng, self.time_scale
        head = f'"{{\\"id\\": \\"{c.block_id}\\", \\"code\\": \\"{c.youtube_id}\\"'
        dur = c.duration
        self.browser(t, s, "load_video", "load_video", f'{head}, \\"duration\\": {dur}}}"', page)
        if rng.random() > 0.35 + 0.6 * s.e.learner.engagement:
            return t + (2 + 8 * rng.random()) * scale  # scrolled past the video
        t += (1 + 5 * rng.random()) * scale
        self.browser(t, s, "play_video", "play_video", f'{head}, \\"currentTime\\": 0, \\"duration\\": {dur}}}"', page)
        truth = self.truth
        truth.video_watchers.setdefault(s.cid, set()).add(s.uid)
        truth.video_viewers.setdefault((s.cid, c.block_id), set()).add(s.uid)
        position = 0.0
        completes = rng.random() < 0.25 + 0.7 * s.e.learner.engagement
        goal = dur if completes else dur * (0.05 + 0.85 * rng.random())
        speed = 1.0
        if rng.random() < 0.15:
            new_speed = rng.choice((1.25, 1.5, 2.0))
            self.browser(t + 0.5 * scale, s, "speed_change_video", "speed_change_video",
                         f'{head}, \\"current_time\\": 0.5, \\"old_speed\\": \\"1.0\\", \\"new_speed\\": '
                         f'\\"{new_speed}\\", \\"duration\\": {dur}}}"', page)
            speed = new_speed
        while position < goal:
            segment = min(goal - position, (30 + 370 * rng.random()))
            t += segment / speed * scale
            position += segment
            if position >= goal:
                break
            roll = rng.random()
            if roll < 0.35:
                self.browser(t, s, "pause_video", "pause_video",
                             f'{head}, \\"currentTime\\": {position:.3f}, \\"duration\\": {dur}}}"', page)
                t += (3 + 117 * rng.random()) * scale
                self.browser(t, s, "play_video", "play_video",
                             f'{head}, \\"currentTime\\": {position:.3f}, \\"duration\\": {dur}}}"', page)
            elif roll < 0.55:
                new_time = max(0.0, min(dur - 1.0, position + (-60 + 150 * rng.random())))
                self.browser(t, s, "seek_video", "seek_video",
                             f'{head}, \\"old_time\\": {position:.3f}, \\"new_time\\": {new_time:.3f}, '
                             f'\\"type\\": \\"onSlideSeek\\", \\"duration\\": {dur}}}"', page)
                goal += position - new_time if new_time < position else 0
                position = new_time
        if completes:
            self.browser(t - 2 * scale, s, "complete_video", "complete_video", f'{head}, \\"duration\\": {dur}}}"', page)
            self.browser(t, s, "stop_video", "stop_video",
                         f'{head}, \\"currentTime\\": {dur}, \\"duration\\": {dur}}}"', page)
            self._complete(s, c, t + 0.2 * scale, page)
        else:
            self.browser(t, s, "pause_video", "pause_video",
                         f'{head}, \\"currentTime\\": {position:.3f}, \\"duration\\": {dur}}}"', page)
        return t + (1 + 4 * rng.random()) * scale

    def _problem(self, s: "_Session", c: Component, sub: Subsection, t: float, page: str) -> float:
        e = s.e
        rng, scale = e.rng, self.time_scale
        if rng.random() > 0.45 + 0.55 * e.learner.engagement and not sub.graded:
            return t + (5 + 25 * rng.random()) * scale  # read it, did not answer
        key, bid = c.usage_key, c.block_id
        path = s.info.handler_paths[bid]
        module = s.info.modules[bid]
        p_right = max(0.05, min(0.97, 0.35 + 0.6 * e.learner.ability - 0.35 * c.difficulty))
        previous = e.scores.get(bid)
        attempts = previous[2] if previous else 0
        earned = 0.0
        while attempts < c.max_attempts:
            attempts += 1
            t += (20 + 130 * rng.random()) * scale
            choices = [c.correct[i] if rng.random() < p_right else rng.randrange(c.n_choices)
                       for i in range(c.n_inputs)]
            earned = float(sum(1 for i in range(c.n_inputs) if choices[i] == c.correct[i]))
            possible = float(c.n_inputs)
            pieces = [s.info.pieces[bid][i][choices[i]] for i in range(c.n_inputs)]
            form = "&".join([p[0] for p in pieces])
            self.browser(t, s, "problem_check", "problem_check", f'"{form}"', page)
            post = ", ".join([p[1] for p in pieces])
            self.server(t - 0.02 * scale, s, path, path, f'"{{\\"GET\\": {{}}, \\"POST\\": {{{post}}}}}"', page)
            transaction = _uuid(rng)
            t += 0.08 * scale
            self.server(t, s, "edx.grades.problem.submitted", path,
                        f'{{"user_id": "{s.uid}", "course_id": "{s.cid}", "problem_id": "{key}", '
                        f'"event_transaction_id": "{transaction}", "event_transaction_type": '
                        f'"edx.grades.problem.submitted", "weighted_earned": {earned:g}, '
                        f'"weighted_possible": {possible:g}}}', page, module)
            answers = ", ".join([p[2] for p in pieces])
            correct_map = ", ".join([p[3] for p in pieces])
            submission = ", ".join([p[4] for p in pieces])
            input_state = s.info.input_states[bid]
            t += 0.01 * scale
            self.server(t, s, "problem_check", path,
                        f'{{"state": {{"seed": 1, "student_answers": {{{answers}}}, "has_saved_answers": false, '
                        f'"correct_map": {{{correct_map}}}, "input_state": {{{input_state}}}, "done": true}}, '
                        f'"problem_id": "{key}", "answers": {{{answers}}}, "grade": {earned:g}, '
                        f'"max_grade": {possible:g}, "correct_map": {{{correct_map}}}, '
                        f'"success": "{"correct" if earned == possible else "incorrect"}", "attempts": {attempts}, '
                        f'"submission": {{{submission}}}}}', page, module + ', "asides": {}', '"x_module"')
            self.browser(t + 0.06 * scale, s, "problem_graded", "problem_graded",
                         f'["{form}", "\\n<div class=\\"problem\\" id=\\"problem_{bid}\\">'
                         f'<h3 class=\\"hd hd-3 problem-header\\">{s.info.names[bid]}</h3></div>\\n"]', page)
            self.truth.last_grade.setdefault((s.cid, bid), {})[s.uid] = (earned, possible)
            if bid not in e.scores:
                e.first_attempted.setdefault(sub.block_id, t)
            e.scores[bid] = (earned, possible, attempts, t)
            self._complete(s, c, t + 0.03 * scale, page)
            self._grades(s, sub, t + (0.5 + 2.5 * rng.random()) * scale, transaction)
            if earned == possible or rng.random() < 0.3:
                break
        return t + (2 + 8 * rng.random()) * scale

    def _grades(self, s: "_Session", sub: Subsection, t: float, transaction: str) -> None:
        """Celery's regrade after a submission: subsection, course, and passing events."""
        e, info = s.e, s.info
        earned_all = sum(e.scores[p.block_id][0] for p in info.problems_by_sub[sub.block_id] if p.block_id in e.scores)
        possible_all = info.possible_by_sub[sub.block_id]
        earned_graded, possible_graded = (earned_all, possible_all) if sub.graded else (0.0, 0.0)
        first = e.first_attempted.get(sub.block_id, t)
        e.subsection_grades[sub.block_id] = (earned_all, possible_all, earned_graded, possible_graded, t)
        course = info.course
        tail = (f'"event_transaction_id": "{transaction}", "event_transaction_type": "edx.grades.problem.submitted"')
        self.celery(t, s.cid, s.org, "edx.grades.subsection.grade_calculated",
                    f'{{"user_id": "{s.uid}", "course_id": "{s.cid}", "block_id": "{sub.usage_key}", '
                    f'"course_version": "{course.course_version}", "weighted_total_earned": {earned_all:.1f}, '
                    f'"weighted_total_possible": {possible_all:.1f}, "weighted_graded_earned": {earned_graded:.1f}, '
                    f'"weighted_graded_possible": {possible_graded:.1f}, "first_attempted": "{str_datetime(first)}", '
                    f'"subtree_edited_timestamp": "{info.edited}", {tail}, '
                    f'"visible_blocks_hash": "{course.grading_policy_hash}"}}')
        percent = course_percent(info, e)
        letter = LETTER if percent >= course.cutoff else ""
        e.percent, e.graded_at = percent, t
        t += 0.015 * self.time_scale
        self.celery(t, s.cid, s.org, "edx.grades.course.grade_calculated",
                    f'{{"user_id": "{s.uid}", "course_id": "{s.cid}", "course_version": "{course.course_version}", '
                    f'"percent_grade": {percent}, "letter_grade": "{letter}", '
                    f'"course_edited_timestamp": "{info.edited}", {tail}, '
                    f'"grading_policy_hash": "{course.grading_policy_hash}"}}')
        if letter and e.passed_at is None:
            e.passed_at = t + 0.01 * self.time_scale
            self.celery(e.passed_at, s.cid, s.org, "edx.course.grade.passed.first_time",
                        f'{{"user_id": "{s.uid}", "course_id": "{s.cid}", {tail}}}')
            self.truth.passed[s.cid] = self.truth.passed.get(s.cid, 0) + 1
            if e.mode in CERTIFICATE_MODES:
                uuid = f"{e.rng.getrandbits(128):032x}"
                when = e.passed_at + e.rng.uniform(60, 3 * 86400) * self.time_scale
                if self.history_end is not None and when >= self.history_end:
                    return  # generated after the history ends: not issued yet (no events in the future)
                e.certificate = (uuid, "downloadable", when)
                cs = _Session(info, e, when)
                self.server(when, cs, "edx.certificate.created", "/api/certificates/v0/certificates/generate",
                            f'{{"user_id": {s.uid}, "course_id": "{s.cid}", "certificate_id": "{uuid}", '
                            f'"certificate_url": "http://{LMS_HOST}/certificates/{uuid}", '
                            f'"enrollment_mode": "{e.mode}", "generation_mode": "self"}}',
                            f"http://{LMS_HOST}/courses/{s.cid}/progress")

    def _discussion(self, s: "_Session", c: Component, t: float, page: str) -> float:
        e, info = s.e, s.info
        rng, scale = e.rng, self.time_scale
        roll = rng.random()
        category = _s(c.display_name)
        url = f"http://{LMS_HOST}/courses/{s.cid}/discussion/forum/{c.block_id}/threads/"
        common = (f'"commentable_id": "{c.block_id}", "category_id": "{c.block_id}", "category_name": "{category}", '
                  f'"user_forums_roles": ["Student"], "user_course_roles": []')
        if roll < 0.12 * (0.5 + e.learner.engagement):
            t += (60 + 340 * rng.random()) * scale
            thread = f"{rng.getrandbits(96):024x}"
            title = rng.choice(("Question about this unit", "Stuck on the exercise", "Great explanation!",
                                "Can someone clarify?", "Resources to go further", "Study group?"))
            self.server(t, s, "edx.forum.thread.created", "/api/discussion/v1/threads/", 
                        f'{{"title": "{title}", "title_truncated": false, "body": "{title}. I would like to discuss '
                        f'{category.lower()}.", "truncated": false, "thread_type": "discussion", '
                        f'"anonymous": false, "anonymous_to_peers": false, "group_id": null, {common}, '
                        f'"options": {{"followed": true}}, "url": "{url}{thread}", "id": "{thread}", '
                        f'"from_mfe_sidebar": false}}', page)
            info.threads.append((thread, t, c.block_id))
            self.truth.forum_posts[s.cid] = self.truth.forum_posts.get(s.cid, 0) + 1
        elif roll < 0.35 and info.threads and info.threads[0][1] < t - 3600:
            usable = [th for th in info.threads[-50:] if th[1] < t - 3600]
            if usable:
                thread = rng.choice(usable)[0]
                t += (30 + 270 * rng.random()) * scale
                response = f"{rng.getrandbits(96):024x}"
                self.server(t, s, "edx.forum.response.created", "/api/discussion/v1/comments/",
                            f'{{"body": "Thanks, this helped me too.", "truncated": false, {common}, '
                            f'"discussion": {{"id": "{thread}"}}, "options": {{"followed": false}}, '
                            f'"url": "{url}{thread}", "id": "{response}"}}', page)
                self.truth.forum_posts[s.cid] = self.truth.forum_posts.get(s.cid, 0) + 1
        return t


def course_percent(info: CourseInfo, e: Enrollment) -> float:
    """The course grade as Open edX's weighted grader computes it (no drops), rounded to 2 places:
    per assignment type, the mean of its subsections' graded ratios, times the type's weight."""
    total = 0.0
    grades = e.subsection_grades
    for weight, block_id, possible in info.grade_terms:
        grade = grades.get(block_id)
        if grade is not None:
            total += weight * grade[2] / possible
    return round(total + 1e-9, 2)


def _uuid(rng: random.Random) -> str:
    h = f"{rng.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:]}"


class _Session:
    """Strings shared by the events of one learner's visit."""

    __slots__ = ("e", "info", "cid", "org", "uid", "ip", "pid", "lang", "request", "prefix", "browser_head",
                 "server_head", "lang_field")

    def __init__(self, info: CourseInfo, e: Enrollment, t: float):
        learner = e.learner
        self.e, self.info = e, info
        self.cid, self.org = info.cid, info.course.org
        self.uid, self.ip = learner.user_id, learner.ip
        self.pid = e.rng.choice((7, 8, 9, 20, 27))
        self.lang = learner.language
        session = f"{e.rng.getrandbits(128):032x}"
        self.request = (f'"username": "{learner.username}", "session": "{session}", "ip": "{learner.ip}", '
                        f'"agent": "{learner.agent}", "host": "{LMS_HOST}", ')
        self.prefix = (f' INFO {self.pid} [tracking] [user {self.uid}] [ip {self.ip}] logger.py:41 - '
                       '{"name": "')
        self.browser_head = (f'"context": {{"user_id": {self.uid}, "path": "/event", "course_id": "{self.cid}", '
                             f'"org_id": "{self.org}", "enterprise_uuid": ""}}, {self.request}')
        self.server_head = f"{info.server_ctx_head}{self.uid}, "
        self.lang_field = f'"accept_language": "{self.lang}", '


