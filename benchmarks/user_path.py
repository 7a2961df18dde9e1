"""Benchmark the path a user runs: load and check their file, replay it, archive it, ask.

Usage: ``.venv/bin/python benchmarks/user_path.py [--events 10000000] [--accounts 100000]
[--repeat 3] [--cases ...]``

One synthetic bank (``eventkit.banking.generate``, seed 1) is stored twice under
``benchmarks/out/user-path-<events>-<accounts>/``: as a user would export it
(``user.parquet``: own column names, money as float currency units, integer
transaction ids, tz-aware times, no ``seq`` or ``recorded_at``) and as an eventkit
archive (``archive/``). Every case runs in a fresh interpreter: one untimed warm-up
call, then ``--repeat`` timed calls (median). Each ratio divides by a baseline
measured in the same run on the same files:

* a plain decode of the same file (``pl.scan_parquet(...).collect()``);
* DuckDB computing the same balance window and returning only ``count(*)`` and
  ``sum`` of it (it is not charged for materialising the history);
* Polars writing the same frame to Parquet; a plain replay for the questions.

The cold-start case copies the package (without ``__pycache__``) to a fresh folder,
runs ``eventkit compile`` there (what ``make setup`` runs) and times a fresh
interpreter's first replay (from its start), and the same replay again in that
process: the difference is what starting costs; the same for the shipped sample.
Prints a markdown table and the issue's targets.
"""

from __future__ import annotations

import argparse
import atexit
import gc
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # `common` when run as a script

from common import case_parser, machine_lines, peak_rss, report, run_child

OUT = Path(__file__).resolve().parent / "out"
ROOT = Path(__file__).resolve().parents[1]
SEED = 1
PACKAGES = ("polars", "duckdb", "numba", "deltalake")
CREDITS = ("Deposit", "TransferIn", "Correction")
DEBITS = ("Withdrawal", "Fee", "TransferOut")
#: The user's column names and units (what ``open_archive(mapping=...)`` is told).
MAPPING = {"event_id": "txn_id", "account_id": "account", "event_type": "kind",
           "event_time": "booked_at", "amount": "amount_eur", "counterparty_id": "other_account",
           "rate": "annual_rate", "amount_unit": "major"}
CASES = {
    "decode-user": "decode of the user's file (`scan_parquet().collect()`)",
    "open-user": "`open_archive(file, mapping=...).collect()`, validation on",
    "open-user-unchecked": "the same with `validate=False`",
    "user-balance": "user file → mapping + validation → `replay().history.collect()`",
    "duckdb-user": "DuckDB window on the user file (count and sum only)",
    "decode-archive": "decode of the archive's files",
    "archive-balance": "archive → `replay(path).history.collect()`, balance",
    "archive-banking": "archive → `replay(path, 'banking').history.collect()`",
    "duckdb-archive": "DuckDB window on the archive's files (count and sum only)",
    "write-parquet": "Polars `write_parquet` of the events (in memory)",
    "append": "`EventArchive.append` of the same events (checked, hashed, fsync-ed)",
    "replay-banking-frame": "replay of the events in memory, banking (for the questions)",
    "patterns": "`builtin_alerts(history)`, the four built-in patterns",
    "materialize": "`materialize` of the banking history into DuckDB",
    "cold-start": "fresh copy + `eventkit compile`; then a new process's first replay",
}


# --- the data ---------------------------------------------------------------------------------

def prepare(events: int, accounts: int) -> Path:
    """The user's file and the archive of the same events (made once, then reused)."""
    import polars as pl

    from eventkit.archive.table import EventArchive
    from eventkit.banking.generate import generate

    folder = OUT / f"user-path-{events}-{accounts}"
    done = folder / "ready"
    if done.exists():
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    print(f"generating {events:,} events, {accounts:,} accounts into {folder} ...",
          file=sys.stderr, flush=True)
    generate(folder / "canonical", events=events, accounts=accounts, seed=SEED,
             format="parquet", progress=False)
    canonical = pl.scan_parquet(folder / "canonical" / "*.parquet")
    canonical.select(
        pl.col("seq").mul(7).add(1_000_003).alias("txn_id"),
        pl.col("account_id").alias("account"),
        pl.col("event_type").alias("kind"),
        pl.col("event_time").alias("booked_at"),
        (pl.col("amount") / 100).alias("amount_eur"),
        pl.col("counterparty_id").alias("other_account"),
        pl.col("rate").alias("annual_rate"),
    ).sink_parquet(folder / "user.parquet")
    archive = EventArchive.create(folder / "archive")
    archive.append(canonical.drop("seq", "recorded_at").collect())
    shutil.rmtree(folder / "canonical")
    done.touch()
    return folder


