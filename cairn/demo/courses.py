"""Generated demo courses: their structure, and their OLX export on disk.

The shape follows the public Open edX demo course: sections (chapters) holding
subsections (sequentials) holding units (verticals) of html, video, problem and
discussion components; the last subsection of most sections is graded homework,
the last section ends with a graded final exam. Block ids are 32-hex like Studio's.
Generated text is original (no demo course content is copied).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from xml.sax.saxutils import quoteattr

ORGS = ("CairnX", "OpenLearn", "DataAcademy", "HealthEd", "GreenTech")
SUBJECTS = (
    ("DS101", "Introduction to Data Science"), ("PY110", "Python for Everyone"),
    ("STAT201", "Statistics in Practice"), ("CLIM150", "Climate and Energy"),
    ("NUTR120", "Nutrition Essentials"), ("ML230", "Machine Learning Foundations"),
    ("WEB105", "Building for the Web"), ("FIN140", "Personal Finance Basics"),
    ("BIO180", "Human Biology"), ("HIST130", "World History Since 1900"),
    ("ECON101", "Principles of Economics"), ("SQL120", "Databases and SQL"),
)
TOPICS = (
    "Getting Started", "Core Concepts", "Working with Data", "Models and Methods", "Case Studies",
    "Tools of the Trade", "Going Further", "Patterns and Practice", "Evidence and Reasoning",
    "Applications", "Measuring Results", "Putting It Together",
)
UNIT_WORDS = (
    "Overview", "Key Ideas", "Worked Example", "Deep Dive", "Practice", "Summary", "Common Pitfalls",
    "In the Field", "Checkpoint", "Reflection", "Background", "Walkthrough",
)
CHOICE_WORDS = ("alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta")


@dataclass
class Component:
    """A leaf block of a unit."""

    block_type: str  # html, video, problem, discussion
    block_id: str
    display_name: str
    duration: int = 0  # video: seconds
    youtube_id: str = ""
    n_inputs: int = 0  # problem: number of multiple-choice inputs (1 point each)
    n_choices: int = 0
    correct: tuple[int, ...] = ()  # problem: index of the correct choice per input
    difficulty: float = 0.0  # problem: 0 easy .. 1 hard
    max_attempts: int = 0
    usage_key: str = ""


@dataclass
class Unit:
    """A vertical."""

    block_id: str
    display_name: str
    components: list[Component]
    usage_key: str = ""


@dataclass
class Subsection:
    """A sequential."""

    block_id: str
    display_name: str
    graded: bool
    assignment_type: str
    due: datetime | None
    units: list[Unit]
    usage_key: str = ""


@dataclass
class Section:
    """A chapter."""

    block_id: str
    display_name: str
    subsections: list[Subsection]
    usage_key: str = ""


@dataclass
class DemoCourse:
    """One generated course run."""

    org: str
    number: str
    run: str
    display_name: str
    start: datetime
    end: datetime
    sections: list[Section]
    grader: list[dict]
    cutoff: float = 0.5
    course_version: str = ""
    grading_policy_hash: str = ""
    edited: datetime | None = None
    popularity: float = 1.0
    staff: list[int] = field(default_factory=list)

    @property
    def course_id(self) -> str:
        return f"course-v1:{self.org}+{self.number}+{self.run}"

    def usage_key(self, block_type: str, block_id: str) -> str:
        return f"block-v1:{self.org}+{self.number}+{self.run}+type@{block_type}+block@{block_id}"

    def units(self) -> list[tuple[Section, Subsection, Unit]]:
        """Every unit in course order with its section and subsection."""
        return [(sec, sub, unit) for sec in self.sections for sub in sec.subsections for unit in sub.units]

    def subsections(self) -> list[Subsection]:
        return [sub for sec in self.sections for sub in sec.subsections]

    def components(self, block_type: str | None = None) -> list[Component]:
        return [c for _, _, unit in self.units() for c in unit.components
                if block_type is None or c.block_type == block_type]

    def block_counts(self) -> dict[str, int]:
        counts = {"course": 1, "chapter": len(self.sections), "sequential": len(self.subsections()),
                  "vertical": len(self.units())}
        for component in self.components():
            counts[component.block_type] = counts.get(component.block_type, 0) + 1
        return counts


def _hex(rng: random.Random, bits: int = 128) -> str:
    return f"{rng.getrandbits(bits):0{bits // 4}x}"


def build_courses(rng: random.Random, count: int, start: datetime, days: int) -> list[DemoCourse]:
    """``count`` courses spread over the organisations, deterministic for ``rng``."""
    courses = []
    year = start.year
    for index in range(count):
        org = ORGS[index % len(ORGS)]
        number, title = SUBJECTS[index % len(SUBJECTS)]
        cycle = index // len(SUBJECTS)
        run = f"{year}_T{1 + (index % 3)}" + (f"_{cycle + 1}" if cycle else "")
        n_sections = rng.randint(4, 7)
        sections = []
        topics = rng.sample(TOPICS, n_sections)
        for s_index in range(n_sections):
            subsections = []
            n_subs = rng.randint(2, 3)
            for q_index in range(n_subs):
                last_section = s_index == n_sections - 1
                graded = (q_index == n_subs - 1) and (s_index > 0)
                assignment = ("Final Exam" if last_section else "Homework") if graded else ""
                due = None
                if graded:
                    due_day = min(days, int(days * (s_index + 1) / n_sections) + 7)
                    due = datetime.fromtimestamp(start.timestamp() + due_day * 86400, timezone.utc)
                units = []
                for u_index in range(rng.randint(2, 4)):
                    units.append(_build_unit(rng, graded, u_index))
                sub_name = (f"{assignment}: {topics[s_index]}" if graded
                            else f"{topics[s_index]}, part {q_index + 1}")
                subsections.append(Subsection(_hex(rng), sub_name, graded, assignment, due, units))
            sections.append(Section(_hex(rng), f"Module {s_index + 1}: {topics[s_index]}", subsections))
        course = DemoCourse(
            org=org, number=number, run=run, display_name=title, start=start,
            end=datetime.fromtimestamp(start.timestamp() + (days + 30) * 86400, timezone.utc),
            sections=sections,
            grader=[{"type": "Homework", "short_label": "HW", "min_count": 1, "drop_count": 0, "weight": 0.6},
                    {"type": "Final Exam", "short_label": "Final", "min_count": 1, "drop_count": 0, "weight": 0.4}],
            cutoff=0.5, course_version=_hex(rng, 96), grading_policy_hash=_b64(rng),
            edited=datetime.fromtimestamp(start.timestamp() - 5 * 86400, timezone.utc),
            popularity=1.0 / (1 + index) ** 0.6,
        )
        for section in course.sections:
            section.usage_key = course.usage_key("chapter", section.block_id)
            for sub in section.subsections:
                sub.usage_key = course.usage_key("sequential", sub.block_id)
                for unit in sub.units:
                    unit.usage_key = course.usage_key("vertical", unit.block_id)
                    for component in unit.components:
                        component.usage_key = course.usage_key(component.block_type, component.block_id)
        courses.append(course)
    return courses


def _b64(rng: random.Random) -> str:
    import base64

    return base64.b64encode(rng.getrandbits(160).to_bytes(20, "big")).decode()


def _build_unit(rng: random.Random, graded: bool, u_index: int) -> Unit:
    name = rng.choice(UNIT_WORDS)
    components = [Component("html", _hex(rng), f"{name}: reading")]
    if not graded and rng.random() < 0.6:
        youtube = "".join(rng.choice("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")
                          for _ in range(11))
        components.append(Component("video", _hex(rng), f"{name}: video", duration=rng.randint(90, 720),
                                    youtube_id=youtube))
    if graded or rng.random() < 0.45:
        for p_index in range(rng.randint(1, 3) if graded else 1):
            n_inputs = rng.choice((1, 1, 1, 2, 2, 3))
            n_choices = rng.randint(3, 5)
            components.append(Component(
                "problem", _hex(rng), f"{name}: question {p_index + 1}", n_inputs=n_inputs, n_choices=n_choices,
                correct=tuple(rng.randrange(n_choices) for _ in range(n_inputs)),
                difficulty=rng.random(), max_attempts=2 if graded else 3))
    if rng.random() < 0.15:
        components.append(Component("discussion", _hex(rng), f"Discuss: {name.lower()}"))
    return Unit(_hex(rng), f"{name} {u_index + 1}", components)


# ---------------------------------------------------------------------------
# OLX export
# ---------------------------------------------------------------------------

def _iso(value: datetime) -> str:
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def write_olx(course: DemoCourse, folder: Path) -> Path:
    """Write ``course`` as a Studio-style OLX export under ``folder``; returns the export folder."""
    root = Path(folder) / f"{course.org}-{course.number}-{course.run}"
    for sub in ("course", "chapter", "sequential", "vertical", "html", "video", "problem",
                f"policies/{course.run}", "about"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    (root / "course.xml").write_text(
        f'<course url_name="{course.run}" org="{course.org}" course="{course.number}"/>\n')
    chapters = "".join(f'  <chapter url_name="{s.block_id}"/>\n' for s in course.sections)
    (root / "course" / f"{course.run}.xml").write_text(
        f'<course display_name={quoteattr(course.display_name)} start="{_iso(course.start)}" '
        f'end="{_iso(course.end)}" self_paced="true" language="en">\n{chapters}'
        f'  <wiki slug="{course.org}.{course.number}.{course.run}"/>\n</course>\n')
    for section in course.sections:
        subs = "".join(f'  <sequential url_name="{q.block_id}"/>\n' for q in section.subsections)
        (root / "chapter" / f"{section.block_id}.xml").write_text(
            f"<chapter display_name={quoteattr(section.display_name)}>\n{subs}</chapter>\n")
        for sub in section.subsections:
            attrs = f"display_name={quoteattr(sub.display_name)}"
            if sub.graded:
                attrs += f' format={quoteattr(sub.assignment_type)} graded="true"'
            if sub.due:
                attrs += f' due="{_iso(sub.due)}"'
            units = "".join(f'  <vertical url_name="{u.block_id}"/>\n' for u in sub.units)
            (root / "sequential" / f"{sub.block_id}.xml").write_text(f"<sequential {attrs}>\n{units}</sequential>\n")
            for unit in sub.units:
                (root / "vertical" / f"{unit.block_id}.xml").write_text(
                    f"<vertical display_name={quoteattr(unit.display_name)}>\n"
                    + "".join(_component_xml(root, c) for c in unit.components) + "</vertical>\n")
    policy = {f"course/{course.run}": {"display_name": course.display_name, "start": _iso(course.start),
                                       "end": _iso(course.end), "self_paced": True}}
    (root / "policies" / course.run / "policy.json").write_text(json.dumps(policy, indent=4) + "\n")
    grading = {"GRADER": course.grader, "GRADE_CUTOFFS": {"Pass": course.cutoff}}
    (root / "policies" / course.run / "grading_policy.json").write_text(json.dumps(grading, indent=4) + "\n")
    (root / "policies" / "assets.json").write_text("{}\n")
    (root / "about" / "overview.html").write_text(
        f"<section class=\"about\"><h2>About this course</h2><p>{course.display_name}: a generated "
        "Cairn demo course.</p></section>\n")
    return root


def _component_xml(root: Path, c: Component) -> str:
    name = quoteattr(c.display_name)
    if c.block_type == "html":
        (root / "html" / f"{c.block_id}.xml").write_text(f'<html filename="{c.block_id}" display_name={name}/>\n')
        (root / "html" / f"{c.block_id}.html").write_text(
            f"<p>{c.display_name}. Read this page, then continue with the unit.</p>\n")
        return f'  <html url_name="{c.block_id}"/>\n'
    if c.block_type == "video":
        (root / "video" / f"{c.block_id}.xml").write_text(
            f'<video url_name="{c.block_id}" display_name={name} youtube="1.00:{c.youtube_id}" '
            f'youtube_id_1_0="{c.youtube_id}" download_video="false"/>\n')
        return f'  <video url_name="{c.block_id}"/>\n'
    if c.block_type == "problem":
        parts = []
        for i in range(c.n_inputs):
            choices = "".join(
                f'      <choice correct="{"true" if k == c.correct[i] else "false"}">Option '
                f'{CHOICE_WORDS[k]}</choice>\n' for k in range(c.n_choices))
            parts.append(f"  <multiplechoiceresponse>\n    <label>Question {i + 1}</label>\n"
                         f'    <choicegroup type="MultipleChoice">\n{choices}    </choicegroup>\n'
                         "  </multiplechoiceresponse>\n")
        (root / "problem" / f"{c.block_id}.xml").write_text(
            f'<problem display_name={name} max_attempts="{c.max_attempts}" showanswer="finished">\n'
            + "".join(parts) + "</problem>\n")
        return f'  <problem url_name="{c.block_id}"/>\n'
    if c.block_type == "discussion":
        return (f'  <discussion url_name="{c.block_id}" xblock-family="xblock.v1" display_name={name} '
                f'discussion_category="Discussion" discussion_target={name} discussion_id="{c.block_id}"/>\n')
    raise ValueError(c.block_type)
