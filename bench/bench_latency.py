"""Real-time latency: a writer appends at a steady rate while `cairn collect` follows the file.

    .venv/bin/python bench/bench_latency.py --rate 1000 --seconds 60

The writer appends realistic prefixed lines every 10 ms (rate/100 lines per write,
each event's ``time`` = the moment of the write) and records (end offset, time) of
every write. The collector runs as a real subprocess with ``CAIRN_COLLECTOR_TRACE``
set: after each insert returns (the lines are queryable from then on) it logs the
end offset and the time. Latency of a line = time its insert returned - time it was
written. A second, independent measure comes from the datalake after the run:
``inserted_at - time`` per event (the views stamp ``inserted_at`` during the insert).
Peak memory of the collector process is sampled from /proc every 50 ms, and its CPU
time (user + system, /proc/<pid>/stat) is read when the writer starts and once all is delivered: the
collector's CPU per 1,000 events/s is the CPU seconds it spent per 1,000 events.
"""

from __future__ import annotations

import argparse
import bisect
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_backfill import memory_of  # noqa: E402
from generate import EventGenerator  # noqa: E402

CAIRN = str(Path(sys.executable).parent / "cairn")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (all its threads, the embedded engine included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, int(round(q * (len(sorted_values) - 1)))))
    return sorted_values[index]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=int, default=1000, help="events per second")
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/cairn-latency"))
    parser.add_argument("--via-serve", action="store_true",
                        help="run `cairn serve` on the data directory; the collector inserts through it "
                             "(its process then holds no database engine)")
    args = parser.parse_args(argv)
    shutil.rmtree(args.workdir, ignore_errors=True)
    args.workdir.mkdir(parents=True)
    data_dir = args.workdir / "data"
    subprocess.run([CAIRN, "--data-dir", str(data_dir), "migrate"], check=True, capture_output=True)
    server = None
    if args.via_serve:
        server = subprocess.Popen([CAIRN, "--data-dir", str(data_dir), "serve", "--port", "0"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while not (data_dir / "serve.json").exists():
            time.sleep(0.1)
    log = args.workdir / "tracking.log"
    log.touch()
    trace = args.workdir / "trace.tsv"
    collector = subprocess.Popen([CAIRN, "--data-dir", str(data_dir), "collect", str(log)],
                                 env={**os.environ, "CAIRN_COLLECTOR_TRACE": str(trace)},
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peaks = {"VmRSS": 0, "RssAnon": 0, "RssFile": 0}
    sampling = threading.Event()
    sampling.set()

    def sample() -> None:
        while sampling.is_set():
            for key, value in memory_of(collector.pid).items():
                peaks[key] = max(peaks[key], value)
            time.sleep(0.05)

    threading.Thread(target=sample, daemon=True).start()
    while not (data_dir / "collector.json").exists():
        if collector.poll() is not None:
            raise SystemExit(collector.stderr.read().decode())
        time.sleep(0.1)

    generator = EventGenerator(seed=9, prefixed=True)
    per_write = max(1, args.rate // 100)
    writes: list[tuple[int, float, int]] = []  # (end offset, time written, lines)
    offset = 0
    started = time.time()
    cpu_at_start = cpu_seconds(collector.pid)
    tick = 0
    with open(log, "ab", buffering=0) as out:
        while True:
            due = started + tick * 0.01
            now = time.time()
            if due - started >= args.seconds:
                break
            if due > now:
                time.sleep(due - now)
            now = time.time()
            # One microsecond apart: every event distinct, times still the moment of writing.
            data = "".join(generator.line(datetime.fromtimestamp(now + i * 1e-6, timezone.utc))
                           for i in range(per_write)).encode()
            out.write(data)
            offset += len(data)
            writes.append((offset, now, per_write))
            tick += 1
    written_for = time.time() - started
    total_lines = sum(n for _, _, n in writes)

    deadline = time.time() + 60
    ends: list[int] = []
    done_at: list[float] = []
    while time.time() < deadline:
        ends, done_at = [], []
        if trace.exists():
            for line in trace.read_text().splitlines():
                _, end, at = line.split("\t")
                ends.append(int(end))
                done_at.append(float(at))
        if ends and ends[-1] >= offset:
            break
        time.sleep(0.2)
    collector_cpu = cpu_seconds(collector.pid) - cpu_at_start  # every event delivered (or the wait timed out)
    collector.send_signal(signal.SIGTERM)
    collector.wait(timeout=60)
    sampling.clear()

    latencies: list[float] = []
    for end, at, lines in writes:
        index = bisect.bisect_left(ends, end)
        if index == len(ends):
            raise SystemExit(f"the collector never delivered byte {end:,}")
        latencies.extend([done_at[index] - at] * lines)
    latencies.sort()

    stored = subprocess.run(
        [CAIRN, "--data-dir", str(data_dir), "client", "-q",
         "SELECT count(), uniqExact(source, source_offset), quantiles(0.5, 0.95, 0.99)(dateDiff('millisecond', time, inserted_at)) "
         "FROM openedx.events"], check=True, capture_output=True).stdout.decode().strip()
    if server is not None:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
    inserts = len(ends)
    print(f"writer: {total_lines:,} events in {written_for:.1f} s ({total_lines / written_for:,.0f} events/s, "
          f"{offset / 1e6:,.1f} MB), {per_write} lines every 10 ms")
    print(f"engine: {'cairn serve (separate process)' if server else 'embedded in the collector process'}")
    print(f"collector: {inserts:,} inserts ({total_lines / max(inserts, 1):,.0f} events per insert)")
    print(f"latency append -> queryable: p50 {percentile(latencies, 0.5) * 1000:,.0f} ms, "
          f"p95 {percentile(latencies, 0.95) * 1000:,.0f} ms, p99 {percentile(latencies, 0.99) * 1000:,.0f} ms, "
          f"max {latencies[-1] * 1000:,.0f} ms (target p99 <= 1000 ms)")
    count, distinct, quantiles = stored.split("\t")
    print(f"datalake: {int(count):,} events ({int(distinct):,} distinct offsets); inserted_at - time p50/p95/p99 (ms): "
          f"{quantiles}")
    print(f"collector CPU from the first write to the last delivery: {collector_cpu:.1f} s for {total_lines:,} events "
          f"= {collector_cpu / (total_lines / 1000):.3f} s per 1,000 events (cores per 1,000 events/s sustained)")
    print(f"collector peak memory: RSS {peaks['VmRSS'] / 1024:,.0f} MB = private (anonymous) "
          f"{peaks['RssAnon'] / 1024:,.0f} MB + mapped files (libraries; chDB alone maps ~265 MB) {peaks['RssFile'] / 1024:,.0f} MB")
    ok = int(count) == int(distinct) == total_lines
    print("counts: OK" if ok else "counts: MISMATCH")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