# --- the cases, each run in a child process ---------------------------------------------------

def decode(files: str) -> Callable[[], Any]:
    import polars as pl

    return lambda: pl.scan_parquet(files).collect()


def open_user(folder: Path, *, validate: bool) -> Callable[[], Any]:
    import eventkit

    path = str(folder / "user.parquet")
    return lambda: eventkit.open_archive(path, mapping=MAPPING, validate=validate).collect()


def user_balance(folder: Path) -> Callable[[], Any]:
    import eventkit

    path = str(folder / "user.parquet")
    return lambda: eventkit.replay(eventkit.open_archive(path, mapping=MAPPING)).history.collect()


def archive_history(folder: Path, rules: str) -> Callable[[], Any]:
    import eventkit

    path = str(folder / "archive")
    return lambda: eventkit.replay(path, rules).history.collect()


def duckdb_window(source: str, *, amount: str, account: str, kind: str, time_col: str,
                  order: str) -> Callable[[], Any]:
    import duckdb

    con = duckdb.connect()
    con.execute(f"SET threads TO {os.cpu_count()}")
    credits, debits = (", ".join(f"'{t}'" for t in types) for types in (CREDITS, DEBITS))
    query = f"""
        SELECT count(*), sum(balance) FROM (
          SELECT SUM(CASE WHEN {kind} IN ({credits}) THEN {amount}
                          WHEN {kind} IN ({debits}) THEN -{amount} ELSE 0 END)
                 OVER (PARTITION BY {account} ORDER BY {time_col}, {order})::BIGINT AS balance
          FROM {source})
    """
    return lambda: con.sql(query).fetchall()


def in_memory(folder: Path) -> Any:
    from eventkit.archive.table import EventArchive

    return EventArchive(folder / "archive").scan().collect().drop("seq", "recorded_at")


def scratch_folder() -> Path:
    """A folder for a case's output, removed when its process ends."""
    folder = Path(tempfile.mkdtemp(dir=OUT))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


def write_parquet(folder: Path) -> Callable[[], Any]:
    frame = in_memory(folder)
    target = scratch_folder() / "events.parquet"

    def work() -> None:
        frame.write_parquet(target)
        with target.open("rb") as f:  # as durable as the archive's append
            os.fsync(f.fileno())
    return work


def append(folder: Path) -> Callable[[], Any]:
    from eventkit.archive.table import EventArchive

    frame = in_memory(folder)
    scratch = scratch_folder()

    def work() -> None:
        target = scratch / f"a{time.perf_counter_ns()}"
        EventArchive.create(target).append(frame)
        shutil.rmtree(target)
    return work


def banking_frame(folder: Path) -> Callable[[], Any]:
    import eventkit

    events = eventkit.open_archive(str(folder / "archive")).collect()
    return lambda: eventkit.replay(events, "banking").history.collect()


def patterns(folder: Path) -> Callable[[], Any]:
    import eventkit

    history = eventkit.replay(str(folder / "archive"), "banking").history.collect()
    return lambda: eventkit.builtin_alerts(history)


def materialize(folder: Path) -> Callable[[], Any]:
    import eventkit

    result = eventkit.replay(str(folder / "archive"), "banking")
    result.history.collect()  # folded once: the case times writing the views only
    scratch = scratch_folder()

    def work() -> None:
        target = scratch / f"v{time.perf_counter_ns()}.duckdb"
        eventkit.materialize(result, f"duckdb:///{target}")
        target.unlink()
    return work


