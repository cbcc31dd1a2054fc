"""`cairn serve` under load: 50 dashboard clients while the collector ingests.

    .venv/bin/python bench/bench_serve.py --clients 50 --seconds 60 --events 300000

1. generates a realistic tracking log (bench/generate.py) and loads it (`cairn load`);
2. in-process baseline: the dashboard queries run one at a time on the embedded
   engine in this process (`Engine.query`, clickhouse-connect over chDB), N rounds;
3. starts `cairn serve` with the collector following a second log, and a writer
   appending generated events to it at --rate events/s for the whole run;
4. the same queries, one at a time, through serve (clickhouse-connect over HTTP):
   the overhead ratio is median(serve) / median(in-process) per query;
5. the load: --clients threads, each its own clickhouse-connect client (half as an
   admin, half as a course-scoped datalake user), running the dashboard queries in a
   loop for --seconds; every error is counted, latencies give p50/p95/p99;
6. checks that ingestion kept going (events grew during the run), stops serve with
   SIGTERM and prints a Markdown report (also written with --report).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from generate import EventGenerator, write_log  # noqa: E402

CAIRN = str(Path(sys.executable).parent / "cairn")
COURSE = "course-v1:edX+DemoX+Demo_Course"

# What an Open edX dashboard asks (Superset charts over the event tables).
QUERIES = {
    "daily_active": "SELECT toDate(time) AS day, course_id, uniq(user_id) AS learners FROM events "
                    "GROUP BY day, course_id ORDER BY day DESC, learners DESC LIMIT 100",
    "top_events": "SELECT name, count() AS n FROM events GROUP BY name ORDER BY n DESC LIMIT 20",
    "video_views": "SELECT video_id, count() AS plays, uniq(user_id) AS viewers FROM video_events "
                   "WHERE name IN ('play_video', 'edx.video.played') GROUP BY video_id ORDER BY plays DESC LIMIT 20",
    "problem_success": "SELECT problem_id, countIf(success = 'correct') / count() AS rate, count() AS attempts "
                       "FROM problem_events GROUP BY problem_id ORDER BY attempts DESC LIMIT 20",
    "last_hour": "SELECT count() FROM events WHERE time > (SELECT max(time) FROM events) - INTERVAL 1 HOUR",
    "enrollments": "SELECT toStartOfWeek(time) AS week, count() FROM enrollment_events GROUP BY week "
                   "ORDER BY week DESC LIMIT 12",
}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, int(round(q / 100 * (len(ordered) - 1)))))
    return ordered[index]


def run(cmd: list[str], env: dict) -> str:
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stdout}{done.stderr}")
    return done.stdout


def in_process_baseline(data_dir: Path, rounds: int) -> dict[str, list[float]]:
    from cairn.config import load_config
    from cairn.engine import open_engine

    engine = open_engine(load_config(overrides={"data_dir": str(data_dir)}))
    times: dict[str, list[float]] = {name: [] for name in QUERIES}
    try:
        for name, sql in QUERIES.items():  # warm-up
            engine.query(sql.replace("FROM events", "FROM openedx.events")
                         .replace("FROM video_events", "FROM openedx.video_events")
                         .replace("FROM problem_events", "FROM openedx.problem_events")
                         .replace("FROM enrollment_events", "FROM openedx.enrollment_events"))
        for _ in range(rounds):
            for name, sql in QUERIES.items():
                qualified = (sql.replace("FROM events", "FROM openedx.events")
                             .replace("FROM video_events", "FROM openedx.video_events")
                             .replace("FROM problem_events", "FROM openedx.problem_events")
                             .replace("FROM enrollment_events", "FROM openedx.enrollment_events"))
                started = time.perf_counter()
                engine.query(qualified)
                times[name].append(time.perf_counter() - started)
    finally:
        engine.close()
    return times


@dataclass
class ServeRun:
    """What was measured against `cairn serve`: sequential times, the load run, and ingestion."""

    events_before: int
    events_after: int
    served_times: dict[str, list[float]]
    latencies: list[float]
    errors: list[str]
    per_query: dict[str, list[float]]
    load_elapsed: float
    written: int


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line: clients, duration, data size, ingestion rate, rounds, workers, paths."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--events", type=int, default=300_000, help="events loaded before the run")
    parser.add_argument("--rate", type=float, default=500, help="events/s appended to the followed log")
    parser.add_argument("--rounds", type=int, default=10, help="sequential rounds for the overhead ratio")
    parser.add_argument("--workers", type=int, default=8, help="serve.workers")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--report", type=Path, default=None)
    return parser.parse_args(argv)


def prepare_workdir(workdir_arg: Path | None) -> tuple[Path, Path, dict]:
    """Pick the working directory (a fresh temporary one by default), empty its data directory.

    Returns the working directory, the data directory and the environment for `cairn`
    (no inherited CAIRN_* variables, CAIRN_DATA_DIR set).
    """
    workdir = workdir_arg or Path(tempfile.mkdtemp(prefix="cairn-bench-serve-"))
    if (workdir / "data").exists():
        shutil.rmtree(workdir / "data")
    workdir.mkdir(parents=True, exist_ok=True)
    data_dir = workdir / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAIRN_")}
    env["CAIRN_DATA_DIR"] = str(data_dir)
    return workdir, data_dir, env


def load_initial_data(workdir: Path, events: int, env: dict) -> None:
    """Generate the initial tracking log (unless already there), migrate, and `cairn load` it."""
    initial = workdir / "initial.log"
    if not initial.exists():
        print(f"generating {events:,} events...", file=sys.stderr)
        write_log(initial, events, seed=7)
    run([CAIRN, "migrate"], env)
    started = time.perf_counter()
    run([CAIRN, "load", "-q", str(initial)], env)
    print(f"loaded in {time.perf_counter() - started:.1f} s", file=sys.stderr)


def measure_baseline(data_dir: Path, rounds: int, env: dict) -> dict[str, list[float]]:
    """Run the in-process baseline in a child process and return its per-query times."""
    print("in-process baseline...", file=sys.stderr)
    # In a child process: the embedded engine keeps the data directory locked for the
    # life of the process that opened it, and serve needs it next.
    return json.loads(run([sys.executable, __file__, "--baseline", str(data_dir), str(rounds)], env))


def start_serve(workdir: Path, env: dict, followed: Path, workers: int):
    """Start `cairn serve` with the collector following ``followed``; output goes to serve.log.

    Returns the server process and the open serve.log file.
    """
    serve_env = dict(env, CAIRN_COLLECTOR_SOURCES=str(followed), CAIRN_COLLECTOR_FLUSH_INTERVAL="0.2",
                     CAIRN_SERVE_WORKERS=str(workers))
    serve_log = open(workdir / "serve.log", "w")
    server = subprocess.Popen([CAIRN, "serve", "--port", "0"], env=serve_env, stdout=serve_log,
                              stderr=subprocess.STDOUT)
    return server, serve_log


def wait_for_serve(server: subprocess.Popen, workdir: Path, data_dir: Path) -> dict:
    """Wait (at most 120 s) for serve.json and return its contents; exit with serve.log if serve failed."""
    serve_file = data_dir / "serve.json"
    deadline = time.monotonic() + 120
    while not serve_file.exists():
        if server.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"cairn serve did not start: {(workdir / 'serve.log').read_text()}")
        time.sleep(0.1)
    return json.loads(serve_file.read_text())


def client_factory(info: dict):
    """A function returning a new clickhouse-connect client to serve: the admin, or the given user."""
    import clickhouse_connect

    def client(user: str | None = None):
        return clickhouse_connect.get_client(
            host=info["host"], port=info["port"], username=user or info["user"],
            password="bench-password" if user else info["password"], database="openedx",
            send_receive_timeout=300)

    return client


def start_writer(followed: Path, rate: float) -> tuple[threading.Event, list[int], threading.Thread]:
    """Start a thread appending generated events to the followed log at ``rate`` events/s.

    Returns the event that stops it, a one-item list counting the events written, and the thread.
    """
    stop = threading.Event()
    written = [0]

    def writer() -> None:
        generator = EventGenerator(11, True)
        when = datetime(2026, 4, 1, tzinfo=timezone.utc)
        with open(followed, "a", encoding="utf-8") as out:
            while not stop.is_set():
                tick = time.monotonic()
                batch = int(rate / 10)
                lines = []
                for _ in range(batch):
                    lines.append(generator.line(when))
                    when += timedelta(milliseconds=20)
                out.write("".join(lines))
                out.flush()
                written[0] += batch
                stop.wait(max(0.0, 0.1 - (time.monotonic() - tick)))

    writer_thread = threading.Thread(target=writer, daemon=True)
    writer_thread.start()
    return stop, written, writer_thread


def sequential_through_serve(admin, rounds: int) -> dict[str, list[float]]:
    """One warm-up pass, then ``rounds`` timed passes of the queries, one at a time, through serve."""
    print("sequential through serve...", file=sys.stderr)
    served_times: dict[str, list[float]] = {name: [] for name in QUERIES}
    for sql in QUERIES.values():
        admin.query(sql)
    for _ in range(rounds):
        for name, sql in QUERIES.items():
            started = time.perf_counter()
            admin.query(sql)
            served_times[name].append(time.perf_counter() - started)
    return served_times


def dashboard_load(client, clients: int, seconds: float
                   ) -> tuple[list[float], list[str], dict[str, list[float]], float]:
    """Run ``clients`` dashboard threads (odd ones course-scoped) querying at random for ``seconds``.

    Returns all latencies, the errors, the latencies per query, and the elapsed wall time.
    """
    latencies: list[float] = []
    errors: list[str] = []
    per_query: dict[str, list[float]] = {name: [] for name in QUERIES}
    lock = threading.Lock()
    end_at = time.monotonic() + seconds

    def dashboard(i: int) -> None:
        rng = random.Random(i)
        try:
            c = client("bench_staff" if i % 2 else None)
        except Exception as exc:  # counted: the run must have none
            with lock:
                errors.append(f"connect: {exc}")
            return
        names = list(QUERIES)
        while time.monotonic() < end_at:
            name = rng.choice(names)
            started = time.perf_counter()
            try:
                c.query(QUERIES[name])
            except Exception as exc:
                with lock:
                    errors.append(f"{name}: {str(exc)[:200]}")
                continue
            elapsed = time.perf_counter() - started
            with lock:
                latencies.append(elapsed)
                per_query[name].append(elapsed)
        c.close()

    threads = [threading.Thread(target=dashboard, args=(i,)) for i in range(clients)]
    load_started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies, errors, per_query, time.monotonic() - load_started


def measure_through_serve(args: argparse.Namespace, server: subprocess.Popen, workdir: Path, data_dir: Path,
                          env: dict, followed: Path) -> ServeRun:
    """Everything against the running serve: sequential rounds, then the load with ingestion going on."""
    info = wait_for_serve(server, workdir, data_dir)
    run([CAIRN, "createuser", "bench_staff", "--password", "bench-password", "--course-id", COURSE], env)
    client = client_factory(info)
    admin = client()
    events_before = admin.command("SELECT count() FROM events")
    served_times = sequential_through_serve(admin, args.rounds)

    # Ingestion while querying: a writer appends events; the in-process collector follows.
    stop, written, writer_thread = start_writer(followed, args.rate)
    print(f"load: {args.clients} clients for {args.seconds:.0f} s...", file=sys.stderr)
    latencies, errors, per_query, load_elapsed = dashboard_load(client, args.clients, args.seconds)
    stop.set()
    writer_thread.join()
    time.sleep(2)  # let the collector catch up with the last lines
    events_after = admin.command("SELECT count() FROM events")
    admin.close()
    return ServeRun(events_before=events_before, events_after=events_after, served_times=served_times,
                    latencies=latencies, errors=errors, per_query=per_query, load_elapsed=load_elapsed,
                    written=written[0])


def query_table(baseline: dict[str, list[float]], measured: ServeRun) -> list[str]:
    """The per-query Markdown table and the overall overhead ratio line."""
    lines = []
    lines.append("| query | in-process median (ms) | through serve median (ms) | overhead ratio | "
                 "under load p50 / p95 / p99 (ms) |")
    lines.append("|---|---:|---:|---:|---:|")
    ratios = []
    for name in QUERIES:
        local = statistics.median(baseline[name])
        remote = statistics.median(measured.served_times[name])
        ratios.append(remote / local)
        loaded = measured.per_query[name]
        lines.append(f"| {name} | {local * 1000:.1f} | {remote * 1000:.1f} | {remote / local:.2f} | "
                     f"{percentile(loaded, 50) * 1000:.0f} / {percentile(loaded, 95) * 1000:.0f} / "
                     f"{percentile(loaded, 99) * 1000:.0f} |")
    lines.append("")
    lines.append(f"Overall overhead ratio (geometric mean of the per-query medians): "
                 f"{statistics.geometric_mean(ratios):.2f}")
    return lines


def build_report(args: argparse.Namespace, load_at_start: float, baseline: dict[str, list[float]],
                 measured: ServeRun, code: int) -> str:
    """The Markdown report: run summary bullets, the per-query table, and the first errors if any."""
    latencies, errors, load_elapsed = measured.latencies, measured.errors, measured.load_elapsed
    lines = []
    lines.append(f"- command: `.venv/bin/python bench/bench_serve.py --clients {args.clients} --seconds "
                 f"{args.seconds:.0f} --events {args.events} --rate {args.rate:.0f} --rounds {args.rounds} "
                 f"--workers {args.workers}`")
    lines.append(f"- machine: {os.cpu_count()} cores, load average at the end {os.getloadavg()[0]:.1f} "
                 f"(at the start {load_at_start:.1f}; other processes share the machine); "
                 f"data: {measured.events_before:,} events before the load run")
    lines.append(f"- load: {args.clients} clients ({args.clients - args.clients // 2} admin, {args.clients // 2} "
                 f"course-scoped user), {load_elapsed:.1f} s, {len(latencies):,} queries "
                 f"({len(latencies) / load_elapsed:.1f}/s), **errors: {len(errors)}**")
    lines.append(f"- latency under load: p50 {percentile(latencies, 50) * 1000:.0f} ms, "
                 f"p95 {percentile(latencies, 95) * 1000:.0f} ms, p99 {percentile(latencies, 99) * 1000:.0f} ms")
    lines.append(f"- ingestion during the run: {measured.written:,} events appended to the followed log, "
                 f"events table grew by {measured.events_after - measured.events_before:,}")
    lines.append(f"- serve exit code after SIGTERM: {code}")
    lines.append("")
    lines.extend(query_table(baseline, measured))
    if errors:
        lines.append("")
        lines.append("Errors (first 10):")
        lines.extend(f"- {e}" for e in errors[:10])
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    load_at_start = os.getloadavg()[0]
    workdir, data_dir, env = prepare_workdir(args.workdir)
    load_initial_data(workdir, args.events, env)
    baseline = measure_baseline(data_dir, args.rounds, env)

    followed = workdir / "live.log"
    followed.write_text("")
    server, serve_log = start_serve(workdir, env, followed, args.workers)
    try:
        measured = measure_through_serve(args, server, workdir, data_dir, env, followed)
    finally:
        server.send_signal(signal.SIGTERM)
        code = server.wait(timeout=120)
        serve_log.close()

    report = build_report(args, load_at_start, baseline, measured, code)
    print(report)
    if args.report:
        args.report.write_text(report)
    return 1 if measured.errors else 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--baseline"]:
        print(json.dumps(in_process_baseline(Path(sys.argv[2]), int(sys.argv[3]))))
        sys.exit(0)
    sys.exit(main())
