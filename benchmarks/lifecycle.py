"""Benchmark compaction: an archive of many small files merged into few, and replay before/after.

Usage: ``.venv/bin/python benchmarks/lifecycle.py [--events 10000000] [--accounts 100000]
[--chunk-events 100000] [--repeat 3]``

The archive (an eventkit archive written ``--chunk-events`` at a time: one small
file per append) is generated under ``benchmarks/out/lifecycle-<events>-<chunk>/``
and copied afresh for the compaction, which runs once in a fresh interpreter
(time, bytes and files before and after, peak RSS). The baseline, measured in
the same run, is a full ``banking`` replay of the archive before compaction;
the same replay runs on the compacted copy. Each replay case runs in a fresh
interpreter: one untimed warm-up, then ``--repeat`` timed calls, median shown.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # `common` when run as a script

from common import machine_lines, peak_rss, report, run_child, time_work

OUT = Path(__file__).resolve().parent / "out"
SEED = 1
RULES = "banking"
PACKAGES = ("polars", "numba", "deltalake")


def run_compact(path: str) -> None:
    import eventkit

    began = time.perf_counter()
    done = eventkit.compact(path)
    seconds = time.perf_counter() - began
    report([seconds], files_before=done.files_before, files_after=done.files_after,
           bytes_before=done.bytes_before, bytes_after=done.bytes_after,
           verify_ok=eventkit.EventArchive(path).verify().ok)


def run_replay(path: str, repeat: int) -> None:
    import eventkit

    def work() -> object:
        return eventkit.replay(path, RULES, snapshots=False).state().collect()

    extra = {"setup_rss": peak_rss()}
    report(time_work(work, repeat), **extra)


def archive(events: int, accounts: int, chunk: int) -> Path:
    """The many-small-files archive, generated if missing."""
    import eventkit
    from eventkit.banking.generate import generate

    path = OUT / f"lifecycle-{events}-{chunk}"
    if not (path / "_delta_log").is_dir() or len(eventkit.EventArchive(path)) != events:
        shutil.rmtree(path, ignore_errors=True)
        print(f"generating {events:,} events into {path} ...", file=sys.stderr, flush=True)
        generate(path, events=events, accounts=accounts, seed=SEED, chunk_events=chunk)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--chunk-events", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3, help="timed replays per case (median)")
    parser.add_argument("--run", choices=("compact", "replay"), help=argparse.SUPPRESS)
    parser.add_argument("--path", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run == "compact":
        run_compact(args.path)
        return
    if args.run == "replay":
        run_replay(args.path, args.repeat)
        return

    header = machine_lines(PACKAGES)
    small = archive(args.events, args.accounts, args.chunk_events)
    merged = OUT / f"{small.name}-compacted"
    shutil.rmtree(merged, ignore_errors=True)
    shutil.copytree(small, merged)

    def replay(path: Path) -> dict:
        return run_child([sys.executable, __file__, "--run", "replay", "--path", str(path),
                          "--repeat", str(args.repeat)])

    print("running replay before compaction ...", file=sys.stderr, flush=True)
    before = replay(merged)
    print("running compact ...", file=sys.stderr, flush=True)
    comp = run_child([sys.executable, __file__, "--run", "compact", "--path", str(merged)])
    print("running replay after compaction ...", file=sys.stderr, flush=True)
    after = replay(merged)
    shutil.rmtree(merged, ignore_errors=True)

    mib = 2**20
    print(f"## Lifecycle benchmark: compacting {args.events:,} events written "
          f"{args.chunk_events:,} per append\n")
    print("\n".join(header))
    print(f"- files {comp['files_before']:,} → {comp['files_after']:,}; bytes "
          f"{comp['bytes_before'] / mib:,.1f} MiB → {comp['bytes_after'] / mib:,.1f} MiB "
          f"({comp['bytes_after'] / comp['bytes_before']:.2f}×); verify after: "
          f"{'ok' if comp['verify_ok'] else 'FAILED'}\n")
    print("| case | seconds | vs replay before | peak RSS MiB |")
    print("|---|---:|---:|---:|")
    base = before["median"]
    rows = (
        (f"full `{RULES}` replay, {comp['files_before']:,} small files (baseline)", before),
        (f"`compact` ({comp['files_before']:,} → {comp['files_after']:,} files, once)", comp),
        (f"full `{RULES}` replay after compaction", after),
    )
    for label, r in rows:
        print(f"| {label} | {r['median']:.3f} | {r['median'] / base:.3f} | "
              f"{r['rss'] / mib:,.0f} |")


if __name__ == "__main__":
    main()