def cold_start(folder: Path) -> tuple[Callable[[], Any], dict[str, float]]:
    """Copy the package, compile there, time a fresh interpreter's first replay (CPU, wall)."""
    archive = str(folder / "archive")
    scratch = scratch_folder()
    extra: dict[str, float] = {}

    def work() -> None:
        clone = scratch / f"c{time.perf_counter_ns()}"
        shutil.copytree(ROOT / "eventkit", clone / "eventkit",
                        ignore=shutil.ignore_patterns("__pycache__"))
        env = {**os.environ, "PYTHONPATH": str(clone)}
        began = time.perf_counter()
        subprocess.run([sys.executable, "-m", "eventkit", "compile"], cwd=clone, env=env,
                       check=True, capture_output=True)
        extra["compile_seconds"] = time.perf_counter() - began
        for name, events in (("first", archive), ("sample", str(ROOT / "data" / "sample"))):
            code = (f"import time, eventkit; eventkit.replay({events!r}, 'banking')"
                    ".history.collect(); print(time.process_time()); t = time.perf_counter(); "
                    f"eventkit.replay({events!r}, 'banking').history.collect(); "
                    "print(time.perf_counter() - t)")
            began = time.perf_counter()
            done = subprocess.run([sys.executable, "-c", code], cwd=clone, env=env,
                                  check=True, capture_output=True, text=True)
            wall = time.perf_counter() - began
            cpu, again = done.stdout.split()[-2:]
            extra[f"{name}_cpu"] = float(cpu)
            extra[f"{name}_again"] = float(again)
            extra[f"{name}_wall"] = wall - float(again)  # (the process replayed twice)
        shutil.rmtree(clone)
    return work, extra


def builders(folder: Path) -> dict[str, Callable[[], Callable[[], Any]]]:
    user = str(folder / "user.parquet")
    files = str(folder / "archive" / "*.parquet")
    return {
        "decode-user": lambda: decode(user),
        "open-user": lambda: open_user(folder, validate=True),
        "open-user-unchecked": lambda: open_user(folder, validate=False),
        "user-balance": lambda: user_balance(folder),
        "duckdb-user": lambda: duckdb_window(
            f"(SELECT *, round(amount_eur * 100)::BIGINT AS cents FROM "
            f"read_parquet('{user}', file_row_number = true))", amount="cents",
            account="account", kind="kind", time_col="booked_at", order="file_row_number"),
        "decode-archive": lambda: decode(files),
        "archive-balance": lambda: archive_history(folder, "balance"),
        "archive-banking": lambda: archive_history(folder, "banking"),
        "duckdb-archive": lambda: duckdb_window(
            f"read_parquet('{files}')", amount="amount", account="account_id",
            kind="event_type", time_col="event_time", order="seq"),
        "write-parquet": lambda: write_parquet(folder),
        "append": lambda: append(folder),
        "replay-banking-frame": lambda: banking_frame(folder),
        "patterns": lambda: patterns(folder),
        "materialize": lambda: materialize(folder),
    }


def timed(work: Callable[[], Any], repeat: int) -> tuple[list[float], list[float]]:
    """One untimed warm-up call, then ``repeat`` timed ones: wall and CPU seconds of each.

    CPU is the process's (every thread's) user + system time: on a shared machine
    it moves less with the load than wall time does.
    """
    work()
    gc.collect()
    wall, cpu = [], []
    for _ in range(repeat):
        began, used = time.perf_counter(), time.process_time()
        result = work()
        wall.append(time.perf_counter() - began)
        cpu.append(time.process_time() - used)
        del result
        gc.collect()
    return wall, cpu


def run_case(case: str, folder: Path, repeat: int) -> None:
    """Measure one case in this (fresh) process and print its JSON report."""
    extra: dict[str, Any] = {}
    if case == "cold-start":  # once: the first replay is the point
        work, extra = cold_start(folder)
        began = time.perf_counter()
        work()
        seconds = [time.perf_counter() - began]
    else:
        work = builders(folder)[case]()
        extra["setup_rss"] = peak_rss()
        seconds, extra["cpu"] = timed(work, repeat)
    report(seconds, **extra)


# --- the driver -------------------------------------------------------------------------------

def measure(case: str, folder: Path, repeat: int) -> dict[str, Any]:
    print(f"running {case} ...", file=sys.stderr, flush=True)
    result = run_child([sys.executable, __file__, "--run", case, "--folder", str(folder),
                        "--repeat", str(repeat)])
    if "cpu" in result:
        result["cpu_median"] = statistics.median(result["cpu"])
    return result


