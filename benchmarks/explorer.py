"""Benchmark the replay explorer's per-interaction work for one account of a large archive.

Usage: ``.venv/bin/python benchmarks/explorer.py [--archive PATH] [--accounts-tried 10]``

The archive defaults to ``benchmarks/out/archive-10000000-100000``: an eventkit archive
made by ``eventkit generate PATH --events 10000000 --accounts 100000 --seed 1``, then
``eventkit snapshot PATH --rules banking`` (which also stores the events sorted by
account, what one account's replay reads); it is only read. What is timed is the callback
(what runs in the kernel when a widget changes), never the browser:

* ``account_view`` alone, for a new account (the data read and replay);
* the explorer's whole recomputation for a new account, with and without a rate
  scenario (``account_view`` plus the chart spec and the state table);
* the recomputation when only the as-of day moves (the account's replay is reused);

against the baseline of a full replay of the archive (``banking`` rules, history),
which is what an explorer without a key filter would have to do. Each case: one
warm-up, then a different account per timed call; medians. Target: ≤ 100 ms per
interaction.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # `common` when run as a script

from common import machine_lines, peak_rss

DEFAULT = Path(__file__).resolve().parent / "out" / "archive-10000000-100000"
TARGET_MS = 100.0


def timed(calls: list[Callable[[], object]]) -> float:
    """Median milliseconds of ``calls[1:]`` after ``calls[0]`` as warm-up."""
    calls[0]()
    seconds = []
    for call in calls[1:]:
        began = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - began)
    return statistics.median(seconds) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archive", type=Path, default=DEFAULT)
    parser.add_argument("--accounts-tried", type=int, default=10)
    args = parser.parse_args()
    if not args.archive.exists():
        sys.exit(f"no archive at {args.archive}: run `eventkit generate {args.archive} "
                 "--events 10000000 --accounts 100000 --seed 1` and `eventkit snapshot "
                 f"{args.archive} --rules banking`")

    import polars as pl

    import eventkit
    from eventkit.workbench.explorer import Explorer, account_view

    began = time.perf_counter()
    events = eventkit.open_archive(args.archive)
    n_events = events.select(pl.len()).collect().item()
    # the path: an archive's by-account copy is used; banking: interest, what the notebook uses
    ex = Explorer(args.archive, debounce=0, rules="banking")
    built = time.perf_counter() - began
    accounts = [int(a) for a in ex._ids.sample(args.accounts_tried + 1, seed=1)]
    day = ex.as_of.value

    def choose(account: int, points: float = 0.0) -> Callable[[], object]:
        def call() -> None:
            ex.rate.value = points
            ex.account.value = str(account)
        return call

    rows = [
        ("`account_view`, new account (read + replay)",
         timed([lambda a=a: account_view(args.archive, a, day, rules="banking")
                for a in accounts])),
        ("explorer callback, new account (+ chart spec, table)",
         timed([choose(a) for a in accounts])),
        ("explorer callback, new account with a +1 pp rate scenario",
         timed([choose(a, 1.0) for a in accounts])),
    ]
    ex.rate.value = 0.0
    days = ex.as_of.options[-args.accounts_tried - 1:]
    rows.append(("explorer callback, as-of day moved (replay reused)",
                 timed([lambda d=d: setattr(ex.as_of, "value", d[1]) for d in days])))
    full = timed([lambda: eventkit.replay(events, "banking").history.collect()] * 2)
    ex.close()

    print(f"Explorer on {args.archive.name}: {n_events:,} events, "
          f"{len(ex._ids):,} accounts; built in {built:.1f} s (ids, time range, rate table)\n")
    print("| interaction | ms (median) | vs full replay | vs 100 ms target |")
    print("|---|---:|---:|---:|")
    for name, ms in rows:
        print(f"| {name} | {ms:,.0f} | {ms / full:.3f} | {ms / TARGET_MS:.2f}× |")
    print(f"| baseline: full `banking` replay of the archive | {full:,.0f} | 1.000 | "
          f"{full / TARGET_MS:.1f}× |")
    print(f"\npeak RSS {peak_rss() / 2**20:,.0f} MiB")
    print("\n".join(machine_lines(("polars", "altair", "ipywidgets", "numba"))))


if __name__ == "__main__":
    main()
