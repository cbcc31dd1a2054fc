"""Soak test of `cairn serve`: many clients doing everything at once while the collector ingests.

    .venv/bin/python bench/soak.py --minutes 10 [--clients 20]

Starts `cairn serve` on a fresh data directory with a collector following a tracking log
that a writer thread keeps growing (bench/generate.py's realistic events), then runs
``--clients`` threads for ``--minutes``, each drawing its next action from the mix:

* dashboard queries (restricted and admin users, clickhouse-connect);
* large streamed results read to the end (the row count checked);
* results abandoned half-way (a raw socket closed after 1 byte to a few MB);
* cancelled queries (``KILL QUERY WHERE query_id = ...`` from another connection);
* inserts of numbered rows (clickhouse-connect).

Afterwards it checks that every line written to the log and every row inserted is stored
exactly once, that the server answers normally, and reports its RSS at the start and the
end (sampled every 10 s) with the counts of each action. Exit status 0 when every check holds.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from generate import EventGenerator  # noqa: E402 - bench/ is not a package

CAIRN = str(Path(sys.executable).with_name("cairn"))
PASSWORD = "soak-password-1"
DASHBOARD = [
    "SELECT name, count() AS n FROM events GROUP BY name ORDER BY n DESC LIMIT 10",
    "SELECT toStartOfMinute(time) AS m, count() FROM events GROUP BY m ORDER BY m DESC LIMIT 60",
    "SELECT course_id, uniqExact(user_id) FROM events GROUP BY course_id ORDER BY 2 DESC LIMIT 20",
    "SELECT count() FROM events WHERE name LIKE '%video%'",
]
STREAM_ROWS = 300_000
STREAM = f"SELECT number, repeat('x', 100) FROM numbers({STREAM_ROWS}) SETTINGS max_block_size = 10000"
SLOW_ROWS = 500
SLOW = f"SELECT sleepEachRow(0.01) FROM numbers({SLOW_ROWS}) SETTINGS max_block_size = 10"
MIX = [("dashboard", 40), ("stream", 15), ("abandon", 15), ("kill", 10), ("insert", 20)]


class Soak:
    """The server, its clients and what they did."""

    def __init__(self, root: Path, clients: int, minutes: float):
        self.root, self.clients, self.seconds = root, clients, minutes * 60
        self.log_path = root / "tracking.log"
        self.lines_written = 0
        self.inserted = 0
        self.lock = threading.Lock()
        self.done = Counter()
        self.errors: list[str] = []
        self.rss: list[tuple[float, int]] = []
        self.stop = threading.Event()

    # -- the server ------------------------------------------------------
    def start(self) -> None:
        self.log_path.touch()
        env = {k: v for k, v in os.environ.items() if not k.startswith("CAIRN_")}
        env["CAIRN_COLLECTOR_SOURCES"] = str(self.log_path)
        env["CAIRN_MYSQL_DATABASE"] = "cairn_soak_absent"  # no MySQL copies to refresh
        data = self.root / "data"
        self.process = subprocess.Popen([CAIRN, "--data-dir", str(data), "serve", "--port", "0"],
                                        stdout=open(self.root / "serve.log", "w"), stderr=subprocess.STDOUT, env=env)
        for _ in range(1800):
            if self.process.poll() is not None:
                raise SystemExit((self.root / "serve.log").read_text())
            try:
                info = json.loads((data / "serve.json").read_text())
                break
            except (OSError, ValueError):
                time.sleep(0.1)
        else:
            raise SystemExit("cairn serve did not start")
        self.host, self.port, self.user, self.password = info["host"], info["port"], info["user"], info["password"]
        self.url = f"http://{self.host}:{self.port}"
        env["CAIRN_DATA_DIR"] = str(data)
        subprocess.run([CAIRN, "createuser", "soak_user", "--password", PASSWORD, "--org-id", "edX"], env=env,
                       check=True, capture_output=True)
        self.admin().command("CREATE TABLE default.soak_inserts (client UInt16, n UInt64) "
                             "ENGINE = MergeTree ORDER BY (client, n)")

    def admin(self, **kwargs):
        import clickhouse_connect

        return clickhouse_connect.get_client(host=self.host, port=self.port, username=self.user,
                                             password=self.password, **kwargs)

    def server_rss(self) -> int:
        return psutil.Process(self.process.pid).memory_info().rss

    # -- background: the growing log and the RSS samples ------------------
    def write_log(self) -> None:
        generator = EventGenerator(seed=7)
        with open(self.log_path, "a") as log:
            while not self.stop.is_set():
                now = datetime.now(timezone.utc)
                lines = [generator.line(now) for _ in range(200)]
                log.write("".join(line if line.endswith("\n") else line + "\n" for line in lines))
                log.flush()
                self.lines_written += len(lines)
                time.sleep(0.5)

    def sample_rss(self) -> None:
        started = time.monotonic()
        while not self.stop.wait(10):
            self.rss.append((time.monotonic() - started, self.server_rss()))

    # -- the clients -----------------------------------------------------
    def client(self, number: int) -> None:
        rng = random.Random(number)
        restricted = self._client_of("soak_user", PASSWORD)
        admin = self.admin()
        http = httpx.Client(base_url=self.url, auth=(self.user, self.password), timeout=120)
        inserts = 0
        actions = [name for name, weight in MIX for _ in range(weight)]
        while not self.stop.is_set():
            action = rng.choice(actions)
            try:
                if action == "dashboard":
                    (restricted if rng.random() < 0.5 else admin).query(rng.choice(DASHBOARD))
                elif action == "stream":
                    self._stream(http)
                elif action == "abandon":
                    self._abandon(rng)
                elif action == "kill":
                    self._kill(http)
                else:
                    rows = [(number, inserts + i) for i in range(1000)]
                    admin.insert("default.soak_inserts", rows, column_names=["client", "n"])
                    inserts += len(rows)
                    with self.lock:
                        self.inserted += len(rows)
                with self.lock:
                    self.done[action] += 1
            except Exception as exc:  # noqa: BLE001 - every unexpected failure is reported
                with self.lock:
                    self.errors.append(f"{action}: {type(exc).__name__}: {str(exc)[:300]}")
        http.close()

    def _client_of(self, user: str, password: str):
        import clickhouse_connect

        return clickhouse_connect.get_client(host=self.host, port=self.port, username=user, password=password)

    def _stream(self, http: httpx.Client) -> None:
        lines = 0
        with http.stream("POST", "/", content=STREAM) as answer:
            for piece in answer.iter_bytes():
                lines += piece.count(b"\n")
        if lines != STREAM_ROWS:
            raise AssertionError(f"streamed {lines} rows of {STREAM_ROWS}")

    def _abandon(self, rng: random.Random) -> None:
        token = base64.b64encode(f"{self.user}:{self.password}".encode())
        body = b"SELECT number, repeat('x', 10000) FROM numbers(100000) SETTINGS max_block_size = 1000"
        with socket.create_connection((self.host, self.port), timeout=60) as sock:
            sock.sendall(b"POST / HTTP/1.1\r\nHost: soak\r\nAuthorization: Basic " + token
                         + b"\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
            wanted, got = rng.randint(1, 4_000_000), 0
            while got < wanted:
                data = sock.recv(65536)
                if not data:
                    break
                got += len(data)

    def _kill(self, http: httpx.Client) -> None:
        """Start a 5 s query with an id, KILL it by that id; it must not deliver all its rows."""
        query_id = f"soak-{uuid.uuid4()}"
        rows: list[int] = []

        def run() -> None:
            try:
                rows.append(http.post("/", params={"query_id": query_id}, content=SLOW).text.count("\n"))
            except httpx.HTTPError:
                rows.append(-1)  # killed after its first rows: the response is broken on purpose

        runner = threading.Thread(target=run)
        runner.start()
        killed = False
        deadline = time.monotonic() + 30
        while runner.is_alive() and not killed and time.monotonic() < deadline:
            answer = http.post("/", content=f"KILL QUERY WHERE query_id = '{query_id}' SYNC")
            killed = bool(answer.text.strip())  # empty until the server runs a query with that id
            time.sleep(0.05)
        runner.join(60)
        if not killed or not rows or rows[0] == SLOW_ROWS:
            raise AssertionError(f"KILL did not stop {query_id} (killed: {killed}, rows: {rows})")

    # -- the run and the checks --------------------------------------------
    def run(self) -> dict:
        self.start()
        time.sleep(2)
        rss_start = self.server_rss()
        background = [threading.Thread(target=self.write_log, daemon=True),
                      threading.Thread(target=self.sample_rss, daemon=True)]
        workers = [threading.Thread(target=self.client, args=(n,), daemon=True) for n in range(self.clients)]
        for thread in background + workers:
            thread.start()
        time.sleep(self.seconds)
        self.stop.set()
        for thread in workers:
            thread.join(180)
        rss_end = self.server_rss()
        return {"rss_start": rss_start, "rss_end": rss_end, **self.check()}

    def check(self) -> dict:
        admin = self.admin()
        source = str(self.log_path)
        stored = -1
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:  # the collector catches up with the log
            stored = admin.command("SELECT count() FROM openedx.events WHERE source = {s:String}",
                                   parameters={"s": source})
            if stored >= self.lines_written:
                break
            time.sleep(2)
        distinct_lines = admin.command("SELECT uniqExact(source_offset) FROM openedx.events WHERE source = {s:String}",
                                       parameters={"s": source})
        rows, distinct_rows = admin.query("SELECT count(), uniqExact(client, n) FROM default.soak_inserts"
                                          ).result_rows[0]
        with httpx.Client(base_url=self.url, auth=(self.user, self.password), timeout=30) as http:
            ping = http.get("/ping").text
            started = time.monotonic()
            one = http.get("/", params={"query": "SELECT 1"}).text
            answer_ms = (time.monotonic() - started) * 1000
        return {"lines_written": self.lines_written, "events_stored": stored, "events_distinct": distinct_lines,
                "rows_inserted": self.inserted, "rows_stored": rows, "rows_distinct": distinct_rows,
                "ping": ping.strip(), "select_1": one.strip(), "select_1_ms": round(answer_ms, 1)}

    def shutdown(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(120)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="how long the clients run (default 10)")
    parser.add_argument("--clients", type=int, default=20, help="client threads (default 20)")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="cairn-soak-"))
    soak = Soak(root, args.clients, args.minutes)
    try:
        result = soak.run()
    finally:
        status = soak.shutdown() if hasattr(soak, "process") else None
    mib = 1024 * 1024
    print(f"soak: {args.clients} clients for {args.minutes:g} min against cairn serve (data in {root})")
    print("  actions done: " + ", ".join(f"{name} {soak.done[name]}" for name, _ in MIX))
    kinds = Counter(line.split(":", 1)[0] for line in soak.errors)
    print(f"  unexpected errors: {len(soak.errors)}" + "".join(f", {kind} {n}" for kind, n in kinds.items()))
    for line in soak.errors[:10]:
        print(f"    {line}")
    print(f"  collector: {result['lines_written']} lines written, {result['events_stored']} events stored, "
          f"{result['events_distinct']} distinct offsets")
    print(f"  inserts: {result['rows_inserted']} rows sent, {result['rows_stored']} stored, "
          f"{result['rows_distinct']} distinct")
    print(f"  after: /ping {result['ping']!r}, SELECT 1 -> {result['select_1']!r} in {result['select_1_ms']} ms; "
          f"exit status on SIGTERM {status}")
    print(f"  RSS: {result['rss_start'] / mib:.0f} MiB at start, {result['rss_end'] / mib:.0f} MiB at the end; "
          "samples (s, MiB): " + ", ".join(f"{t:.0f}:{r / mib:.0f}" for t, r in soak.rss))
    ok = (not soak.errors and result["events_stored"] == result["lines_written"] == result["events_distinct"]
          and result["rows_stored"] == result["rows_inserted"] == result["rows_distinct"]
          and result["ping"] == "Ok." and result["select_1"] == "1")
    print("  result: " + ("every check holds" if ok else "FAILED"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
