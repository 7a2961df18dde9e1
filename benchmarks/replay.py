"""Benchmark ``eventkit.replay`` against decoding, DuckDB, Polars and the eventsourcing library.

Usage: ``.venv/bin/python benchmarks/replay.py [--events 10000000] [--accounts 100000]
[--repeat 3]``

The archive (plain Parquet, events in log order) is generated once under
``benchmarks/out/replay-<events>-<accounts>/`` and reused while it holds ``events``
rows. Each case runs in a fresh interpreter: one untimed warm-up call (so numba's
on-disk-cached compilation, file-cache misses and lazy imports are not counted),
then ``--repeat`` timed calls around the work only; the median is shown. Peak RSS
is the child's own high-water mark (see :func:`common.peak_rss`). Prints a markdown
table and the issue's targets.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # `common` when run as a script

from common import case_parser, machine_lines, peak_rss, report, run_child, time_work

OUT = Path(__file__).resolve().parent / "out"
SEED = 1
PACKAGES = ("polars", "duckdb", "numba", "eventsourcing")
# Signed amount as in eventkit/rules/balance.toml; other event types leave it unchanged.
CREDITS = ("Deposit", "TransferIn", "Correction")
DEBITS = ("Withdrawal", "Fee", "TransferOut")
EVENTSOURCING_EVENTS = 100_000
CASES = {
    "decode": "decode (`scan_parquet().collect()`)",
    "sum-history": "eventkit sum rules, full history",
    "sum-state": "eventkit sum rules, final state",
    "banking": "eventkit banking (interest, per-posting rounding)",
    "duckdb": "DuckDB window",
    "polars-sort": "Polars sort baseline",
    "eventsourcing": "eventsourcing library (POPO, rebuild {accounts:,} accounts)",
}


# --- the cases, each run in a child process -------------------------------------------------

def decode(files: str) -> Callable[[], Any]:
    import polars as pl

    return lambda: pl.scan_parquet(files).collect()


def eventkit_history(files: str, rules: str) -> Callable[[], Any]:
    import polars as pl

    import eventkit

    return lambda: eventkit.replay(pl.scan_parquet(files), rules).history.collect()


def eventkit_state(files: str) -> Callable[[], Any]:
    import polars as pl

    import eventkit

    return lambda: eventkit.replay(pl.scan_parquet(files), "balance").state().collect()


def duckdb_window(files: str) -> Callable[[], Any]:
    import duckdb

    con = duckdb.connect()
    con.execute(f"SET threads TO {os.cpu_count()}")
    credits, debits = (", ".join(f"'{t}'" for t in types) for types in (CREDITS, DEBITS))
    query = f"""
        SELECT *, SUM(CASE WHEN event_type IN ({credits}) THEN amount
                           WHEN event_type IN ({debits}) THEN -amount
                           ELSE 0 END)
                  OVER (PARTITION BY account_id ORDER BY event_time, seq)::BIGINT AS balance
        FROM read_parquet('{files}')
    """
    return lambda: con.sql(query).to_arrow_table()  # `.arrow()` is now a batch reader


def polars_sort(files: str) -> Callable[[], Any]:
    import polars as pl

    amount = pl.col("amount")
    signed = (pl.when(pl.col("event_type").is_in(CREDITS)).then(amount)
              .when(pl.col("event_type").is_in(DEBITS)).then(-amount)
              .otherwise(0))
    return lambda: (pl.scan_parquet(files).sort("account_id", "event_time", "seq")
                    .with_columns(balance=signed.cum_sum().over("account_id")).collect())


def eventsourcing_rebuild(files: str) -> tuple[Callable[[], Any], dict[str, int]]:
    """Store the first events in an in-memory (POPO) application; rebuild each account."""
    import polars as pl
    from eventsourcing.application import Application
    from eventsourcing.domain import Aggregate, event

    class Account(Aggregate):
        @event("Opened")
        def __init__(self, number: int) -> None:
            self.number = number
            self.balance = 0

        @event("Deposited")
        def deposit(self, amount: int) -> None:
            self.balance += amount

        @event("Withdrawn")
        def withdraw(self, amount: int) -> None:
            self.balance -= amount

    rows = (pl.scan_parquet(files).filter(pl.col("seq") < EVENTSOURCING_EVENTS)
            .filter(pl.col("event_type").is_in(("AccountOpened", *CREDITS, *DEBITS)))
            .select("account_id", "event_type", "amount").collect())
    accounts: dict[int, Account] = {}
    for number, kind, amount in rows.iter_rows():
        account = accounts.get(number)
        if account is None:
            account = accounts[number] = Account(number)
        if kind in CREDITS:
            account.deposit(amount)
        elif kind in DEBITS:
            account.withdraw(amount)
    app = Application()  # default persistence: plain old Python objects, in memory
    app.save(*accounts.values())
    stored = sum(a.version for a in accounts.values())  # events saved, openings included
    expected = sum(a.balance for a in accounts.values())
    ids = [a.id for a in accounts.values()]

    def rebuild() -> None:
        total = sum(app.repository.get(i).balance for i in ids)
        assert total == expected, (total, expected)

    return rebuild, {"events": stored, "accounts": len(ids)}


BUILDERS: dict[str, Callable[[str], Callable[[], Any]]] = {
    "decode": decode,
    "sum-history": lambda files: eventkit_history(files, "balance"),
    "sum-state": eventkit_state,
    "banking": lambda files: eventkit_history(files, "banking"),
    "duckdb": duckdb_window,
    "polars-sort": polars_sort,
}


def run_case(case: str, files: str, repeat: int) -> None:
    """Measure one case in this (fresh) process and print its JSON report."""
    extra: dict[str, int] = {}
    if case == "eventsourcing":
        work, extra = eventsourcing_rebuild(files)
    else:
        work = BUILDERS[case](files)
    extra["setup_rss"] = peak_rss()  # imports and set-up, before the first call
    report(time_work(work, repeat), **extra)


# --- the driver -----------------------------------------------------------------------------

def archive(events: int, accounts: int) -> Path:
    """The benchmark archive's folder: reused when complete, else (re)generated."""
    import polars as pl

    from eventkit.banking.generate import generate

    path = OUT / f"replay-{events}-{accounts}"
    if any(path.glob("*.parquet")):
        try:
            rows = pl.scan_parquet(path / "*.parquet").select(pl.len()).collect().item()
        except pl.exceptions.PolarsError:
            rows = -1
        if rows == events:
            return path
    shutil.rmtree(path, ignore_errors=True)
    print(f"generating {events:,} events, {accounts:,} accounts into {path} ...",
          file=sys.stderr, flush=True)
    generate(path, events=events, accounts=accounts, seed=SEED, format="parquet")
    return path


