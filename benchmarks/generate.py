"""Benchmark ``eventkit.banking.generate``: seconds, events/s, peak RSS and size on disk.

Usage: ``.venv/bin/python benchmarks/generate.py [--events N ...] [--formats parquet delta]
[--repeat R]``

Every measurement runs in a fresh subprocess, so its peak RSS is its own. The
baseline writes an equally sized frame that is already in memory with one
``DataFrame.write_parquet`` call; ``ratio`` is a run's seconds over the baseline's. With
``--repeat`` each cell is run that many times and the fastest run is shown.
Output goes to ``benchmarks/out/`` and is removed after each measurement.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

OUT = Path(__file__).resolve().parent / "out"
MODES = ("baseline", "parquet", "delta")


def run(mode: str, events: int, accounts: int) -> None:
    """Measure one mode in this process and print the result as JSON."""
    import polars as pl

    from eventkit.banking.generate import generate, generate_chunks

    target = OUT / f"{mode}-{events}"
    shutil.rmtree(target, ignore_errors=True)
    if mode == "baseline":
        frame = pl.concat(generate_chunks(events=events, accounts=accounts))
        target.mkdir(parents=True)
        began = time.perf_counter()
        frame.write_parquet(target / "events.parquet", compression="zstd")
        seconds = time.perf_counter() - began
    else:
        seconds = generate(target, events=events, accounts=accounts, format=mode).seconds
    size = sum(f.stat().st_size for f in target.rglob("*") if f.is_file())
    shutil.rmtree(target)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB
    print(json.dumps({"seconds": seconds, "bytes": size, "rss": rss}))


def measure(mode: str, events: int, accounts: int, repeat: int) -> dict[str, float]:
    """Run one measurement ``repeat`` times, each in a fresh interpreter; keep the fastest."""
    command = [sys.executable, __file__, "--run", mode, "--events", str(events),
               "--accounts", str(accounts)]
    runs = [subprocess.run(command, check=True, capture_output=True, text=True)
            for _ in range(repeat)]
    return min((json.loads(done.stdout.splitlines()[-1]) for done in runs),
               key=lambda result: result["seconds"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--accounts", type=int, help="default: events / 100")
    parser.add_argument("--formats", nargs="+", choices=MODES[1:], default=list(MODES[1:]))
    parser.add_argument("--repeat", type=int, default=1, help="runs per cell, fastest kept")
    parser.add_argument("--run", choices=MODES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        run(args.run, args.events[0], args.accounts)
        return

    header = ("events", "accounts", "format", "seconds", "events/s", "peak RSS MiB", "disk MiB",
              "ratio")
    print("{:>11} {:>9} {:>26} {:>8} {:>10} {:>12} {:>9} {:>6}".format(*header))
    for events in args.events:
        accounts = args.accounts or max(100, events // 100)
        base = measure("baseline", events, accounts, args.repeat)
        for mode in (*args.formats, "baseline"):
            result = base if mode == "baseline" else measure(mode, events, accounts, args.repeat)
            label = "write_parquet (in memory)" if mode == "baseline" else mode
            print(f"{events:>11,} {accounts:>9,} {label:>26} {result['seconds']:>8.2f} "
                  f"{events / result['seconds']:>10,.0f} {result['rss'] / 2**20:>12,.0f} "
                  f"{result['bytes'] / 2**20:>9,.1f} {result['seconds'] / base['seconds']:>6.2f}",
                  flush=True)


if __name__ == "__main__":
    main()
