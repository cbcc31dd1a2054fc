"""Backfill throughput against the plain engine, and collector memory (issue 9).

    .venv/bin/python bench/bench_backfill.py --events 400000 [--rounds 3] [--memory-events 850000]

1. generates a realistic tracking log (bench/generate.py; kept in --workdir);
2. migrates one data directory with databases of the same schema: ``openedx`` (for
   `cairn backfill`) and ``engine_own`` (for the engine alone);
3. the reference, the simplest equivalent work for the plain engine: the same file into
   one MergeTree table (time, name, course id, org, user id and the raw JSON with
   ZSTD), five fields read with ``JSONExtract*`` (``REFERENCE``, a subprocess);
4. the engine alone through Cairn's schema: ``INSERT INTO engine_own._ingest SELECT ...
   FROM file(path, LineAsString)``, every view included, at its best on both cores
   (``max_insert_threads = 2``, ``parallel_view_processing = 1``, and insert blocks of
   32 MiB, the backfill's batch: with the default 256 MiB blocks the same insert takes
   1.3-1.6 x longer and 3.3 GB; a subprocess);
5. `cairn backfill` of the same file (timed by the command; peak memory sampled from
   /proc every 50 ms);
6. checks the counts, prints the ratios to the reference (targets: backfill >= 0.5,
   engine alone >= 0.6). Steps 3-5 run ``--rounds`` times (3), alternating; the
   medians are reported, since one run's reference varies from 2.8 to 4.7 s here.
   With ``--memory-events`` a second, larger file is backfilled too, to show that the
   peak memory does not grow with the file.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from generate import write_log  # noqa: E402

CAIRN = str(Path(sys.executable).parent / "cairn")

ENGINE_OWN = """
import sys, time
from cairn.config import load_config
from cairn.engine import open_engine
engine = open_engine(load_config(overrides={"data_dir": sys.argv[1], "database": "engine_own"}))
started = time.perf_counter()
# The engine at its best on 2 cores: two insert streams, the views of a table side by side,
# blocks of 32 MiB (the backfill's batch; the default squashes into 256 MiB blocks, which
# page-fault their way through every view: 1.3-1.6 x slower here, 3.3 GB).
engine.command("INSERT INTO engine_own._ingest SELECT {p:String}, rowNumberInAllBlocks(), line "
               "FROM file({p:String}, LineAsString) SETTINGS max_insert_threads = 2, parallel_view_processing = 1, "
               "min_insert_block_size_bytes = 33554432", {"p": sys.argv[2]})
print(time.perf_counter() - started)
"""


REFERENCE = """
import sys, time
from cairn.config import load_config
from cairn.engine import open_engine
engine = open_engine(load_config(overrides={"data_dir": sys.argv[1], "database": "reference"}))
engine.command("CREATE DATABASE IF NOT EXISTS reference")
engine.command("DROP TABLE IF EXISTS reference.events")
engine.command("CREATE TABLE reference.events (time DateTime64(6, 'UTC'), name LowCardinality(String), "
               "course_id LowCardinality(String), org LowCardinality(String), user_id Nullable(Int64), "
               "raw String CODEC(ZSTD(3))) ENGINE = MergeTree PARTITION BY toYYYYMM(time) ORDER BY (org, course_id, time)")
started = time.perf_counter()
engine.command(
    "INSERT INTO reference.events SELECT parseDateTime64BestEffortOrZero(JSONExtractString(json, 'time'), 6, 'UTC'), "
    "JSONExtractString(json, 'name'), JSONExtractString(json, 'context', 'course_id'), "
    "JSONExtractString(json, 'context', 'org_id'), JSONExtract(json, 'context', 'user_id', 'Nullable(Int64)'), json "
    "FROM (SELECT substring(line, position(line, ' - {') + 3) AS json FROM file({p:String}, LineAsString))",
    {"p": sys.argv[2]})
print(time.perf_counter() - started)
print(engine.query_value("SELECT count() FROM reference.events"))
"""


def memory_of(pid: int) -> dict[str, int]:
    """VmRSS, RssAnon, RssFile of a process in kB (0 when gone)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return {}
    out = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "RssAnon", "RssFile"):
            out[key] = int(value.split()[0])
    return out


