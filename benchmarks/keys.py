"""Benchmark replays keyed by text (UUID) account ids against the same replays keyed by Int64.

Usage: ``.venv/bin/python benchmarks/keys.py [--events 10000000] [--accounts 100000]
[--repeat 3] [--flat 1000000] [--rounds 1]``

The events (plain Parquet, log order) are the generator's, as in
``benchmarks/replay.py``; a second copy replaces every ``account_id`` (and
``counterparty_id``) by a UUID made from it (``uuid5`` of the number), every
other column the same. Each case runs in a fresh interpreter: one untimed
warm-up call, then ``--repeat`` timed calls (median). With ``--rounds N`` the
cases run N times in turn (Int64, UUID, Int64, UUID, ...) and each ratio is
taken round by round (a machine whose speed drifts moves both sides of a
pair alike): the median and range of those ratios. The banking rules of
the UUID run declare the bank's UUID as their global key (what ``account_id
== 0`` is for the integer run). Decoding the two copies is measured too: the
floor, what reading 36-byte text ids costs before any replay. The bucket
engine (``engine="buckets"``, state only) runs on the UUID copy appended to a
bucketed eventkit archive (16 buckets, by the stable text hash), at
``--flat`` events and at ``--events``: its peak memory should stay flat.
"""

from __future__ import annotations

import dataclasses
import statistics
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # `common` when run as a script

from common import case_parser, machine_lines, peak_rss, report, run_child, time_work

OUT = Path(__file__).resolve().parent / "out"
SEED = 1
NAMESPACE = uuid.UUID("5f7e8c2a-0d4b-4c1e-9a57-3e2b6f1d0c15")
PACKAGES = ("polars", "numba", "deltalake")
CASES = {
    "int-decode": "Int64 keys: decode (`scan_parquet().collect()`), the floor",
    "uuid-decode": "UUID keys: decode (`scan_parquet().collect()`), the floor",
    "int-history": "Int64 keys, `balance`, full history",
    "uuid-history": "UUID keys, `balance`, full history",
    "int-state": "Int64 keys, `balance`, final state",
    "uuid-state": "UUID keys, `balance`, final state",
    "int-banking": "Int64 keys, `banking`, full history",
    "uuid-banking": "UUID keys, `banking`, full history",
    "buckets-small": "UUID keys, bucket engine on a bucketed archive, state ({events:,} events)",
    "buckets-large": "UUID keys, bucket engine on a bucketed archive, state ({events:,} events)",
}
PAIRS = (("uuid-decode", "int-decode"), ("uuid-history", "int-history"),
         ("uuid-state", "int-state"), ("uuid-banking", "int-banking"))
TARGETS = PAIRS[1:]
BUCKETS = 16


def bank_uuid() -> str:
    return str(uuid.uuid5(NAMESPACE, "0"))


def rules(name: str, *, text: bool) -> Any:
    """The built-in rule set; keyed by UUIDs, its global events are the bank's UUID's."""
    from eventkit import GlobalEvents
    from eventkit import rules as registry

    ruleset = registry.get(name)
    if not text or ruleset.global_events is None:
        return ruleset
    return dataclasses.replace(ruleset, global_events=GlobalEvents(
        bank_uuid(), ruleset.global_events.event_types))


def replay_case(files: str, name: str, *, text: bool, state: bool) -> Callable[[], Any]:
    import polars as pl

    import eventkit

    ruleset = rules(name, text=text)
    if state:
        return lambda: eventkit.replay(pl.scan_parquet(files), ruleset).state().collect()
    return lambda: eventkit.replay(pl.scan_parquet(files), ruleset).history.collect()


def buckets_case(folder: str) -> Callable[[], Any]:
    import eventkit

    ruleset = rules("balance", text=True)
    return lambda: eventkit.replay(folder, ruleset, engine="buckets").state().collect()


def decode_case(files: str) -> Callable[[], Any]:
    import polars as pl

    return lambda: pl.scan_parquet(files).collect()


def run_case(case: str, files: str, repeat: int) -> None:
    if case.startswith("buckets"):
        work = buckets_case(files)
    elif case.endswith("decode"):
        work = decode_case(files)
    else:
        kind, _, what = case.partition("-")
        work = replay_case(files, "banking" if what == "banking" else "balance",
                           text=kind == "uuid", state=what == "state")
    extra = {"setup_rss": peak_rss()}
    report(time_work(work, repeat), **extra)


# --- the driver -----------------------------------------------------------------------------