#: (case, baseline, limit, label): the issue's targets, as ratios of medians.
TARGETS = [
    ("open-user", "decode-user", 2.0, "open_archive + validation ≤ 2× decode"),
    ("user-balance", "decode-user", 2.0, "user file → balance history ≤ 2× decode"),
    ("user-balance", "duckdb-user", 0.25, "user file → balance history ≤ 0.25× DuckDB"),
    ("archive-balance", "decode-archive", 1.5, "archive → balance history ≤ 1.5× decode"),
    ("archive-balance", "duckdb-archive", 0.2, "archive → balance history ≤ 0.2× DuckDB"),
    ("archive-banking", "decode-archive", 2.5, "archive → banking history ≤ 2.5× decode"),
    ("archive-banking", "duckdb-archive", 0.35, "archive → banking history ≤ 0.35× DuckDB"),
    ("append", "write-parquet", 2.0, "append ≤ 2× Polars writing Parquet"),
    ("patterns", "replay-banking-frame", 5.0, "the four patterns ≤ 5× a replay"),
    ("materialize", "replay-banking-frame", 3.0, "materialize ≤ 3× a replay"),
]


def ratios(results: dict[str, dict[str, Any]], case: str) -> str:
    """Wall (and CPU) seconds over each baseline's, e.g. ``1.52 (1.40) decode-user``."""
    r = results[case]
    parts = []
    for base in dict.fromkeys(b for c, b, _, _ in TARGETS if c == case):
        if base in results:
            b = results[base]
            wall, cpu = r["median"] / b["median"], r["cpu_median"] / b["cpu_median"]
            parts.append(f"{wall:.2f} ({cpu:.2f}) {base}")
    return "; ".join(parts) or "–"


def table(results: dict[str, dict[str, Any]], events: int) -> list[str]:
    header = ("case", "wall s", "CPU s", "events/s", "ratio wall (CPU) vs", "peak RSS MiB")
    lines = ["| " + " | ".join(header) + " |", "|---|---:|---:|---:|---|---:|"]
    for case, r in results.items():
        if case == "cold-start":
            lines.append(f"| {CASES[case]} | {r['first_wall']:.2f} | {r['first_cpu']:.2f} | – | "
                         f"the same replay again: {r['first_again']:.2f} s wall; the shipped "
                         f"sample (50,000 events): {r['sample_wall']:.2f} s, again "
                         f"{r['sample_again']:.2f} s; compile: {r['compile_seconds']:.1f} s wall "
                         "| – |")
            continue
        lines.append(f"| {CASES[case]} | {r['median']:.3f} | {r['cpu_median']:.3f} | "
                     f"{events / r['median']:,.0f} | {ratios(results, case)} | "
                     f"{r['rss'] / 2**20:,.0f} |")
    return lines


def targets(results: dict[str, dict[str, Any]]) -> list[str]:
    lines = []
    for case, base, limit, label in TARGETS:
        if case in results and base in results:
            value = results[case]["median"] / results[base]["median"]
            cpu = results[case]["cpu_median"] / results[base]["cpu_median"]
            lines.append(f"- {label}: {value:.2f}× wall ({cpu:.2f}× CPU) — "
                         f"{'met' if value <= limit else 'NOT met'}")
    if "cold-start" in results:
        r = results["cold-start"]
        cold = r["first_wall"] - r["first_again"]
        lines.append(f"- first replay after set-up ≤ 3 s: {r['first_wall']:.2f} s wall "
                     f"({r['first_cpu']:.2f} s CPU) for 10 M events, of which start-up (the "
                     f"new process, its imports, loading the compiled kernels: the first "
                     f"replay less the same replay again) {cold:.2f} s — "
                     f"{'met' if cold <= 3 else 'NOT met'}; the shipped sample's first replay "
                     f"{r['sample_wall']:.2f} s wall — "
                     f"{'met' if r['sample_wall'] <= 3 else 'NOT met'}")
    return lines


def main() -> None:
    parser = case_parser(__doc__, CASES)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        run_case(args.run, Path(args.folder), args.repeat)
        return
    header = machine_lines(PACKAGES)  # before the runs: the load average is others' only
    folder = prepare(args.events, args.accounts)
    results = {case: measure(case, folder, args.repeat) for case in args.cases}
    print(f"## User path: {args.events:,} events, {args.accounts:,} accounts\n")
    print("\n".join(header), end="\n\n")
    print("\n".join(table(results, args.events)))
    print("\nTargets:\n")
    print("\n".join(targets(results)))


if __name__ == "__main__":
    main()