def run_sampled(args: list[str], env: dict | None = None) -> tuple[subprocess.CompletedProcess, float, dict]:
    """Run a command, sampling its peak memory; returns (result, wall seconds, peaks in MB)."""
    peaks = {"VmRSS": 0, "RssAnon": 0, "RssFile": 0}
    started = time.perf_counter()
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env={**os.environ, **(env or {})})
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            for key, value in memory_of(process.pid).items():
                peaks[key] = max(peaks[key], value)
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = process.communicate()
    wall = time.perf_counter() - started
    done.set()
    sampler.join()
    result = subprocess.CompletedProcess(args, process.returncode, out, err)
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{err.decode()[-3000:]}")
    return result, wall, {k: v / 1024 for k, v in peaks.items()}


def query(data_dir: Path, sql: str) -> str:
    return subprocess.run([CAIRN, "--data-dir", str(data_dir), "client", "-q", sql], check=True,
                          capture_output=True).stdout.decode().strip()


def backfill(data_dir: Path, log: Path, database: str = "openedx") -> tuple[float, float, dict]:
    """`cairn backfill` of ``log``: (seconds the command reports, wall seconds, peak memory in MB)."""
    result, wall, mem = run_sampled([CAIRN, "--data-dir", str(data_dir), "--database", database, "backfill", str(log)],
                                    env={"COLUMNS": "200"})
    text = result.stdout.decode()
    match = re.search(r"([\d,]+) lines in ([\d.,]+) s", text)
    if not match:
        raise SystemExit(f"unexpected backfill output:\n{text}")
    return float(match.group(2).replace(",", "")), wall, mem


def generated(workdir: Path, events: int) -> Path:
    log = workdir / f"tracking-{events}.log"
    if not log.exists():
        started = time.perf_counter()
        write_log(log, events, seed=1, prefixed=True)
        print(f"generated {log} in {time.perf_counter() - started:.0f} s", flush=True)
    return log