def events_at(events: int, accounts: int) -> tuple[Path, Path]:
    """Parquet folders of the generator's events: Int64 ids, and the same with UUID ids."""
    import polars as pl

    from eventkit.banking.generate import generate

    folder = OUT / f"keys-{events}-{accounts}"
    ints, texts = folder / "int", folder / "uuid"
    if (texts / "events.parquet").is_file():
        return ints, texts
    print(f"generating {events:,} events, {accounts:,} accounts into {folder} ...",
          file=sys.stderr, flush=True)
    generate(ints, events=events, accounts=accounts, seed=SEED, format="parquet")
    frame = pl.scan_parquet(ints / "*.parquet")
    ids = frame.select(pl.col("account_id").unique()).collect()["account_id"]
    table = pl.DataFrame({"id": ids, "text": [str(uuid.uuid5(NAMESPACE, str(i)))
                                              for i in ids.to_list()]})
    texts.mkdir(parents=True, exist_ok=True)
    (frame.join(table.lazy(), left_on="account_id", right_on="id", how="left",
                maintain_order="left")
     .join(table.lazy().rename({"text": "cp"}), left_on="counterparty_id", right_on="id",
           how="left", maintain_order="left")
     .with_columns(account_id=pl.col("text"), counterparty_id=pl.col("cp"))
     .drop("text", "cp")
     .sink_parquet(texts / "events.parquet", row_group_size=1_000_000))
    return ints, texts


def bucketed(texts: Path) -> Path:
    """An eventkit archive of the UUID events, bucketed by account (appended 1 M at a time)."""
    import polars as pl

    from eventkit import EventArchive
    from eventkit.schema import BANKING

    folder = texts.parent / f"uuid-buckets-{BUCKETS}"
    if (folder / "_delta_log").is_dir():
        return folder
    print(f"appending the UUID events to a bucketed archive {folder} ...", file=sys.stderr,
          flush=True)
    schema = dataclasses.replace(BANKING, text_ids=False, columns={
        **BANKING.columns, "account_id": pl.String(), "counterparty_id": pl.String()})
    archive = EventArchive.create(folder, schema=schema, buckets=BUCKETS,
                                  shared_key=bank_uuid())
    events = pl.scan_parquet(texts / "*.parquet").drop("seq")
    total = events.select(pl.len()).collect().item()
    for start in range(0, total, 1_000_000):
        archive.append(events.slice(start, 1_000_000).collect(), recorded_at="keep")
    return folder


def main() -> None:
    parser = case_parser(__doc__ or "", CASES)
    parser.add_argument("--files", help="(the child's own)")
    parser.add_argument("--flat", type=int, default=1_000_000,
                        help="events of the smaller bucket-engine run (memory: flat?)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="run the cases this many times in turn (int, UUID, int, ...): "
                             "each ratio is taken round by round, the median reported")
    args = parser.parse_args()
    if args.run:
        run_case(args.run, args.files, args.repeat)
        return
    ints, texts = events_at(args.events, args.accounts)
    _, small = events_at(args.flat, args.accounts) if "buckets-small" in args.cases \
        else (None, None)
    runs: dict[str, list[dict[str, Any]]] = {case: [] for case in args.cases}
    for round_ in range(args.rounds):  # the pairs' cases side by side in each round
        for case in args.cases:
            if case.startswith("buckets"):
                files = str(bucketed(small if case == "buckets-small" else texts))
            else:
                files = str((texts if case.startswith("uuid") else ints) / "*.parquet")
            print(f"running {case} (round {round_ + 1}) ...", file=sys.stderr, flush=True)
            runs[case].append(run_child([sys.executable, __file__, "--run", case, "--files",
                                         files, "--repeat", str(args.repeat)]))
    results = {case: {"median": statistics.median(r["median"] for r in rs),
                      "rss": max(r["rss"] for r in rs),
                      "events": args.flat if case == "buckets-small" else args.events}
               for case, rs in runs.items()}
    ratios = {u: [a["median"] / b["median"] for a, b in zip(runs[u], runs[i], strict=True)]
              for u, i in PAIRS if u in runs and i in runs}
    lines = [f"## Text (UUID) keys vs Int64 keys: {args.events:,} events, "
             f"{args.accounts:,} accounts", "", *machine_lines(PACKAGES), ""]
    lines += ["| case | seconds (median) | vs the same with Int64 keys | peak RSS MiB |",
              "|---|---:|---:|---:|"]
    for case, r in results.items():
        vs = _ratio(ratios[case]) if case in ratios else "–"
        lines.append(f"| {CASES[case].format_map(r)} | {r['median']:.3f} | {vs} | "
                     f"{r['rss'] / 2**20:,.0f} |")
    lines.append("")
    for uuid_case, _ in TARGETS:
        if uuid_case in ratios:
            value = statistics.median(ratios[uuid_case])
            lines.append(f"- {CASES[uuid_case]} ≤ 1.3× Int64: measured {_ratio(ratios[uuid_case])}"
                         f"× — {'met' if value <= 1.3 else 'NOT met'}")
    if "buckets-small" in results and "buckets-large" in results:
        grow = results["buckets-large"]["rss"] / results["buckets-small"]["rss"]
        lines.append(f"- bucket engine peak memory, {args.events:,} vs {args.flat:,} events: "
                     f"{grow:.2f}× for {args.events / args.flat:.0f}× the events")
    print("\n".join(lines))


def _ratio(values: list[float]) -> str:
    """The median of round-by-round ratios, with their range when there are several."""
    middle = f"{statistics.median(values):.2f}"
    return middle if len(values) == 1 else f"{middle} ({min(values):.2f}–{max(values):.2f})"


if __name__ == "__main__":
    main()
