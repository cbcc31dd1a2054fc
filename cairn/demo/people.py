"""Generated people: learners with realistic profiles, and course staff."""

from __future__ import annotations

import random
from bisect import bisect
from dataclasses import dataclass
from itertools import accumulate

FIRST_NAMES = (
    "Amara", "Liam", "Sofia", "Noah", "Aisha", "Mateo", "Chen", "Priya", "Lucas", "Fatima", "Ethan", "Yuki",
    "Olivia", "Omar", "Isabella", "Arjun", "Mia", "Kwame", "Elena", "Diego", "Hana", "Ivan", "Zara", "Leo",
    "Nadia", "Samuel", "Ines", "Tariq", "Emma", "Rafael", "Lea", "Kofi", "Ana", "Jonas", "Mei", "Carlos",
    "Grace", "Ali", "Chloe", "Daniel", "Sara", "Mohamed", "Julia", "Hugo", "Ama", "Pedro", "Nora", "Ravi",
)
LAST_NAMES = (
    "Okafor", "Smith", "Garcia", "Nguyen", "Khan", "Silva", "Wang", "Patel", "Müller", "Rossi", "Kim", "Haddad",
    "Johnson", "Mensah", "Lopez", "Ivanova", "Tanaka", "Dubois", "Kowalski", "Santos", "Ahmed", "Brown", "Novak",
    "Costa", "Singh", "Fischer", "Moreno", "Adeyemi", "Larsen", "Chen", "Hernandez", "Yilmaz", "Murphy", "Sato",
)
# (weight, value); None = not given (Open edX leaves the column NULL)
GENDERS = ((50, "m"), (42, "f"), (2, "o"), (6, None))
EDUCATION = ((30, "b"), (22, "m"), (18, "hs"), (7, "a"), (5, "p"), (3, "jhs"), (1, "el"), (2, "none"),
             (4, "other"), (8, None))
# country, weight, UTC offset in hours (where most learners live), Accept-Language
COUNTRIES = (
    ("US", 22, -5, "en-US,en;q=0.9"), ("IN", 15, 5.5, "en-IN,en;q=0.9,hi;q=0.8"), ("BR", 5, -3, "pt-BR,pt;q=0.9"),
    ("GB", 5, 0, "en-GB,en;q=0.9"), ("MX", 4, -6, "es-MX,es;q=0.9"), ("NG", 4, 1, "en-NG,en;q=0.9"),
    ("EG", 3, 2, "ar-EG,ar;q=0.9,en;q=0.8"), ("CO", 3, -5, "es-CO,es;q=0.9"), ("ES", 3, 1, "es-ES,es;q=0.9"),
    ("FR", 3, 1, "fr-FR,fr;q=0.9"), ("DE", 3, 1, "de-DE,de;q=0.9,en;q=0.8"), ("CN", 3, 8, "zh-CN,zh;q=0.9"),
    ("PK", 3, 5, "en-PK,en;q=0.9,ur;q=0.8"), ("CA", 3, -5, "en-CA,en;q=0.9,fr;q=0.8"),
    ("PH", 2, 8, "en-PH,en;q=0.9"), ("ID", 2, 7, "id-ID,id;q=0.9"), ("TR", 2, 3, "tr-TR,tr;q=0.9"),
    ("AU", 2, 10, "en-AU,en;q=0.9"), ("KE", 2, 3, "en-KE,en;q=0.9,sw;q=0.8"), ("MA", 2, 0, "fr-MA,ar;q=0.9"),
    (None, 11, 0, "en-US,en;q=0.5"),
)
AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
    "Mozilla/5.0 (Linux; Android 14; Pixel 7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 Edg/124.0.0.0",
)
EMAIL_DOMAIN = "demo.cairn.invalid"


def weighted(rng: random.Random, table, key=lambda row: row[0]):
    """Pick a row of ``table`` with probability proportional to ``key(row)``."""
    cumulative = list(accumulate(key(row) for row in table))
    return table[bisect(cumulative, rng.random() * cumulative[-1])]


@dataclass
class Learner:
    """A learner and what the platform knows about them."""

    user_id: int
    username: str
    name: str
    email: str
    year_of_birth: int | None
    gender: str | None
    education: str | None
    country: str | None
    utc_offset: float
    language: str
    agent: str
    ip: str
    joined: float  # epoch seconds
    engagement: float  # 0..1: how much of a course they go through, how often they come back
    ability: float  # 0..1: how often they answer right
    is_staff: bool = False


def build_learners(rng: random.Random, count: int, first_id: int, start: float, days: int) -> list[Learner]:
    """``count`` learners with ids from ``first_id``; they joined before or during the period."""
    learners = []
    for index in range(count):
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        user_id = first_id + index
        username = f"{first.lower()}_{last.lower().replace('ü', 'u')}{user_id}"
        country, _, offset, language = weighted(rng, COUNTRIES, key=lambda row: row[1])
        year = None if rng.random() < 0.08 else max(1945, min(2010, int(rng.gauss(1993, 10))))
        joined = start - 120 * 86400 * rng.random() ** 3 + days * 86400 * 0.9 * rng.random() * rng.random()
        learners.append(Learner(
            user_id=user_id, username=username, name=f"{first} {last}",
            email=f"{username}@{EMAIL_DOMAIN}", year_of_birth=year,
            gender=weighted(rng, GENDERS)[1], education=weighted(rng, EDUCATION)[1],
            country=country, utc_offset=offset, language=language, agent=rng.choice(AGENTS),
            ip=f"{rng.randint(11, 223)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
            joined=joined, engagement=rng.betavariate(1.3, 2.2), ability=rng.betavariate(3.0, 2.0),
        ))
    return learners


def build_staff(rng: random.Random, orgs: list[str], start: float) -> list[Learner]:
    """An admin (global staff) and one instructor per organisation (ids 1..)."""
    staff = [Learner(1, "admin", "Platform Admin", f"admin@{EMAIL_DOMAIN}", None, None, None, None, 0,
                     "en-US,en;q=0.9", AGENTS[0], "10.0.0.2", start - 200 * 86400, 1.0, 1.0, is_staff=True)]
    for index, org in enumerate(orgs, 2):
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        username = f"{org.lower()}_instructor"
        staff.append(Learner(index, username, f"{first} {last}", f"{username}@{EMAIL_DOMAIN}", None, None, "p",
                             None, 0, "en-US,en;q=0.9", AGENTS[1], "10.0.0.3", start - 150 * 86400, 1.0, 1.0))
    return staff