def backfill_via_serve(data_dir: Path, log: Path) -> str:
    """`cairn backfill` into database ``served`` through `cairn serve` (the engine in another process)."""
    server = subprocess.Popen([CAIRN, "--data-dir", str(data_dir), "--database", "served", "serve", "--port", "0"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while not (data_dir / "serve.json").exists():
        time.sleep(0.1)
    _, served_wall, served_mem = run_sampled(
        [CAIRN, "--data-dir", str(data_dir), "--database", "served", "backfill", str(log)], env={"COLUMNS": "200"})
    served_events = query(data_dir, "SELECT count() FROM served.events")
    server.send_signal(signal.SIGTERM)
    server.wait(timeout=120)
    return (f"cairn backfill through `cairn serve`: {served_wall:.1f} s wall, {served_events} events; "
            f"collector peak RSS {served_mem['VmRSS']:,.0f} MB (private {served_mem['RssAnon']:,.0f} MB)")


def memory_by_size(workdir: Path, events: int, size: int, peak_mb: float) -> str:
    """Backfill a second, larger file alone: the peak RSS against the first file's (``peak_mb``)."""
    big = generated(workdir, events)
    big_dir = workdir / "data-memory"
    shutil.rmtree(big_dir, ignore_errors=True)
    subprocess.run([CAIRN, "--data-dir", str(big_dir), "migrate"], check=True, capture_output=True)
    big_seconds, _, big_mem = backfill(big_dir, big)
    shutil.rmtree(big_dir, ignore_errors=True)
    return (f"peak RSS by file size: {size / 1e6:,.0f} MB file -> {peak_mb:,.0f} MB; "
            f"{big.stat().st_size / 1e6:,.0f} MB file -> {big_mem['VmRSS']:,.0f} MB "
            f"(private {big_mem['RssAnon']:,.0f} MB; {big_seconds:.1f} s) (target < 600 MB)")


def one_round(workdir: Path, log: Path, via_serve: bool) -> dict:
    """The reference, the engine alone and `cairn backfill` of ``log``, each in a fresh process and database."""
    data_dir = workdir / "data"
    shutil.rmtree(data_dir, ignore_errors=True)
    for database in ("openedx", "engine_own", "served"):
        subprocess.run([CAIRN, "--data-dir", str(data_dir), "--database", database, "migrate"], check=True,
                       capture_output=True)
    ref_result, _, ref_mem = run_sampled([sys.executable, "-c", REFERENCE, str(data_dir), str(log)])
    ref_seconds, ref_events = (float(x) for x in ref_result.stdout.decode().split()[-2:])
    own_result, _, own_mem = run_sampled([sys.executable, "-c", ENGINE_OWN, str(data_dir), str(log)])
    seconds, wall, mem = backfill(data_dir, log)
    out = {"ref": ref_seconds, "ref_events": int(ref_events), "ref_rss": ref_mem["VmRSS"],
           "own": float(own_result.stdout.decode().strip().splitlines()[-1]), "own_rss": own_mem["VmRSS"],
           "backfill": seconds, "wall": wall, "mem": mem,
           "own_events": int(query(data_dir, "SELECT count() FROM engine_own.events")),
           "events": int(query(data_dir, "SELECT count() FROM openedx.events")),
           "distinct": int(query(data_dir, "SELECT uniqExact(raw) FROM openedx.events"))}
    run_sampled([CAIRN, "--data-dir", str(data_dir), "backfill", "-q", str(log)])
    out["after_rerun"] = int(query(data_dir, "SELECT count() FROM openedx.events"))
    out["served"] = backfill_via_serve(data_dir, log) if via_serve else ""
    return out


def report(rounds: list[dict], log: Path, events: int) -> bool:
    """Print each round and the medians; True when every count is right."""
    mb = log.stat().st_size / 1e6
    print(f"file: {log} ({events:,} events, {mb:,.1f} MB, prefixed lines); {len(rounds)} round(s), each "
          f"measure in a fresh process; ratios against the reference of the same round")
    for n, r in enumerate(rounds, 1):
        print(f"round {n}: reference {r['ref']:.1f} s, engine alone {r['own']:.1f} s = {r['ref'] / r['own']:.2f} x, "
              f"cairn backfill {r['backfill']:.1f} s = {r['ref'] / r['backfill']:.2f} x "
              f"(peak RSS {r['mem']['VmRSS']:,.0f} MB)")
    ref, own, back = (statistics.median(r[key] for r in rounds) for key in ("ref", "own", "backfill"))
    own_ratio = statistics.median(r["ref"] / r["own"] for r in rounds)
    back_ratio = statistics.median(r["ref"] / r["backfill"] for r in rounds)
    last = rounds[-1]
    print(f"reference (one MergeTree table, 5 JSONExtract fields + raw ZSTD, INSERT SELECT FROM file): median "
          f"{ref:.1f} s, {events / ref:,.0f} events/s (process peak RSS {last['ref_rss']:,.0f} MB)")
    print(f"engine alone through Cairn's schema (INSERT INTO _ingest SELECT FROM file, all views): median {own:.1f} s, "
          f"{events / own:,.0f} events/s; median ratio {own_ratio:.2f} x the reference (target >= 0.6; "
          f"process peak RSS {last['own_rss']:,.0f} MB)")
    print(f"cairn backfill: median {back:.1f} s, {events / back:,.0f} events/s, {mb / back:,.1f} MB/s; median ratio "
          f"{back_ratio:.2f} x the reference (target >= 0.5; last run {last['wall']:.1f} s wall with start-up)")
    mem = last["mem"]
    print(f"cairn backfill peak memory (highest round): RSS {max(r['mem']['VmRSS'] for r in rounds):,.0f} MB; last "
          f"round {mem['VmRSS']:,.0f} MB = private (anonymous) {mem['RssAnon']:,.0f} MB + mapped files (chDB library) "
          f"{mem['RssFile']:,.0f} MB (target < 600 MB)")
    ok = all(r["events"] == r["own_events"] == r["distinct"] == r["after_rerun"] == events == r["ref_events"]
             for r in rounds)
    print(f"events stored (last round): backfill {last['events']:,} (distinct {last['distinct']:,}), engine alone "
          f"{last['own_events']:,}, reference {last['ref_events']:,}; after a second backfill run: "
          f"{last['after_rerun']:,}")
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=400_000)
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds of the three measures; medians are reported (the machine is shared)")
    parser.add_argument("--memory-events", type=int, default=0,
                        help="also backfill a file of this many events (alone) and compare the peak memory")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/cairn-bench"))
    parser.add_argument("--via-serve", action="store_true",
                        help="also backfill a third database through `cairn serve` (the engine in another "
                             "process) to measure the collector's own memory")
    args = parser.parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    log = generated(args.workdir, args.events)
    # chDB's library (555 MB) read once before anything is timed: on a fresh install the
    # first process to load it pays ~2 s more.
    subprocess.run([sys.executable, "-c", "import chdb; chdb.query('SELECT 1')"], check=True, capture_output=True)
    rounds = [one_round(args.workdir, log, args.via_serve and n == args.rounds - 1) for n in range(args.rounds)]
    ok = report(rounds, log, args.events)
    if rounds[-1]["served"]:
        print(rounds[-1]["served"])
    if args.memory_events:
        print(memory_by_size(args.workdir, args.memory_events, log.stat().st_size, rounds[-1]["mem"]["VmRSS"]))
    print("counts: OK" if ok else "counts: MISMATCH")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
