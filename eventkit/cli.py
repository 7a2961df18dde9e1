"""The ``eventkit`` command line: generate, verify, replay, as-of, restatements, lab, report.

Every subcommand has ``--help``. Errors print one clear line and exit 2;
``verify`` exits 1 when the archive fails its checks.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from eventkit.exceptions import EventkitError

if TYPE_CHECKING:
    from eventkit.replay import ReplayResult

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args))
    except EventkitError as exc:
        print(f"eventkit: error: {exc}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="eventkit",
        description="Event-sourcing analytics workbench: archives, replay, temporal queries.",
    )
    sub = parser.add_subparsers(required=True, metavar="COMMAND")

    p = sub.add_parser("generate", help="write a deterministic synthetic bank archive",
                       description="Write a seeded synthetic bank event archive "
                                   "(accounts, deposits, withdrawals, fees, transfers, "
                                   "rate changes, late corrections), chunk by chunk.")
    p.add_argument("path", help="folder to create")
    p.add_argument("--events", type=int, default=100_000, help="number of events (default 100000)")
    p.add_argument("--accounts", type=int, default=1_000, help="number of accounts (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--format", choices=("delta", "parquet"), default="delta",
                   help="eventkit archive (delta, default) or plain Parquet files")
    p.add_argument("--chunk-events", type=int, default=1_000_000,
                   help="events per chunk written (bounds memory; default 1000000)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(run=_generate)

    p = sub.add_parser("verify", help="check an archive's hash chain and files",
                       description="Recompute the SHA-256 of every data file and the hash "
                                   "chain of every commit; name anything changed, removed "
                                   "or added behind the archive's back. Exit 1 on failure.")
    p.add_argument("path", help="archive folder")
    p.add_argument("--expect", metavar="HEAD", help="head digest saved earlier; catches a "
                   "chain rewritten from the start")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(run=_verify)

    p = sub.add_parser("replay", help="replay events and print each account's state",
                       description="Replay the events at PATH (archive, Parquet file, "
                                   "folder, glob or Delta table) through a rule set and print "
                                   "each account's state; money in currency units.")
    p.add_argument("--as-of", metavar="WHEN", help=f"state at this instant: {_WHEN}; "
                   "default: after the last event")
    _source_options(p)
    p.set_defaults(run=_replay)

    p = sub.add_parser("as-of", help="state of every account at an instant, as known then",
                       description="State per account at WHEN (events with event_time <= "
                                   "WHEN), optionally as the archive knew it at --known-at "
                                   "(events recorded later are ignored).")
    _source_options(p)
    p.add_argument("when", metavar="WHEN", help=_WHEN)
    p.add_argument("--known-at", metavar="WHEN", help="answer with only the events recorded "
                   f"by then: {_WHEN}")
    p.set_defaults(run=_as_of)

    p = sub.add_parser("restatements", help="what late events changed in reported history",
                       description="Events recorded after --known-at (and by --now-known-at) "
                                   "but dated before it restate history: per such event, the "
                                   "account's state at its time as known then and now.")
    p.add_argument("--known-at", metavar="WHEN", required=True, help=f"then: {_WHEN}")
    p.add_argument("--now-known-at", metavar="WHEN", required=True, help=f"now: {_WHEN}")
    _source_options(p)
    p.set_defaults(run=_restatements)

    p = sub.add_parser("lab", help="open JupyterLab on the notebooks (loopback, token)",
                       description="Serve the notebooks in JupyterLab bound to one address "
                                   "(127.0.0.1 by default) with a token; prints the URL.")
    p.add_argument("--notebooks", default="notebooks", help="folder to serve")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8888, help="port (default 8888)")
    p.add_argument("--token", help="access token (default: random)")
    p.set_defaults(run=_lab)

    p = sub.add_parser("report", help="run every notebook with papermill into HTML reports",
                       description="Execute every notebook with papermill, once per run listed "
                                   "in the runs file (unlisted notebooks once with their "
                                   "defaults), into OUT as .ipynb and .html. Fails naming "
                                   "each failed notebook, cell and error.")
    p.add_argument("--config", default="reports.yaml", help="YAML runs file "
                   "(default reports.yaml; see eventkit.reports)")
    p.add_argument("--notebooks", default="notebooks", help="notebook folder (default notebooks)")
    p.add_argument("--out", default="reports", help="output folder (default reports)")
    p.add_argument("--only", metavar="NAMES", help="comma-separated run names to execute")
    p.add_argument("--kernel", default="eventkit", help="Jupyter kernel (default eventkit)")
    p.add_argument("--timeout", type=int, default=600, help="seconds per cell (default 600)")
    p.set_defaults(run=_report)
    return parser


_WHEN = "ISO 8601 instant with a zone, or a date (the end of that UTC day)"


def _source_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", help="events: an archive, Parquet file, folder, glob or Delta table")
    p.add_argument("--accounts", metavar="IDS", help="comma-separated account ids")
    p.add_argument("--mapping", metavar="JSON", help="column mapping for foreign data, as "
                   "JSON text or a .json file (see eventkit.ColumnMapping)")
    p.add_argument("--rules", default="balance", metavar="RULES",
                   help="rule set: a built-in name (balance, banking) or a .toml rules file "
                        "(default balance)")
    p.add_argument("--format", choices=("table", "csv"), default="table", dest="fmt",
                   help="output format (default table)")


def _generate(args: argparse.Namespace) -> int:
    from eventkit.generate import generate

    summary = generate(args.path, events=args.events, accounts=args.accounts, seed=args.seed,
                       format=args.format, chunk_events=args.chunk_events,
                       progress=not args.no_progress)
    print(f"wrote {summary.events:,} events for {summary.accounts:,} accounts to "
          f"{summary.path} ({summary.bytes:,} bytes, {summary.seconds:.1f} s)")
    return 0


def _verify(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from eventkit.archive import ArchiveError
    from eventkit.ledger import LOG_DIR, verify_log

    root = Path(args.path)
    if not (root / LOG_DIR).is_dir():
        msg = f"{root} is not an eventkit archive (no {LOG_DIR}/ folder)"
        raise ArchiveError(msg, path=str(root))
    total = sum(f.stat().st_size for f in root.glob("*.parquet"))
    with tqdm(total=total, unit="B", unit_scale=True, desc="verify",
              disable=args.no_progress) as bar:
        report = verify_log(root, expect=args.expect, on_bytes=bar.update)
    print(report)
    return 0 if report.ok else 1


def _replay(args: argparse.Namespace) -> int:
    result = _result(args)
    return _show(args, result, result.as_of(args.as_of) if args.as_of else result.state())


def _as_of(args: argparse.Namespace) -> int:
    result = _result(args, known_at=args.known_at)
    return _show(args, result, result.as_of(args.when))


def _restatements(args: argparse.Namespace) -> int:
    from eventkit.temporal import restatements

    events = _events(args)
    table = restatements(events, args.rules, known_at=args.known_at,
                         now_known_at=args.now_known_at)
    rules = _result(args).rules
    money = [f"{f.name}_{part}" for f in rules.fields if f.money
             for part in ("then", "now", "delta")]
    return _print(args, _filtered(args, table, rules.key), money + ["amount"])


def _events(args: argparse.Namespace) -> pl.LazyFrame:
    from eventkit.sources import open_archive

    return open_archive(args.path, mapping=_mapping(args.mapping) if args.mapping else None)


def _result(args: argparse.Namespace, known_at: str | None = None) -> ReplayResult:
    from eventkit.replay import replay

    return replay(_events(args), args.rules, known_at=known_at)


def _filtered(args: argparse.Namespace, table: pl.LazyFrame, key: str) -> pl.LazyFrame:
    if not args.accounts:
        return table
    return table.filter(pl.col(key).is_in(_ids(args.accounts)))


def _show(args: argparse.Namespace, result: ReplayResult, state: pl.LazyFrame) -> int:
    money = [f.name for f in result.rules.fields if f.money]
    return _print(args, _filtered(args, state, result.rules.key), money)


def _print(args: argparse.Namespace, table: pl.LazyFrame, money: list[str]) -> int:
    frame = table.with_columns(_currency(name) for name in money).collect()
    if args.fmt == "csv":
        sys.stdout.write(frame.write_csv())
    else:
        with pl.Config(tbl_rows=-1, tbl_cols=-1, tbl_width_chars=250,
                       tbl_hide_dataframe_shape=True, tbl_hide_column_data_types=True):
            print(frame)
    return 0


class UsageError(EventkitError):
    """A command-line option has a value that cannot be used."""


def _mapping(text: str) -> dict[str, object]:
    try:
        raw = Path(text).read_text() if text.endswith(".json") else text
        mapping = json.loads(raw)
    except (OSError, json.JSONDecodeError) as exc:
        msg = f"--mapping: not a JSON object or .json file ({exc})"
        raise UsageError(msg) from None
    if not isinstance(mapping, dict):
        msg = "--mapping: expected a JSON object such as {\"account_id\": \"accountId\"}"
        raise UsageError(msg)
    return mapping


def _ids(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        msg = f"--accounts: expected comma-separated integer ids, not {text!r}"
        raise UsageError(msg) from None


def _currency(name: str) -> pl.Expr:
    """Minor units as exact currency text: -1 -> "-0.01", 12095 -> "120.95"."""
    magnitude = pl.col(name).abs()
    return pl.concat_str(
        pl.when(pl.col(name) < 0).then(pl.lit("-")).otherwise(pl.lit("")),
        (magnitude // 100).cast(pl.String),
        pl.lit("."),
        (magnitude % 100).cast(pl.String).str.zfill(2),
    ).alias(name)


def _lab(args: argparse.Namespace) -> int:
    from eventkit.lab import lab_command

    argv, token = lab_command(args.notebooks, host=args.host, port=args.port, token=args.token)
    print(f"JupyterLab: http://{args.host}:{args.port}/lab?token={token}", flush=True)
    os.execv(argv[0], argv)
    return 0  # not reached: exec replaced this process


def _report(args: argparse.Namespace) -> int:
    from eventkit.reports import load_runs, run_reports

    runs = load_runs(args.config, args.notebooks)
    if args.only:
        wanted = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = sorted(set(wanted) - {r.name for r in runs})
        if unknown:
            msg = f"--only: no run named {', '.join(unknown)}; runs: {[r.name for r in runs]}"
            raise UsageError(msg)
        runs = [r for r in runs if r.name in wanted]
    run_reports(runs, args.out, kernel=args.kernel, timeout=args.timeout,
                on_done=lambda run, page, s: print(f"{run.name}: {page} ({s:.1f} s)", flush=True))
    return 0