def measure(case: str, files: str, repeat: int, events: int) -> dict[str, Any]:
    print(f"running {case} ...", file=sys.stderr, flush=True)
    result = run_child([sys.executable, __file__, "--run", case, "--files", files,
                        "--repeat", str(repeat)])
    result.setdefault("events", events)
    return result


def ratio(result: dict[str, Any], base: dict[str, Any] | None) -> str:
    """Seconds over the base case's, for runs over the same archive only."""
    if base is None or result["events"] != base["events"]:
        return "–"
    return f"{result['median'] / base['median']:.2f}"


def table(results: dict[str, dict[str, Any]]) -> list[str]:
    header = ("case", "events", "seconds (median)", "events/s", "ratio vs decode",
              "ratio vs DuckDB", "peak RSS MiB", "of which set-up MiB")
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(
        ["---"] + ["---:"] * (len(header) - 1)) + "|"]
    for case, r in results.items():
        cells = (CASES[case].format_map(r), f"{r['events']:,}", f"{r['median']:.3f}",
                 f"{r['events'] / r['median']:,.0f}", ratio(r, results.get("decode")),
                 ratio(r, results.get("duckdb")), f"{r['rss'] / 2**20:,.0f}",
                 f"{r['setup_rss'] / 2**20:,.0f}")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def targets(results: dict[str, dict[str, Any]]) -> list[str]:
    """The issue's targets that the measured cases allow to check, each met or not."""
    def over(case: str, base: str) -> float | None:
        if case in results and base in results:
            return results[case]["median"] / results[base]["median"]
        return None

    def speed(case: str) -> float:
        return results[case]["events"] / results[case]["median"]

    checks = [
        ("eventkit sum rules, full history ≤ 2× decode", over("sum-history", "decode"), 2.0,
         True),
        ("eventkit sum rules, full history ≤ 0.25× DuckDB", over("sum-history", "duckdb"), 0.25,
         True),
        ("eventkit banking ≤ 0.4× DuckDB", over("banking", "duckdb"), 0.4, True),
    ]
    ours = [case for case in ("sum-history", "sum-state", "banking") if case in results]
    if ours and "eventsourcing" in results:
        slowest = min(ours, key=speed)
        checks.append((f"eventkit ≥ 100× eventsourcing per event (slowest eventkit case: "
                       f"{CASES[slowest]})", speed(slowest) / speed("eventsourcing"), 100.0,
                       False))
    lines = []
    for label, value, limit, at_most in checks:
        if value is None:
            continue
        met = value <= limit if at_most else value >= limit
        lines.append(f"- {label}: measured {value:.2f}× — {'met' if met else 'NOT met'}")
    return lines


def method_lines(repeat: int) -> list[str]:
    return [
        "- each case runs in a fresh process: one untimed warm-up call first (so numba "
        "compilation, cached on disk, is excluded), then the median of "
        f"{repeat} timed call(s) around the work only (no interpreter start-up, no imports)",
        "- peak RSS: the process's own high-water mark (`VmHWM`); set-up: the same after "
        "imports and set-up, before the first call",
        f"- eventsourcing: the first {EVENTSOURCING_EVENTS:,} log events (openings and money "
        "events) saved to an in-memory (POPO) application; timed: getting every account "
        "from its repository",
    ]


def main() -> None:
    parser = case_parser(__doc__, CASES)
    parser.add_argument("--files", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        run_case(args.run, args.files, args.repeat)
        return

    header = machine_lines(PACKAGES)  # before the runs, so the load average is others' only
    files = str(archive(args.events, args.accounts) / "*.parquet")
    results = {case: measure(case, files, args.repeat, args.events) for case in args.cases}
    print(f"## Replay benchmark: {args.events:,} events, {args.accounts:,} accounts\n")
    print("\n".join([*header, *method_lines(args.repeat)]), end="\n\n")
    print("\n".join(table(results)))
    print("\nTargets:\n")
    print("\n".join(targets(results)))


if __name__ == "__main__":
    main()
