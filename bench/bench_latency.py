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


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line: rate, duration, working directory and whether to go through `cairn serve`."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=int, default=1000, help="events per second")
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/cairn-latency"))
    parser.add_argument("--via-serve", action="store_true",
                        help="run `cairn serve` on the data directory; the collector inserts through it "
                             "(its process then holds no database engine)")
    return parser.parse_args(argv)


def prepare_data_dir(workdir: Path) -> Path:
    """Recreate the working directory and migrate a fresh data directory inside it; return the latter."""
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    data_dir = workdir / "data"
    subprocess.run([CAIRN, "--data-dir", str(data_dir), "migrate"], check=True, capture_output=True)
    return data_dir


def start_server(data_dir: Path) -> subprocess.Popen:
    """Start `cairn serve` on the data directory and wait until it has written serve.json."""
    server = subprocess.Popen([CAIRN, "--data-dir", str(data_dir), "serve", "--port", "0"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while not (data_dir / "serve.json").exists():
        time.sleep(0.1)
    return server


def start_collector(data_dir: Path, log: Path, trace: Path) -> subprocess.Popen:
    """Start `cairn collect` following the log, tracing each insert to the trace file."""
    return subprocess.Popen([CAIRN, "--data-dir", str(data_dir), "collect", str(log)],
                            env={**os.environ, "CAIRN_COLLECTOR_TRACE": str(trace)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def sample_peak_memory(pid: int) -> tuple[dict[str, int], threading.Event]:
    """Sample the process's memory every 50 ms in a daemon thread; clear the returned event to stop.

    The returned dict holds the peaks (kB) seen so far for VmRSS, RssAnon and RssFile.
    """
    peaks = {"VmRSS": 0, "RssAnon": 0, "RssFile": 0}
    sampling = threading.Event()
    sampling.set()

    def sample() -> None:
        while sampling.is_set():
            for key, value in memory_of(pid).items():
                peaks[key] = max(peaks[key], value)
            time.sleep(0.05)

    threading.Thread(target=sample, daemon=True).start()
    return peaks, sampling


def wait_for_collector(collector: subprocess.Popen, data_dir: Path) -> None:
    """Wait until the collector has written collector.json; exit with its stderr if it died first."""
    while not (data_dir / "collector.json").exists():
        if collector.poll() is not None:
            raise SystemExit(collector.stderr.read().decode())
        time.sleep(0.1)


def write_at_rate(log: Path, rate: int, seconds: float, collector_pid: int
                  ) -> tuple[list[tuple[int, float, int]], int, float, float]:
    """Append rate/100 generated lines to the log every 10 ms for the given number of seconds.

    Returns the writes as (end offset, time written, lines), the final offset, how long the
    writing took, and the collector's CPU seconds read just before the first write.
    """
    generator = EventGenerator(seed=9, prefixed=True)
    per_write = max(1, rate // 100)
    writes: list[tuple[int, float, int]] = []  # (end offset, time written, lines)
    offset = 0
    started = time.time()
    cpu_at_start = cpu_seconds(collector_pid)
    tick = 0
    with open(log, "ab", buffering=0) as out:
        while True:
            due = started + tick * 0.01
            now = time.time()
            if due - started >= seconds:
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
    return writes, offset, written_for, cpu_at_start


def wait_for_delivery(trace: Path, offset: int) -> tuple[list[int], list[float]]:
    """Read the collector's trace until it reports the final offset (at most 60 s).

    Returns the end offset and the completion time of every insert, in order.
    """
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
    return ends, done_at


def line_latencies(writes: list[tuple[int, float, int]], ends: list[int], done_at: list[float]) -> list[float]:
    """Latency of every line (insert returned - line written), sorted; exit if a write was never delivered."""
    latencies: list[float] = []
    for end, at, lines in writes:
        index = bisect.bisect_left(ends, end)
        if index == len(ends):
            raise SystemExit(f"the collector never delivered byte {end:,}")
        latencies.extend([done_at[index] - at] * lines)
    latencies.sort()
    return latencies


def query_datalake(data_dir: Path) -> str:
    """Count, distinct offsets and inserted_at - time quantiles of the stored events, tab-separated."""
    return subprocess.run(
        [CAIRN, "--data-dir", str(data_dir), "client", "-q",
         "SELECT count(), uniqExact(source, source_offset), quantiles(0.5, 0.95, 0.99)(dateDiff('millisecond', time, inserted_at)) "
         "FROM openedx.events"], check=True, capture_output=True).stdout.decode().strip()


def stop_process(process: subprocess.Popen) -> None:
    """Send SIGTERM and wait (at most 60 s) for the process to exit."""
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=60)


def print_report(*, total_lines: int, written_for: float, offset: int, per_write: int, via_serve: bool,
                 inserts: int, latencies: list[float], stored: str, collector_cpu: float,
                 peaks: dict[str, int]) -> bool:
    """Print the writer, collector, latency, datalake, CPU, memory and count lines; True if the counts match."""
    print(f"writer: {total_lines:,} events in {written_for:.1f} s ({total_lines / written_for:,.0f} events/s, "
          f"{offset / 1e6:,.1f} MB), {per_write} lines every 10 ms")
    print(f"engine: {'cairn serve (separate process)' if via_serve else 'embedded in the collector process'}")
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
    return ok


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    data_dir = prepare_data_dir(args.workdir)
    server = start_server(data_dir) if args.via_serve else None
    log = args.workdir / "tracking.log"
    log.touch()
    trace = args.workdir / "trace.tsv"
    collector = start_collector(data_dir, log, trace)
    peaks, sampling = sample_peak_memory(collector.pid)
    wait_for_collector(collector, data_dir)

    writes, offset, written_for, cpu_at_start = write_at_rate(log, args.rate, args.seconds, collector.pid)
    total_lines = sum(n for _, _, n in writes)

    ends, done_at = wait_for_delivery(trace, offset)
    collector_cpu = cpu_seconds(collector.pid) - cpu_at_start  # every event delivered (or the wait timed out)
    stop_process(collector)
    sampling.clear()

    latencies = line_latencies(writes, ends, done_at)
    stored = query_datalake(data_dir)
    if server is not None:
        stop_process(server)
    ok = print_report(total_lines=total_lines, written_for=written_for, offset=offset,
                      per_write=max(1, args.rate // 100), via_serve=server is not None, inserts=len(ends),
                      latencies=latencies, stored=stored, collector_cpu=collector_cpu, peaks=peaks)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
