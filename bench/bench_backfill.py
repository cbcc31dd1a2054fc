"""Backfill throughput vs the engine ingesting the same file by itself, and collector memory.

    .venv/bin/python bench/bench_backfill.py --events 1000000

1. generates a realistic tracking log (bench/generate.py; kept in --workdir);
2. migrates one data directory with two databases of the same schema and views:
   ``openedx`` (for `cairn backfill`) and ``engine_own`` (for the engine alone);
3. the engine alone: ``INSERT INTO engine_own._ingest SELECT ... FROM file(path, LineAsString)``
   in a subprocess (timed around the statement);
4. `cairn backfill` of the same file in a subprocess (timed by the command itself,
   wall time printed too), peak memory sampled from /proc every 50 ms;
5. checks both databases hold the same number of events, and prints the ratio.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
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
engine.command("INSERT INTO engine_own._ingest SELECT {p:String}, rowNumberInAllBlocks(), line "
               "FROM file({p:String}, LineAsString)", {"p": sys.argv[2]})
print(time.perf_counter() - started)
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/cairn-bench"))
    parser.add_argument("--via-serve", action="store_true",
                        help="also backfill a third database through `cairn serve` (the engine in another "
                             "process) to measure the collector's own memory")
    args = parser.parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    log = args.workdir / f"tracking-{args.events}.log"
    if not log.exists():
        started = time.perf_counter()
        write_log(log, args.events, seed=1, prefixed=True)
        print(f"generated {log} in {time.perf_counter() - started:.0f} s", flush=True)
    size = log.stat().st_size
    data_dir = args.workdir / "data"
    shutil.rmtree(data_dir, ignore_errors=True)
    for database in ("openedx", "engine_own", "served"):
        subprocess.run([CAIRN, "--data-dir", str(data_dir), "--database", database, "migrate"], check=True,
                       capture_output=True)

    own_result, own_wall, own_mem = run_sampled([sys.executable, "-c", ENGINE_OWN, str(data_dir), str(log)])
    own_seconds = float(own_result.stdout.decode().strip().splitlines()[-1])

    backfill, wall, mem = run_sampled([CAIRN, "--data-dir", str(data_dir), "backfill", str(log)],
                                      env={"COLUMNS": "200"})
    text = backfill.stdout.decode()
    match = re.search(r"([\d,]+) lines in ([\d.,]+) s", text)
    if not match:
        raise SystemExit(f"unexpected backfill output:\n{text}")
    seconds = float(match.group(2).replace(",", ""))

    own_events = int(query(data_dir, "SELECT count() FROM engine_own.events"))
    events = int(query(data_dir, "SELECT count() FROM openedx.events"))
    distinct = int(query(data_dir, "SELECT uniqExact(raw) FROM openedx.events"))
    rerun, _, _ = run_sampled([CAIRN, "--data-dir", str(data_dir), "backfill", "-q", str(log)])
    after_rerun = int(query(data_dir, "SELECT count() FROM openedx.events"))

    served_line = ""
    if args.via_serve:
        server = subprocess.Popen([CAIRN, "--data-dir", str(data_dir), "--database", "served", "serve", "--port", "0"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while not (data_dir / "serve.json").exists():
            time.sleep(0.1)
        served, served_wall, served_mem = run_sampled(
            [CAIRN, "--data-dir", str(data_dir), "--database", "served", "backfill", str(log)], env={"COLUMNS": "200"})
        served_events = query(data_dir, "SELECT count() FROM served.events")
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=120)
        served_line = (f"cairn backfill through `cairn serve`: {served_wall:.1f} s wall, {served_events} events; "
                       f"collector peak RSS {served_mem['VmRSS']:,.0f} MB (private {served_mem['RssAnon']:,.0f} MB)")

    mb = size / 1e6
    print(f"file: {log} ({args.events:,} events, {mb:,.1f} MB, prefixed lines)")
    print(f"engine alone (INSERT ... SELECT FROM file(LineAsString)): {own_seconds:.1f} s, "
          f"{own_events / own_seconds:,.0f} events/s, {mb / own_seconds:,.1f} MB/s "
          f"(process peak RSS {own_mem['VmRSS']:,.0f} MB)")
    print(f"cairn backfill: {seconds:.1f} s ({wall:.1f} s wall with start-up), "
          f"{events / seconds:,.0f} events/s, {mb / seconds:,.1f} MB/s")
    print(f"ratio backfill/engine throughput: {own_seconds / seconds:.2f} (target >= 0.7)")
    print(f"collector peak memory: RSS {mem['VmRSS']:,.0f} MB = private (anonymous) {mem['RssAnon']:,.0f} MB "
          f"+ mapped files (chDB library) {mem['RssFile']:,.0f} MB")
    print(f"events stored: backfill {events:,} (distinct {distinct:,}), engine alone {own_events:,}; "
          f"after a second backfill run: {after_rerun:,}")
    if served_line:
        print(served_line)
    ok = events == own_events == distinct == after_rerun == args.events
    print("counts: OK" if ok else "counts: MISMATCH")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
