"""A demo platform loaded into a fresh datalake and served by `cairn serve`, for dataset tests.

``served_demo(root, ...)`` runs the real commands: `cairn demo` (its MySQL tables in a
throw-away MariaDB database), `migrate`, `import-course`, `load` or `backfill`, `mysql sync`,
then starts `cairn serve`; it yields the running server and the demo's folder, and stops
the server and drops the MySQL database afterwards.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import uuid
from pathlib import Path
from typing import Iterator

import pymysql

from support.serve import CAIRN, start_server, stop_server


def run_cairn(data_dir: Path, mysql_database: str, *args: str) -> str:
    """``cairn ARGS`` on ``data_dir`` with the demo's MySQL database; its output (asserted to succeed)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CAIRN_")}
    environment = {**clean, "CAIRN_DATA_DIR": str(data_dir), "CAIRN_MYSQL_DATABASE": mysql_database,
                   "COLUMNS": "200"}
    done = subprocess.run([CAIRN, *args], env=environment, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"cairn {' '.join(args)}: {done.stdout}{done.stderr}"
    return done.stdout


@contextlib.contextmanager
def served_demo(root: Path, *, learners: int, courses: int, days: int, seed: int,
                loader: str = "load") -> Iterator[tuple[object, Path]]:
    """(the running `cairn serve`, the demo folder) for a demo generated and loaded under ``root``."""
    database = f"cairn_t_demo_{uuid.uuid4().hex[:8]}"
    data, demo = root / "data", root / "demo"
    try:
        run_cairn(data, database, "demo", "--learners", str(learners), "--courses", str(courses),
                  "--days", str(days), "--seed", str(seed), "--output", str(demo))
        run_cairn(data, database, "migrate")
        run_cairn(data, database, "import-course", *map(str, sorted((demo / "courses").iterdir())))
        run_cairn(data, database, *(["backfill", "--quiet"] if loader == "backfill" else ["load"]),
                  str(demo / "tracking.log"))
        run_cairn(data, database, "mysql", "sync")
        served = start_server(data, env={"CAIRN_MYSQL_DATABASE": database})
        try:
            yield served, demo
        finally:
            stop_server(served)
    finally:
        conn = pymysql.connect(host="127.0.0.1", user="root", password="", autocommit=True)
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{database}`")
        conn.close()
