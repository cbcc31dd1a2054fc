"""Benchmark of `cairn demo`: how fast the tracking log is generated.

    .venv/bin/python bench/bench_demo.py [--learners 4200] [--courses 5] [--days 60] [--output /tmp/cairn-bench-demo]

Generates the history (no MySQL, the part that scales with events) and prints the
number of events, the seconds spent rendering and writing the log, and the rate.
The target is 1 million events at >= 50,000 events/s (docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cairn.demo import DemoOptions, generate_demo  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--learners", type=int, default=4200)
    parser.add_argument("--courses", type=int, default=5)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--output", type=Path, default=Path("/tmp/cairn-bench-demo"))
    parser.add_argument("--keep", action="store_true", help="keep the generated files")
    args = parser.parse_args()
    shutil.rmtree(args.output, ignore_errors=True)
    began = time.perf_counter()
    cpu_began = time.process_time()
    result = generate_demo(DemoOptions(learners=args.learners, courses=args.courses, days=args.days,
                                       seed=args.seed, output=args.output, mysql=False,
                                       start=datetime(2026, 1, 5, tzinfo=timezone.utc)))
    total = time.perf_counter() - began
    cpu = time.process_time() - cpu_began
    size = result.tracking_log.stat().st_size
    print(f"events:        {result.events:,}")
    print(f"log size:      {size / 1e6:,.0f} MB ({size / result.events:,.0f} bytes/event)")
    print(f"log rendering: {result.seconds:.2f} s -> {result.rate:,.0f} events/s")
    print(f"whole command: {total:.2f} s -> {result.events / total:,.0f} events/s "
          "(includes building courses, learners, OLX and ground truth)")
    print(f"cpu time:      {cpu:.2f} s -> {result.events / cpu:,.0f} events per CPU-second "
          "(what an idle core gives; the wall-clock rate drops when other processes compete)")
    print(f"cpu count:     {os.cpu_count()}, load average {os.getloadavg()[0]:.2f}")
    if not args.keep:
        shutil.rmtree(args.output, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
