"""Benchmark what-if: compare two banking variants vs one replay; view refresh vs rebuild.

Usage: ``.venv/bin/python benchmarks/whatif.py [--events 10000000] [--accounts 100000]
[--repeat 3]``

Uses the eventkit archive of ``benchmarks/temporal.py`` (generated if missing).
Scenario B moves the bank's 2024 rate changes three months earlier
(``shift_rates(rates_of(events), "-3mo", start="2024-01-01", end="2024-12-31")``).
Each case runs in a fresh interpreter: one untimed warm-up, then ``--repeat``
timed calls (median). The view cases work on a copy of the archive: the view is
materialized into DuckDB, 1 % new events are appended, then a full rebuild
(``materialize`` into a new file) is timed against ``refresh`` of a copy of the
view as it was before the append.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # `common` when run as a script

from common import case_parser, machine_lines, peak_rss, report, run_child, time_work
from temporal import archive as temporal_archive

OUT = Path(__file__).resolve().parent / "out"
RULES = "banking"
PACKAGES = ("polars", "numba", "duckdb")
CASES = {
    "single": "one replay (`banking`, full history) — the baseline",
    "compare": "`compare(banking, rate_table=2024 rise 3 months earlier)`",
    "two-replays": "two separate replays (what `compare` avoids)",
    "rebuild": "view: full rebuild (`materialize` into DuckDB)",
    "refresh": "view: `refresh` after appending 1 % new events",
}


def scenario(path: str) -> dict[str, Any]:
    import eventkit
    from eventkit.rules.rates import rates_of, shift_rates

    table = rates_of(eventkit.open_archive(path))
    return {"rate_table": shift_rates(table, "-3mo", start="2024-01-01", end="2024-12-31")}


def build(case: str, path: str, work: Path) -> Callable[[], Any]:
    import eventkit

    if case == "single":
        return lambda: eventkit.replay(path, RULES, snapshots=False).history
    if case == "compare":
        overrides = scenario(path)
        return lambda: eventkit.compare(path, RULES, overrides)
    if case == "two-replays":
        rules_b = eventkit.rules.get(RULES).with_params(**scenario(path))
        return lambda: (eventkit.replay(path, RULES, snapshots=False).history,
                        eventkit.replay(path, rules_b, snapshots=False).history)
    counter = iter(range(1_000))
    bank = work / "bank"
    if case == "rebuild":
        def rebuild() -> None:
            db = work / f"rebuilt-{next(counter)}.duckdb"
            eventkit.materialize(eventkit.replay(bank, RULES, snapshots=False),
                                 f"duckdb:///{db}")
            db.unlink()
        return rebuild

    def fresh_refresh() -> None:
        db = work / f"refreshed-{next(counter)}.duckdb"
        shutil.copy(work / "before.duckdb", db)
        began = time.perf_counter()
        eventkit.refresh(f"duckdb:///{db}", RULES)
        TIMES.append(time.perf_counter() - began)  # the copy is not timed
        db.unlink()
    return fresh_refresh


TIMES: list[float] = []


def run_case(case: str, path: str, work: Path, repeat: int) -> None:
    seconds = time_work(build(case, path, work), repeat)
    if case == "refresh":
        seconds = TIMES[1:]  # the warm-up's own refresh is dropped
    report(seconds, setup_rss=peak_rss())


def prepare_views(path: Path, work: Path, share: float) -> int:
    """A copy of the archive, its view before the append, then ``share`` new events."""
    import numpy as np
    import polars as pl

    import eventkit

    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    shutil.copytree(path, work / "bank", ignore=shutil.ignore_patterns("_eventkit"))
    bank = eventkit.EventArchive(work / "bank")
    eventkit.materialize(eventkit.replay(bank, RULES, snapshots=False),
                         f"duckdb:///{work / 'before.duckdb'}")
    events = bank.scan().select("account_id", "event_time").collect()
    n = int(len(events) * share)
    rng = np.random.default_rng(1)
    accounts = events.filter(pl.col("account_id") > 0)["account_id"].unique().to_numpy()
    end = events["event_time"].max()
    batch = pl.DataFrame({
        "event_id": [f"new-{i}" for i in range(n)],
        "account_id": rng.choice(accounts, n),
        "event_type": rng.choice(["Deposit", "Withdrawal", "Fee"], n),
        "amount": rng.integers(100, 50_000, n),
        "event_time": pl.Series([end]).dt.offset_by("1d").to_list() * n,
    }).with_columns(pl.col("event_time") + pl.duration(seconds=pl.int_range(pl.len())))
    bank.append(batch)
    return n


def main() -> None:
    parser = case_parser(__doc__, CASES)
    parser.add_argument("--path", help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        run_case(args.run, args.path, Path(args.work), args.repeat)
        return

    header = machine_lines(PACKAGES)
    path = temporal_archive(args.events, args.accounts)
    work = OUT / f"whatif-{args.events}"
    appended = 0
    if {"rebuild", "refresh"} & set(args.cases):
        print("preparing the view copy ...", file=sys.stderr, flush=True)
        appended = prepare_views(path, work, 0.01)
    results = {}
    for case in args.cases:
        print(f"running {case} ...", file=sys.stderr, flush=True)
        results[case] = run_child([sys.executable, __file__, "--run", case, "--path",
                                   str(path), "--work", str(work), "--repeat",
                                   str(args.repeat)])
        results[case]["median"] = statistics.median(results[case]["seconds"])
    print(f"## What-if benchmark: {args.events:,} events, {args.accounts:,} accounts, "
          f"`{RULES}` rules\n")
    print("\n".join(header))
    if appended:
        print(f"- view cases: {appended:,} events appended (1 %) after the view was built")
    print("\n| case | seconds (median) | ratio | peak RSS MiB |")
    print("|---|---:|---:|---:|")
    for case, r in results.items():
        base = results.get("rebuild" if case in ("rebuild", "refresh") else "single")
        rel = f"{r['median'] / base['median']:.3f}" if base else "–"
        print(f"| {CASES[case]} | {r['median']:.3f} | {rel} | {r['rss'] / 2**20:,.0f} |")
    print("\nTargets:\n")
    for label, case, base, limit in (("compare ≤ 1.3× one replay", "compare", "single", 1.3),
                                     ("refresh ≤ 10% of a full rebuild", "refresh", "rebuild",
                                      0.10)):
        if case in results and base in results:
            value = results[case]["median"] / results[base]["median"]
            print(f"- {label}: measured {value:.3f} — {'met' if value <= limit else 'NOT met'}")


if __name__ == "__main__":
    main()
