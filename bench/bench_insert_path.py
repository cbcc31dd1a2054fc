"""The embedded insert path: chDB's send_insert (silent on failure) vs INSERT ... FROM INFILE a FIFO.

    .venv/bin/python bench/bench_insert_path.py --lines 400000 --rounds 2

Generates tracking-log lines (bench/generate.py, padded to about 1 KB each),
encodes them as the loader does (TabSeparated ``_ingest`` rows in 32 MiB batches,
the backfill default), and inserts them into the migrated ``_ingest`` of a fresh
data directory, alternately through the old path (``send_insert``/``append``/
``finish`` on a chDB connection) and the new one (``EmbeddedEngine.insert_raw``),
in the same process. Tables are truncated between runs. Prints seconds per run,
the medians and new/old.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
from generate import write_log  # noqa: E402

from cairn.config import load_config  # noqa: E402
from cairn.engine import open_engine  # noqa: E402
from cairn.ingest.encoding import INGEST_COLUMNS, encode_lines  # noqa: E402
from cairn.schema.migrator import Migrator  # noqa: E402

BATCH = 32 << 20


def batches(path: Path, line_bytes: int) -> list[bytes]:
    """The file's lines padded to about ``line_bytes``, as encoded _ingest batches."""
    out, pending, size, offset = [], [], 0, 0
    with open(path, "rb") as handle:
        for line in handle:
            line = line.rstrip(b"\n")
            if len(line) < line_bytes and line.endswith(b"}"):
                line = line[:-1] + b', "pad": "' + b"x" * (line_bytes - len(line) - 11) + b'"}'
            pending.append(line + b"\n")
            size += len(line) + 1
            if size >= BATCH:
                data = b"".join(pending)
                out.append(encode_lines("bench.log", offset, data))
                offset, pending, size = offset + len(data), [], 0
    if pending:
        out.append(encode_lines("bench.log", offset, b"".join(pending)))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=400_000)
    parser.add_argument("--line-bytes", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    import chdb

    work = Path(tempfile.mkdtemp(prefix="cairn-bench-insert-"))
    log = work / "tracking.log"
    write_log(log, args.lines)
    data = batches(log, args.line_bytes)
    total = sum(map(len, data))
    print(f"{args.lines} lines, {total / 2**20:.0f} MiB encoded in {len(data)} inserts")
    config = load_config(overrides={"data_dir": str(work / "data")})
    engine = open_engine(config)
    Migrator(engine, config).run()
    table = f"`{engine.database}`._ingest"
    old_conn = chdb.connect(str(engine.path))
    columns = ", ".join(f"`{c}`" for c in INGEST_COLUMNS)

    def old_path() -> None:
        for batch in data:
            with old_conn.send_insert(f"INSERT INTO {table} ({columns})", "TabSeparated") as insert:
                insert.append(batch)
                insert.finish()

    def new_path() -> None:
        for batch in data:
            engine.insert_raw(table, [batch], "TabSeparated", column_names=INGEST_COLUMNS)

    def truncate() -> None:
        for (name,) in engine.query_rows("SELECT name FROM system.tables WHERE database = {db:String} "
                                         "AND engine LIKE '%MergeTree'", {"db": engine.database}):
            engine.command(f"TRUNCATE TABLE `{engine.database}`.`{name}`")

    times: dict[str, list[float]] = {"send_insert": [], "infile": []}
    for round_ in range(args.rounds):
        order = [("send_insert", old_path), ("infile", new_path)]
        for name, run in order if round_ % 2 == 0 else order[::-1]:
            truncate()
            started = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - started)
            lines = engine.query_value(f"SELECT sum(lines) FROM `{engine.database}`._ingest_stats")
            print(f"round {round_} {name:12} {times[name][-1]:6.2f}s  lines counted {lines}")
    old, new = statistics.median(times["send_insert"]), statistics.median(times["infile"])
    print(f"median send_insert {old:.2f}s, infile {new:.2f}s, infile/send_insert = {new / old:.2f}")
    engine.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
