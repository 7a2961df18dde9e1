"""Benchmark temporal queries: as_of with and without snapshots, time grids, one account.

Usage: ``.venv/bin/python benchmarks/temporal.py [--events 10000000] [--accounts 100000]
[--repeat 3]``

The archive (an eventkit archive, ``banking`` rules) is generated once under
``benchmarks/out/archive-<events>-<accounts>/`` and reused; its snapshot set
(month ends) and by-account copy are built once by the driver (the time is
shown). Each case runs in a fresh interpreter: one untimed warm-up call, then
``--repeat`` timed calls (the 36 separate replays: one), median shown. The
baseline, measured in the same run, is a full replay answering ``as_of``.
"""

from __future__ import annotations

import argparse
import calendar
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # `common` when run as a script

from common import case_parser, machine_lines, peak_rss, report, run_child, time_work

OUT = Path(__file__).resolve().parent / "out"
SEED = 1
RULES = "banking"
MID = "2024-06-15T12:00:00Z"  # the middle of the generated three years
ACCOUNT = 4_242
PACKAGES = ("polars", "numba", "deltalake")
CASES = {
    "full": "full replay, then `as_of(mid)` (baseline)",
    "as-of-snapshot": "`as_of(mid)` from the nearest snapshot + the tail",
    "grid": "month-end grid, all accounts × 36 months: `at_times` (one pass)",
    "separate": "the same grid as 36 separate `replay(...).as_of(t)` (no snapshots)",
    "separate-snapshot": "the same grid as 36 separate `as_of(t)` with snapshots",
    "one-account": "one account: `replay(keys=[a]).as_of(mid)` (by-account copy)",
    "one-account-scan": "one account without the copy (key filter pushed into the scan)",
}
SINGLE_RUN = {"separate"}  # 36 full replays per call: one timed call is enough


def month_ends() -> list[str]:
    """The 36 month ends of the generated archive's three years (dates: end of day, UTC)."""
    return [f"{y}-{m:02d}-{calendar.monthrange(y, m)[1]}" for y in (2023, 2024, 2025)
            for m in range(1, 13)]


def build(case: str, path: str) -> Callable[[], Any]:
    import eventkit

    grid = month_ends()
    if case == "full":
        return lambda: eventkit.replay(path, RULES, snapshots=False).as_of(MID).collect()
    if case == "as-of-snapshot":
        return lambda: eventkit.replay(path, RULES).as_of(MID).collect()
    if case == "grid":
        return lambda: eventkit.replay(path, RULES, snapshots=False).at_times(grid).collect()
    if case in ("separate", "separate-snapshot"):
        use = case == "separate-snapshot"
        return lambda: [eventkit.replay(path, RULES, snapshots=use).as_of(t).collect()
                        for t in grid]
    use = case == "one-account"
    return lambda: eventkit.replay(path, RULES, keys=[ACCOUNT], snapshots=use).as_of(
        MID).collect()


def run_case(case: str, path: str, repeat: int) -> None:
    work = build(case, path)
    extra = {"setup_rss": peak_rss()}
    report(time_work(work, 1 if case in SINGLE_RUN else repeat), **extra)


def archive(events: int, accounts: int) -> Path:
    """The benchmark archive (an eventkit archive), generated when missing or incomplete."""
    import eventkit
    from eventkit.banking.generate import generate

    path = OUT / f"archive-{events}-{accounts}"
    if not (path / "_delta_log").is_dir() or len(eventkit.EventArchive(path)) != events:
        import shutil

        shutil.rmtree(path, ignore_errors=True)
        print(f"generating {events:,} events into {path} ...", file=sys.stderr, flush=True)
        generate(path, events=events, accounts=accounts, seed=SEED)
    return path


def snapshots(path: Path) -> float:
    """Build the snapshot set and the by-account copy; return the seconds it took."""
    import eventkit

    began = time.perf_counter()
    eventkit.snapshot(path, RULES, every="1mo")
    return time.perf_counter() - began


def main() -> None:
    parser = case_parser(__doc__, CASES)
    parser.add_argument("--path", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        run_case(args.run, args.path, args.repeat)
        return

    header = machine_lines(PACKAGES)
    path = archive(args.events, args.accounts)
    built = snapshots(path)
    results = {}
    for case in args.cases:
        print(f"running {case} ...", file=sys.stderr, flush=True)
        results[case] = run_child([sys.executable, __file__, "--run", case, "--path",
                                   str(path), "--repeat", str(args.repeat)])
    print(f"## Temporal benchmark: {args.events:,} events, {args.accounts:,} accounts, "
          f"`{RULES}` rules\n")
    print("\n".join(header))
    print(f"- snapshot set (36 month ends) + by-account copy built in {built:.1f} s\n")
    print("| case | seconds (median) | vs full replay | peak RSS MiB |")
    print("|---|---:|---:|---:|")
    base = results.get("full")
    for case, r in results.items():
        rel = f"{r['median'] / base['median']:.3f}" if base else "–"
        print(f"| {CASES[case]} | {r['median']:.3f} | {rel} | {r['rss'] / 2**20:,.0f} |")
    print("\nTargets:\n")
    checks = []
    if base and "as-of-snapshot" in results:
        checks.append(("as_of with snapshots ≤ 5% of a full replay",
                       results["as-of-snapshot"]["median"] / base["median"], 0.05, True))
    if "grid" in results and "separate" in results:
        checks.append(("grid ≥ 10× faster than 36 separate calls",
                       results["separate"]["median"] / results["grid"]["median"], 10.0, False))
    if "one-account" in results:
        checks.append(("one account ≤ 50 ms (seconds)", results["one-account"]["median"],
                       0.05, True))
    for label, value, limit, at_most in checks:
        met = value <= limit if at_most else value >= limit
        print(f"- {label}: measured {value:.3f} — {'met' if met else 'NOT met'}")


if __name__ == "__main__":
    main()
