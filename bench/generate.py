"""Realistic Open edX tracking-log generator (for benchmarks and tests).

Events are the real sample events of ``../shared/openedx/events/by-event-name``
(one per event name, copied from Open edX repositories), with time, user and
session varied. The mix follows what the real logs show (data-model.md 1.4):
request-path events are the majority, then video and navigation browser events,
problem and grade events, and a tail of enrollment, forum and other events.
Lines carry the logging prefix Tutor writes unless ``--bare``.

    python bench/generate.py out.log --events 1000000
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "openedx" / "events" / "by-event-name"

# Share of lines per family of event names (first match wins).
MIX = [
    ("_url-path-request", 0.52),
    ("video", 0.17),  # play/pause/seek/load/stop video, transcripts
    ("seq_", 0.07),
    ("edx.ui.lms", 0.04),
    ("problem", 0.08),  # problem_check, problem_show, showanswer, hints, problem_graded
    ("edx.grades", 0.04),
    ("edx.course.enrollment", 0.02),
    ("edx.forum", 0.02),
    ("", 0.04),  # everything else
]
USER_POOL = 5000


class Template:
    """A sample event serialised once, with holes for time, username, session and user id."""

    def __init__(self, name: str, event: dict):
        self.name = name
        event = json.loads(json.dumps(event))
        event["time"] = "@@T@@"
        if "username" in event:
            event["username"] = "@@U@@"
        if "session" in event:
            event["session"] = "@@S@@"
        context = event.get("context")
        if isinstance(context, dict):
            if isinstance(context.get("user_id"), int):
                context["user_id"] = "@@I@@"
            if "username" in context:
                context["username"] = "@@U@@"
        text = json.dumps(event, separators=(", ", ": ")).replace("{", "{{").replace("}", "}}")
        self.format = (text.replace('"@@T@@"', '"{t}"').replace('"@@U@@"', '"learner{u}"')
                       .replace('"@@S@@"', '"{s}"').replace('"@@I@@"', "{u}"))

    def render(self, when: str, user: int, session: str) -> str:
        return self.format.format(t=when, u=user, s=session)


def load_templates(samples: Path = SAMPLES) -> list[Template]:
    """One template per sample file that holds a tracking-log shaped event."""
    templates = []
    for path in sorted(samples.iterdir()):
        text = path.read_text(errors="replace").strip()
        start = text.find("{")
        if start < 0:
            continue
        try:
            event = json.loads(text[start:])
        except ValueError:
            continue
        if not isinstance(event, dict) or "time" not in event:
            continue
        templates.append(Template(path.name.split("__")[0], event))
    if not templates:
        raise SystemExit(f"no sample events found in {samples}")
    return templates


class EventGenerator:
    """Draws events in the realistic mix; ``line(t)`` is one log line for time ``t``."""

    def __init__(self, seed: int = 1, prefixed: bool = True, samples: Path = SAMPLES):
        self.random = random.Random(seed)
        self.prefixed = prefixed
        templates = load_templates(samples)
        self.families: list[tuple[list[Template], float]] = []
        taken: set[str] = set()
        for needle, share in MIX:
            members = [t for t in templates if t.name not in taken and needle in t.name]
            taken.update(t.name for t in members)
            if members:
                self.families.append((members, share))
        self.weights = [share for _, share in self.families]
        self.sessions = ["%032x" % self.random.getrandbits(128) for _ in range(USER_POOL)]

    def event(self, when: datetime) -> str:
        """One event JSON (tracking-log shape) at ``when``."""
        members = self.random.choices(self.families, self.weights)[0][0]
        template = self.random.choice(members)
        user = self.random.randrange(1, USER_POOL)
        return template.render(when.isoformat(timespec="microseconds"), user, self.sessions[user])

    def line(self, when: datetime) -> str:
        """One log line (with newline) at ``when``."""
        event = self.event(when)
        if not self.prefixed:
            return event + "\n"
        pid = 7 + self.random.randrange(4)
        stamp = when.strftime("%Y-%m-%d %H:%M:%S,") + f"{when.microsecond // 1000:03d}"
        return f"{stamp} INFO {pid} [tracking] [user {self.random.randrange(1, USER_POOL)}] " \
               f"[ip 172.18.0.{self.random.randrange(2, 250)}] logger.py:41 - {event}\n"


def write_log(path: Path, events: int, seed: int = 1, prefixed: bool = True,
              start: datetime | None = None, rate: float = 50.0) -> int:
    """Write ``events`` lines to ``path`` (``rate`` events per simulated second). Returns bytes written."""
    generator = EventGenerator(seed, prefixed)
    when = start or datetime(2026, 3, 1, tzinfo=timezone.utc)
    step = timedelta(seconds=1 / rate)
    written = 0
    with open(path, "w", encoding="utf-8", buffering=1 << 20) as out:
        batch = []
        for i in range(events):
            batch.append(generator.line(when))
            when += step
            if len(batch) == 10000:
                text = "".join(batch)
                out.write(text)
                written += len(text.encode())
                batch = []
        text = "".join(batch)
        out.write(text)
        written += len(text.encode())
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("output", type=Path)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--bare", action="store_true", help="JSON lines without the logging prefix")
    args = parser.parse_args(argv)
    size = write_log(args.output, args.events, args.seed, prefixed=not args.bare)
    print(f"{args.output}: {args.events:,} events, {size / 1e6:,.1f} MB", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
