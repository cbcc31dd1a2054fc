"""What an insert block costs through Cairn's views, and what that means for memory (issue 9).

    .venv/bin/python bench/bench_block_cost.py [--lines 100000] [--batches 1,4,32]

Measures, each in its own process (CPU time from getrusage, steadier than wall time):

1. the memory floor of the embedded engine: RSS after ``import chdb``, after opening and
   migrating a datalake, and after one insert through every view;
2. the fixed CPU cost of one insert block: one-line inserts into Cairn's ``_ingest``
   (every view) against the same one-line inserts into a single MergeTree table (the
   reference table of ``bench_backfill.py``: the baseline outside Cairn's design);
3. whether that cost is per statement or per block: the same 8 MiB sent as one
   statement of 16 blocks and as 16 statements;
4. `cairn backfill` of one generated file with each batch size of ``--batches`` (MiB):
   wall time, CPU time and peak RSS, against the reference single-table insert of the
   same file.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_backfill import CAIRN, REFERENCE, generated, run_sampled  # noqa: E402

FLOOR = """
import json, re, sys
def rss():
    text = open('/proc/self/status').read()
    return {k: int(re.search(k + r':\\s+(\\d+)', text).group(1)) // 1024 for k in ('VmRSS', 'RssAnon', 'RssFile')}
out = {'python': rss()}
import chdb
out['import chdb'] = rss()
from cairn.config import load_config
from cairn.engine import open_engine
engine = open_engine(load_config(overrides={'data_dir': sys.argv[1]}))
engine.query_rows('SELECT count() FROM openedx.events')
out['datalake opened'] = rss()
engine.insert_raw('openedx._ingest', [open(sys.argv[2], 'rb').readline().replace(b'\\t', b' ')], 'TabSeparated',
                  column_names=['line'])
out['after a one-line insert'] = rss()
print(json.dumps(out))
"""

# One-line inserts: the same line into the reference table and into Cairn's `_ingest`.
PER_BLOCK = """
import json, resource, sys, time
from cairn.config import load_config
from cairn.engine import open_engine
engine = open_engine(load_config(overrides={'data_dir': sys.argv[1]}))
from cairn.ingest.encoding import tsv_escape
line = open(sys.argv[2], 'rb').readline().rstrip(b'\\n')
json_text = tsv_escape(line[line.index(b' - {') + 3:])
escaped = tsv_escape(line)
inserts = {
    'reference table': ('reference.events_one', ['raw'], json_text),
    "Cairn's _ingest (every view)": ('openedx._ingest', ['source', 'source_offset', 'line'], b'bench\\t0\\t' + escaped),
}
engine.command('CREATE TABLE IF NOT EXISTS reference.events_one AS reference.events')
out = {}
for label, (table, columns, row) in inserts.items():
    engine.insert_raw(table, [row + b'\\n'], 'TabSeparated', column_names=columns)  # warm
    started, cpu = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
    n = int(sys.argv[3])
    for i in range(n):
        engine.insert_raw(table, [row + b'\\n'], 'TabSeparated', column_names=columns)
    after = resource.getrusage(resource.RUSAGE_SELF)
    out[label] = {'wall_ms': (time.perf_counter() - started) / n * 1000,
                  'cpu_ms': (after.ru_utime + after.ru_stime - cpu.ru_utime - cpu.ru_stime) / n * 1000}
print(json.dumps(out))
"""

# The same data as one statement of 16 blocks (each RowBinary row its own block) and as 16 statements.
BLOCKS = """
import json, resource, struct, sys, time
import chdb
from cairn.engine.infile import infile_insert
data = open(sys.argv[2], 'rb').read(8 << 20)
data = data[:data.rfind(b'\\n') + 1]
def varint(n):
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)
pieces, pos = [], 0
while pos < len(data):
    end = data.rfind(b'\\n', pos, pos + len(data) // 16 + 1) + 1 or len(data)
    pieces.append(varint(5) + b'bench' + struct.pack('<Q', pos) + varint(end - pos) + data[pos:end])
    pos = end
connection = chdb.connect(sys.argv[1] + '/clickhouse')
head = 'INSERT INTO openedx._ingest_chunks (source, start, data)'
one_block_each = ('max_insert_block_size = 1, max_block_size = 1, min_insert_block_size_rows = 1, '
                  'min_insert_block_size_bytes = 1, input_format_parallel_parsing = 0')
run = lambda sql: connection.query(sql, 'TabSeparated')
def cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
infile_insert(run, head, 'RowBinary', pieces[:1], 'parallel_view_processing = 1')  # warm
out = {}
start = cpu()
infile_insert(run, head, 'RowBinary', pieces, 'parallel_view_processing = 1, ' + one_block_each)
out['one statement of %d blocks' % len(pieces)] = cpu() - start
start = cpu()
for piece in pieces:
    infile_insert(run, head, 'RowBinary', [piece], 'parallel_view_processing = 1')
out['%d statements of one block' % len(pieces)] = cpu() - start
print(json.dumps(out))
"""


def migrated(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    subprocess.run([CAIRN, "--data-dir", str(path), "migrate"], check=True, capture_output=True)
    return path


def python_json(script: str, *args: str) -> dict:
    result = subprocess.run([sys.executable, "-c", script, *map(str, args)], check=True, capture_output=True)
    return json.loads(result.stdout.decode().strip().splitlines()[-1])


def backfill_by_batch(workdir: Path, log: Path, batches: list[int]) -> list[str]:
    """`cairn backfill` of ``log`` with each batch size (MiB): seconds, CPU, peak RSS."""
    lines = []
    for mib in batches:
        data_dir = migrated(workdir / f"data-batch-{mib}")
        before = os.times()
        result, wall, mem = run_sampled([CAIRN, "--data-dir", str(data_dir), "backfill", str(log)],
                                        env={"COLUMNS": "200", "CAIRN_COLLECTOR_BATCH_BYTES": str(mib << 20)})
        after = os.times()
        cpu = (after.children_user + after.children_system) - (before.children_user + before.children_system)
        match = re.search(r"([\d,]+) lines in ([\d.,]+) s", result.stdout.decode())
        seconds = float(match.group(2).replace(",", "")) if match else wall
        lines.append((mib, seconds, cpu, mem["VmRSS"]))
        shutil.rmtree(data_dir, ignore_errors=True)
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--batches", default="1,4,32", help="backfill batch sizes to compare, in MiB")
    parser.add_argument("--inserts", type=int, default=20, help="one-line inserts per measure")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/cairn-bench"))
    args = parser.parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    log = generated(args.workdir, args.lines)
    data_dir = migrated(args.workdir / "data-block-cost")

    floor = python_json(FLOOR, data_dir, log)
    print("1. memory floor of the embedded engine (MB):")
    for step, mem in floor.items():
        print(f"   {step:26s} RSS {mem['VmRSS']:5,d} = private {mem['RssAnon']:5,d} + mapped files {mem['RssFile']:5,d}")

    ref_result, ref_wall, ref_mem = run_sampled([sys.executable, "-c", REFERENCE, str(data_dir), str(log)])
    ref_seconds = float(ref_result.stdout.decode().split()[-2])
    per_block = python_json(PER_BLOCK, data_dir, log, args.inserts)
    print("2. fixed cost of one insert block (one-line inserts, mean of %d):" % args.inserts)
    for label, cost in per_block.items():
        print(f"   {label:30s} {cost['cpu_ms']:6.1f} ms CPU, {cost['wall_ms']:6.1f} ms wall")

    blocks = python_json(BLOCKS, data_dir, log)
    print("3. per statement or per block (8 MiB of lines through every view, CPU s):")
    for label, seconds in blocks.items():
        print(f"   {label:30s} {seconds:5.2f} s")

    mb = log.stat().st_size / 1e6
    print(f"4. `cairn backfill` of {args.lines:,} lines ({mb:,.0f} MB) by batch size; reference single-table "
          f"insert {ref_seconds:.2f} s (process peak RSS {ref_mem['VmRSS']:,.0f} MB):")
    for mib, seconds, cpu, rss in backfill_by_batch(args.workdir, log, [int(b) for b in args.batches.split(",")]):
        print(f"   {mib:3d} MiB batches: {seconds:6.2f} s = {ref_seconds / seconds:.2f} x the reference, "
              f"{cpu:6.1f} s CPU, peak RSS {rss:,.0f} MB")
    shutil.rmtree(data_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
