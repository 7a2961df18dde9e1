"""Benchmark appends on a long-lived archive: per-append latency as commits pile up, verify,
and Kafka ingest throughput by batch size.

Usage: ``.venv/bin/python benchmarks/appends.py [--commits 100000] [--marks 10 1000 10000
100000] [--sample 50] [--ingest-events 20000] [--no-ingest]``

- **latency**: one writer process appends batches of one event, one commit each, to a new
  archive (the soak: ``--commits`` commits). Just after the archive reaches each mark it
  times the next ``--sample`` appends (median, 90th percentile); ``ratio`` is that median
  over the first mark's. A fresh process's first append at each mark (opening the archive,
  reading its newest checkpoint and the ids it holds) is timed too.
- **verify**: full ``verify`` at the end, and ``verify(since=head at the last mark minus
  --sample)`` (time proportional to what came after).
- **ingest**: ``eventkit.ingest`` from the test broker (Tansu on loopback) with
  ``batch_size`` 1, 100 and 10,000 (one commit per batch), in events per second: of
  ``--ingest-events`` messages (a tenth of them, at most 2,000, with batches of one).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent))  # `common` when run as a script
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # the test broker

from broker import Broker
from common import machine_lines

import eventkit
from eventkit.banking.generate import generate_chunks
from eventkit.streams.kafka import create_topic

PACKAGES = ("eventkit", "polars", "deltalake", "obstore")
T0 = datetime(2024, 1, 1, tzinfo=UTC)


def one_event(n: int) -> pl.DataFrame:
    return pl.DataFrame({"event_id": [f"e{n:09d}"], "account_id": [1 + n % 1000],
                         "event_type": ["Deposit"], "amount": [100],
                         "event_time": [T0 + timedelta(seconds=n)]})


def cold_append(path: Path, n: int) -> float:
    """Seconds of a fresh process's first append (imports not counted)."""
    code = ("import sys, time, json; sys.path.insert(0, sys.argv[3]); from appends import "
            "one_event; import eventkit; t = time.perf_counter(); "
            "eventkit.EventArchive(sys.argv[1]).append(one_event(int(sys.argv[2]))); "
            "print(json.dumps(time.perf_counter() - t))")
    done = subprocess.run([sys.executable, "-c", code, str(path), str(n),
                           str(Path(__file__).resolve().parent)],
                          check=True, capture_output=True, text=True)
    return float(json.loads(done.stdout.splitlines()[-1]))


def soak(root: Path, commits: int, marks: list[int], sample: int) -> tuple[list[str], Path]:
    path = root / "soak"
    archive = eventkit.EventArchive.create(path)
    rows = []
    n = 0
    began = time.perf_counter()
    heads: dict[int, str] = {}
    for mark in sorted(marks):
        while archive.version < mark:
            archive.append(one_event(n))
            n += 1
            if n % 10_000 == 0:
                print(f"{n:,} commits, {time.perf_counter() - began:.0f} s", file=sys.stderr)
        heads[mark] = archive.head
        cold = cold_append(path, n)
        n += 1
        times = []
        for _ in range(sample):
            t = time.perf_counter()
            archive.append(one_event(n))
            times.append(time.perf_counter() - t)
            n += 1
        times.sort()
        rows.append((mark, statistics.median(times), times[int(len(times) * 0.9)], cold))
    while archive.version < commits:
        archive.append(one_event(n))
        n += 1
    total = time.perf_counter() - began
    first = rows[0][1]
    lines = [f"Appends of one event each to one archive, {n:,} commits in {total:.0f} s "
             f"({n / total:,.0f} commits/s overall):", "",
             "| commits before | median ms | p90 ms | ratio vs first | fresh process's first "
             "append ms |", "|---:|---:|---:|---:|---:|"]
    lines += [f"| {m:,} | {med * 1e3:.1f} | {p90 * 1e3:.1f} | {med / first:.2f} | "
              f"{cold * 1e3:.0f} |" for m, med, p90, cold in rows]
    since = heads[max(marks)]
    t = time.perf_counter()
    full = eventkit.EventArchive(path).verify()
    full_s = time.perf_counter() - t
    t = time.perf_counter()
    part = eventkit.EventArchive(path).verify(since=since)
    part_s = time.perf_counter() - t
    assert full.ok and part.ok, (full, part)
    later = archive.version - max(marks)
    lines += ["", f"`verify` of all {archive.version:,} commits: {full_s:.1f} s; "
              f"`verify --since` the head at commit {max(marks):,} ({later:,} later commits): "
              f"{part_s:.2f} s", ""]
    return lines, path


def ingest(root: Path, events: int) -> list[str]:
    broker = Broker(root)
    broker.start()
    lines = ["Kafka ingest (3 partitions, Tansu on loopback), one commit per batch:", "",
             "| batch_size | commits | seconds | events/s |",
             "|---:|---:|---:|---:|"]
    try:
        frame = pl.concat(generate_chunks(events=events, accounts=max(10, events // 100),
                                          seed=3))
        create_topic(broker.bootstrap, "tx", 3)
        eventkit.produce(frame, broker.bootstrap, "tx", partitions=3)
        for size in (1, 100, 10_000):
            wanted = min(events // 10, 2_000) if size == 1 else events
            began = time.perf_counter()
            summary = eventkit.ingest(root / f"ingest-{size}", broker.bootstrap, "tx",
                                      batch_size=size, max_wait=5.0, max_events=wanted)
            spent = time.perf_counter() - began
            assert summary.events == wanted, summary
            lines.append(f"| {size:,} | {summary.batches:,} | {spent:.1f} | "
                         f"{wanted / spent:,.0f} |")
    finally:
        broker.stop()
    return [*lines, ""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commits", type=int, default=100_000)
    parser.add_argument("--marks", type=int, nargs="+", default=[10, 1_000, 10_000, 100_000])
    parser.add_argument("--sample", type=int, default=50)
    parser.add_argument("--ingest-events", type=int, default=30_000)
    parser.add_argument("--no-ingest", action="store_true")
    parser.add_argument("--keep", type=Path, help="keep the soak archive in this folder")
    args = parser.parse_args()
    lines = ["## Appends benchmark", "", *machine_lines(PACKAGES), ""]
    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or Path(tmp)
        soaked, _ = soak(root, max(args.commits, max(args.marks) + args.sample + 1),
                         [m for m in args.marks if m <= args.commits], args.sample)
        lines += soaked
        if not args.no_ingest:
            lines += ingest(Path(tmp), args.ingest_events)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
