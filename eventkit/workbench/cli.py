"""The ``eventkit`` command line.

generate, verify, replay, as-of, restatements, snapshot, compact, expire, info, ingest,
produce, report, lab, app, compile.

Every subcommand has ``--help``. Errors print one clear line and exit 2;
``verify`` exits 1 when the archive fails its checks.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import polars as pl

from eventkit.exceptions import EventkitError, UsageError, is_foreign
from eventkit.replay.progress import show_progress
from eventkit.workbench.cli_values import key_values, mapping_option, seconds, whole

if TYPE_CHECKING:
    from eventkit.archive.table import EventArchive
    from eventkit.replay.protocol import Replayed
    from eventkit.replay.result import ReplayResult
    from eventkit.rules.model import RuleSet

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    # long steps show a text bar on a terminal (after a delay), never in a pipe or a log
    with show_progress(sys.stderr.isatty() and not getattr(args, "no_progress", False)):
        try:
            return int(args.run(args))
        except EventkitError as exc:
            print(f"eventkit: error: {' '.join(str(exc).split())}", file=sys.stderr)  # one line
            return 2
        except Exception as exc:  # an error of the OS or a library that no operation wrapped
            if not is_foreign(exc):
                raise
            print(f"eventkit: error: {type(exc).__name__}: {exc}", file=sys.stderr)
            return 2


class _Parser(argparse.ArgumentParser):
    """Options that cannot be used are one line on stderr and exit status 2, as other errors."""

    def error(self, message: str) -> NoReturn:
        command = self.prog.removeprefix("eventkit").strip()
        where = f"{command}: " if command else ""
        self.exit(2, f"eventkit: error: {where}{' '.join(message.split())} "
                     f"(see {self.prog} --help)\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="eventkit",
        description="Event-sourcing analytics workbench: archives, replay, temporal queries.",
    )
    sub = parser.add_subparsers(required=True, metavar="COMMAND")

    p = sub.add_parser("generate", help="write a deterministic synthetic bank archive",
                       description="Write a seeded synthetic bank event archive "
                                   "(accounts, deposits, withdrawals, fees, transfers, "
                                   "rate changes, late corrections), chunk by chunk.")
    p.add_argument("path", help="folder to create")
    p.add_argument("--events", type=whole(0), default=100_000,
                   help="number of events (default 100000)")
    p.add_argument("--accounts", type=whole(1), default=1_000,
                   help="number of accounts (default 1000)")
    p.add_argument("--seed", type=whole(0), default=0, help="random seed (default 0)")
    p.add_argument("--format", choices=("delta", "parquet"), default="delta",
                   help="eventkit archive (delta, default) or plain Parquet files")
    p.add_argument("--chunk-events", type=whole(1), default=1_000_000,
                   help="events per chunk written (bounds memory; default 1000000)")
    p.add_argument("--buckets", type=whole(1), metavar="B",
                   help="bucketed archive: B buckets of accounts, one file per bucket and "
                        "append, for replays one bucket at a time (default: not bucketed)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--inject-patterns", action="store_true",
                   help="add labelled instances of the built-in patterns (labels in "
                        "PATH/_eventkit/labels.parquet)")
    p.set_defaults(run=_generate)

    p = sub.add_parser("verify", help="check an archive's hash chain and files",
                       description="Recompute the SHA-256 of every data file and the hash "
                                   "chain of every commit; name anything changed, removed "
                                   "or added behind the archive's back. Exit 1 on failure.")
    p.add_argument("path", help="archive folder or URL (s3://bucket/prefix, gs://, az://)")
    p.add_argument("--expect", metavar="HEAD", help="head digest saved earlier; catches a "
                   "chain rewritten from the start")
    p.add_argument("--since", metavar="HEAD", help="a head digest verified before: check "
                   "only what was appended after it (time proportional to that)")
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

    p = sub.add_parser("snapshot", help="store state at period ends for fast temporal queries",
                       description="Replay an eventkit archive once and store each account's "
                                   "state at the end of every period (and the events sorted "
                                   "by account), keyed by the rule set and the archive state; "
                                   "as-of and replay then read only what they need.")
    p.add_argument("path", help="eventkit archive folder")
    p.add_argument("--rules", default="balance", metavar="RULES",
                   help="rule set: a built-in name or a .toml rules file (default balance)")
    p.add_argument("--every", default="1mo", metavar="PERIOD",
                   help="checkpoint period: 1mo, 1q, 7d, 1y, ... (default 1mo)")
    p.add_argument("--no-key-copy", action="store_true",
                   help="do not store the events sorted by account")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(run=_snapshot)

    p = sub.add_parser("compact", help="merge small data files (audited, changes no answer)",
                       description="Merge runs of small data files of an archive into larger "
                                   "zstd files in one audited commit that verify accepts; "
                                   "every answer stays the same.")
    p.add_argument("path", help="archive folder")
    p.add_argument("--target-rows", type=whole(1), default=1_000_000,
                   help="rows per merged file at most (default 1000000)")
    p.add_argument("--keep-old", action="store_true", help="leave the replaced files on disk")
    p.set_defaults(run=_compact)

    p = sub.add_parser("info", help="storage report: events, files, bytes, compression",
                       description="Events, data files, bytes, compression ratio, "
                                   "per-partition sizes, audited rewrites and snapshot sizes "
                                   "of an archive or a folder of Parquet files.")
    p.add_argument("path", help="archive or Parquet folder")
    p.add_argument("--snapshots", metavar="DIR", help="snapshot folder to total (default: "
                   "the archive's _eventkit/snapshots)")
    p.set_defaults(run=_info)

    p = sub.add_parser("expire", help="replace events before a cut-off by opening states",
                       description="Retention: replace the events dated before WHEN "
                                   "with each account's opening state (an opening event for "
                                   "'balance', stored whole states for other rules; every "
                                   "state after the cut-off unchanged, checked by replaying "
                                   "first), in one "
                                   "audited commit recording who, when and why. Questions "
                                   "before the cut-off then raise an 'expired' error.")
    p.add_argument("path", help="archive folder")
    p.add_argument("--before", metavar="WHEN", required=True,
                   help="the cut-off: ISO 8601 instant with a zone, or a date (its start: "
                        "events dated before that day are expired)")
    p.add_argument("--by", required=True, help="who asks (recorded)")
    p.add_argument("--reason", required=True, help="why (recorded)")
    p.add_argument("--rules", default="balance", help="rule set the opening states must "
                   "reproduce (default balance)")
    p.add_argument("--confirm", action="store_true", help="required: events are removed")
    p.set_defaults(run=_expire)

    p = sub.add_parser("lab", help="open JupyterLab on the notebooks (loopback, token)",
                       description="Serve the notebooks in JupyterLab bound to one address "
                                   "(127.0.0.1 by default) with a token, and print the URL "
                                   "once the server answers. The token is $JUPYTER_TOKEN when "
                                   "set, else random; it reaches JupyterLab in its "
                                   "environment, never on a command line.")
    p.add_argument("--notebooks", default="notebooks", help="folder to serve")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=whole(1, 65_535), default=8888, help="port (default 8888)")
    p.set_defaults(run=_lab)

    p = sub.add_parser("app", help="serve the account explorer as a page (Voila; loopback, "
                       "token)",
                       description="Serve the replay explorer on ARCHIVE as a standalone page "
                                   "for people who do not code (no code, no notebook), bound "
                                   "to one address (127.0.0.1 by default) with a token "
                                   "($JUPYTER_TOKEN when set, else random; written to a "
                                   "config file only you can read, mode 0600, never on a "
                                   "command line); prints the URL.")
    p.add_argument("archive", nargs="?", default="data/sample",
                   help="archive to explore (default data/sample)")
    p.add_argument("--account", type=int, help="account shown first")
    p.add_argument("--as-of", help="instant shown first (a date: the end of that UTC day)")
    p.add_argument("--rules", default="banking", help="rule set (default banking)")
    p.add_argument("--currency", default="USD", help="ISO 4217 code of the amounts (USD)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8866, help="port (default 8866)")
    p.set_defaults(run=_app)

    p = sub.add_parser("ingest", help="consume a Kafka/Redpanda topic into an archive, "
                       "exactly once",
                       description="Consume JSON events from every partition of TOPIC into "
                                   "the archive, in batches; each commit stores the partition "
                                   "offsets, so a run resumes where the last commit ended. "
                                   "Bad messages go to a dead-letter JSON Lines file.")
    p.add_argument("--bootstrap", required=True, metavar="HOST:PORT", help="broker address")
    p.add_argument("--topic", required=True, help="topic to read")
    p.add_argument("--archive", required=True, metavar="PATH",
                   help="eventkit archive (created when missing)")
    p.add_argument("--mapping", metavar="JSON", help="column mapping of the JSON fields, as "
                   "JSON text or a .json file (see eventkit.ColumnMapping)")
    p.add_argument("--dead-letter", metavar="FILE", help="dead-letter file (default "
                   "PATH.dead-letter.jsonl)")
    p.add_argument("--batch-size", type=whole(1), default=100_000, help="messages per commit "
                   "at most (default 100000)")
    p.add_argument("--max-wait", type=seconds, default=1.0, metavar="S",
                   help="commit a batch at most this long after its first message (default 1)")
    p.add_argument("--idle-timeout", type=seconds, metavar="S",
                   help="stop after this long without a message (default: run until stopped)")
    p.add_argument("--broker-timeout", type=seconds, default=30.0, metavar="S",
                   help="end with an error when the broker stays unreachable, or the topic "
                        "or a partition missing, this long (default 30)")
    p.add_argument("--before-latest", choices=("raise", "clamp"), default="raise",
                   help="when the clock reads before the archive's latest recorded_at: fail "
                        "(raise, default) or record the latest (clamp)")
    p.set_defaults(run=_ingest)

    p = sub.add_parser("produce", help="send an archive's events to a topic (key: stream)",
                       description="Send the events at PATH to TOPIC as JSON messages keyed "
                                   "by their stream: an eventkit archive's key, else account "
                                   "id (one stream's events keep their order).")
    p.add_argument("path", help="events: an archive, Parquet file, folder, glob or Delta table")
    p.add_argument("--bootstrap", required=True, metavar="HOST:PORT", help="broker address")
    p.add_argument("--topic", required=True, help="topic to write")
    p.add_argument("--partitions", type=whole(1), metavar="N",
                   help="create the topic with N partitions when it does not exist")
    p.add_argument("--mapping", metavar="JSON", help="column mapping for foreign data")
    p.set_defaults(run=_produce)

    p = sub.add_parser("report", help="run every notebook with papermill into HTML reports",
                       description="Execute every notebook with papermill, once per run listed "
                                   "in the runs file (unlisted notebooks once with their "
                                   "defaults), into OUT as .ipynb and .html. Fails naming "
                                   "each failed notebook, cell and error.")
    p.add_argument("--config", default="reports.yaml", help="YAML runs file "
                   "(default reports.yaml; see eventkit.workbench.reports)")
    p.add_argument("--notebooks", default="notebooks", help="notebook folder (default notebooks)")
    p.add_argument("--out", default="reports", help="output folder (default reports)")
    p.add_argument("--only", metavar="NAMES", help="comma-separated run names to execute")
    p.add_argument("--kernel", default="eventkit", help="Jupyter kernel (default eventkit)")
    p.add_argument("--timeout", type=whole(1), default=600,
                   help="seconds per cell (default 600)")
    p.add_argument("--workers", type=whole(1), help="runs at once (default: one per core)")
    p.add_argument("--with-code", action="store_true",
                   help="show the code cells in the HTML (default: hidden)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(run=_report)

    p = sub.add_parser("compile", help="compile the replay kernels into numba's cache (once)",
                       description="Compile the replay engine's kernels for every argument "
                                   "type a replay passes, into numba's on-disk cache, so the "
                                   "first replay starts at once (make setup runs this).")
    p.set_defaults(run=_compile)
    return parser


_WHEN = "ISO 8601 instant with a zone, or a date (the end of that UTC day)"


def _source_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", help="events: an archive, Parquet file, folder, glob or Delta table")
    p.add_argument("--accounts", "--keys", metavar="IDS", dest="accounts",
                   help="comma-separated keys of the rule set: account ids, text ids such as "
                        "C1231006815 or UUIDs; a composite key's parts joined by ':' (acme:7)")
    p.add_argument("--mapping", metavar="JSON", help="column mapping for foreign data, as "
                   "JSON text or a .json file (see eventkit.ColumnMapping)")
    p.add_argument("--rules", default="balance", metavar="RULES",
                   help="rule set: a built-in name (balance, banking) or a .toml rules file "
                        "(default balance)")
    p.add_argument("--format", choices=("table", "csv"), default="table", dest="fmt",
                   help="output format (default table)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _snapshot(args: argparse.Namespace) -> int:
    from eventkit.replay.api import snapshot

    snaps = snapshot(args.path, args.rules, every=args.every, key_copy=not args.no_key_copy)
    first, last = snaps.instants[:1], snaps.instants[-1:]
    span = f"{first[0]:%Y-%m-%d} .. {last[0]:%Y-%m-%d}" if first else "no events"
    print(f"{len(snaps.checkpoints)} checkpoints ({span}) for rules {snaps.fingerprint[:12]} "
          f"at archive version {snaps.version}: {snaps.folder.root}")
    return 0


def _compile(_args: argparse.Namespace) -> int:
    import time

    from eventkit.replay import kernels
    from eventkit.replay.warm import compile_kernels

    began = time.perf_counter()
    compiled = compile_kernels()
    print(f"{len(compiled)} replay kernels ready ({sum(compiled.values())} signatures compiled, "
          f"{time.perf_counter() - began:.1f} s) in {kernels.fold_terms.stats.cache_path}")
    return 0


def _generate(args: argparse.Namespace) -> int:
    from eventkit.banking.generate import generate

    summary = generate(args.path, events=args.events, accounts=args.accounts, seed=args.seed,
                       format=args.format, chunk_events=args.chunk_events,
                       progress=not args.no_progress, buckets=args.buckets,
                       patterns=args.inject_patterns)
    print(f"wrote {summary.events:,} events for {summary.accounts:,} accounts to "
          f"{summary.path} ({summary.bytes:,} bytes, {summary.seconds:.1f} s)")
    if summary.labels is not None:
        print(f"pattern labels: {summary.labels}")
    return 0


def _verify(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from eventkit.archive import head
    from eventkit.archive.ledger import LOG_DIR
    from eventkit.archive.store import open_store
    from eventkit.archive.verify import verify_log
    from eventkit.exceptions import ArchiveError

    store = open_store(args.path)
    if not store.is_folder(LOG_DIR):
        msg = f"{store.root} is not an eventkit archive (no {LOG_DIR}/ folder)"
        raise ArchiveError(msg, path=store.root)
    try:
        live = head.log_state(store).live
    except ArchiveError:  # a damaged log: verify says where; the bar counts without a total
        live = []
    # (after --since only the newer files are hashed: the bar then counts without a total)
    total = None if args.since else sum(int(e.get("bytes", 0)) for e in live) or None
    with tqdm(total=total, unit="B", unit_scale=True, desc="verify",
              disable=args.no_progress) as bar:
        report = verify_log(store, expect=args.expect, since=args.since, on_bytes=bar.update)
    print(report)
    return 0 if report.ok else 1


def _replay(args: argparse.Namespace) -> int:
    result = _result(args)
    return _show(args, result, result.as_of(args.as_of) if args.as_of else result.state())


def _as_of(args: argparse.Namespace) -> int:
    result = _result(args, known_at=args.known_at)
    return _show(args, result, result.as_of(args.when))


def _restatements(args: argparse.Namespace) -> int:
    from eventkit.questions.temporal import restatements
    from eventkit.rules.registry import resolve

    rules = resolve(args.rules)
    table = restatements(_source(args), rules, known_at=args.known_at,
                         now_known_at=args.now_known_at)
    money = [f"{f.name}_{part}" for f in rules.fields if f.money
             for part in ("then", "now", "delta")]
    return _print(args, _filtered(args, table, rules), money + _money_columns(args, table))


def _money_columns(args: argparse.Namespace, table: pl.LazyFrame) -> list[str]:
    """The event columns of ``table`` that hold money (an archive's declared ones, else amount)."""
    from eventkit.archive.open import archive_of

    archive = archive_of(args.path)
    money = archive.declared.money if archive is not None else ("amount",)
    return [c for c in money if c in table.collect_schema()]


def _events(args: argparse.Namespace) -> pl.LazyFrame:
    from eventkit.archive.open import open_archive

    return open_archive(args.path, mapping=mapping_option(args.mapping) if args.mapping else None)


def _source(args: argparse.Namespace) -> EventArchive | pl.LazyFrame:
    """What to replay: the archive itself when PATH is one, else the events read from PATH.

    An archive's snapshots, key copies and expiry (questions before its cut-off
    refused, replays continued from its opening states) belong to the archive,
    not to the frame of its events.
    """
    from eventkit.archive.open import archive_of

    archive = None if args.mapping else archive_of(args.path)
    return archive if archive is not None else _events(args)


def _result(args: argparse.Namespace, known_at: str | None = None) -> ReplayResult:
    from eventkit.replay.api import replay
    from eventkit.rules.registry import resolve

    rules = resolve(args.rules)
    source = _source(args)
    keys = None
    if args.accounts:
        schema = source.collect_schema() if isinstance(source, pl.LazyFrame) else source.schema
        keys = key_values(args.accounts, rules, pl.Schema(schema))
    return replay(source, rules, known_at=known_at, keys=keys)


def _filtered(args: argparse.Namespace, table: pl.LazyFrame, rules: RuleSet) -> pl.LazyFrame:
    if not args.accounts:
        return table
    from eventkit.rules.streams import key_frame

    schema = table.collect_schema()
    wanted = key_frame(rules, key_values(args.accounts, rules, schema), schema)
    return table.join(wanted.lazy(), on=list(rules.key_columns), how="semi")


def _show(args: argparse.Namespace, result: Replayed, state: pl.LazyFrame) -> int:
    money = [f.name for f in result.rules.fields if f.money]
    return _print(args, state, money)


def _print(args: argparse.Namespace, table: pl.LazyFrame, money: list[str]) -> int:
    from eventkit.archive.open import minor_digits_of

    digits = minor_digits_of(args.path, mapping_option(args.mapping) if args.mapping else None)
    frame = table.with_columns(_currency(name, digits) for name in money).collect()
    if args.fmt == "csv":
        sys.stdout.write(frame.write_csv())
    else:
        with pl.Config(tbl_rows=-1, tbl_cols=-1, tbl_width_chars=250, fmt_str_lengths=_TEXT,
                       tbl_hide_dataframe_shape=True, tbl_hide_column_data_types=True):
            print(frame)
    return 0


#: Characters of a text cell the table shows (Polars' default cuts a UUID short, after 32;
#: a longer cell wraps): ids are shown whole.
_TEXT = 100_000


def _currency(name: str, digits: int) -> pl.Expr:
    """Minor units as exact currency text: -1 -> "-0.01", 12095 -> "120.95" (2 digits)."""
    magnitude = pl.col(name).cast(pl.Int128).abs()  # |Int64 min| fits
    whole = (magnitude // 10**digits).cast(pl.String)
    return pl.concat_str(
        pl.when(pl.col(name) < 0).then(pl.lit("-")).otherwise(pl.lit("")),
        whole,
        pl.lit("." if digits else ""),
        (magnitude % 10**digits).cast(pl.String).str.zfill(digits) if digits else pl.lit(""),
    ).alias(name)


def _compact(args: argparse.Namespace) -> int:
    from eventkit.archive.compaction import compact

    r = compact(args.path, target_rows=args.target_rows, keep_old=args.keep_old)
    if r.version is None:
        print(f"nothing to merge: {r.files_before} data files")
    else:
        print(f"compacted at version {r.version}: {r.files_before} -> {r.files_after} data "
              f"files, {r.bytes_before:,} -> {r.bytes_after:,} bytes; head {r.head}")
    return 0


def _info(args: argparse.Namespace) -> int:
    from eventkit.archive.storage import info

    print(info(args.path, snapshots=args.snapshots))
    return 0


def _expire(args: argparse.Namespace) -> int:
    from eventkit.replay.expire import expire

    r = expire(args.path, before=args.before, by=args.by, reason=args.reason,
               confirm=args.confirm, rules=args.rules)
    print(f"expired at version {r.version}: {r.replaced_rows:,} events before {r.cutoff} "
          f"replaced by {r.opening_rows:,} opening states; head {r.head}")
    return 0


def _lab(args: argparse.Namespace) -> int:
    import signal

    from eventkit.workbench.lab import start_lab

    server = start_lab(args.notebooks, host=args.host, port=args.port)
    print(f"JupyterLab: {server.url}", flush=True)

    def stop(_signum: int, _frame: object) -> None:
        server.process.terminate()  # JupyterLab shuts its kernels down on SIGTERM

    signal.signal(signal.SIGTERM, stop)
    while True:
        try:
            return server.process.wait()
        except KeyboardInterrupt:  # Ctrl-C reached JupyterLab too: it asks, then stops
            continue


def _app(args: argparse.Namespace) -> int:
    import tempfile

    from eventkit.workbench.app import app_command, app_environment, app_notebook

    if not Path(args.archive).exists():
        msg = f"no archive at {args.archive} (make sample builds data/sample)"
        raise UsageError(msg, param="archive")
    book = app_notebook(tempfile.mkdtemp(prefix="eventkit-app-"), args.archive,
                        account=args.account, as_of=args.as_of, rules=args.rules,
                        currency=args.currency)
    argv = app_command(book, host=args.host, port=args.port)
    env, token = app_environment(book)
    print(f"eventkit app: http://{args.host}:{args.port}/?token={token}", flush=True)
    os.execve(argv[0], argv, env)
    return 0  # not reached: exec replaced this process


def _ingest(args: argparse.Namespace) -> int:
    import signal

    from eventkit.streams.kafka import ingest

    def stop(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    progress = {"shown": 0.0}

    def report(summary: object) -> None:
        import time

        if time.monotonic() - progress["shown"] >= 5:
            progress["shown"] = time.monotonic()
            print(summary, file=sys.stderr, flush=True)

    try:
        summary = ingest(args.archive, args.bootstrap, args.topic,
                         mapping=mapping_option(args.mapping) if args.mapping else None,
                         dead_letter=args.dead_letter, batch_size=args.batch_size,
                         max_wait=args.max_wait, idle_timeout=args.idle_timeout,
                         on_batch=report, broker_timeout=args.broker_timeout,
                         before_latest=args.before_latest)
    except KeyboardInterrupt:
        print("stopped: events up to the last commit are stored", file=sys.stderr)
        return 0
    print(f"ingested {summary.events:,} events in {summary.batches:,} commits, "
          f"{summary.dead_letters:,} dead letters; next offsets {summary.offsets}")
    return 0


def _produce(args: argparse.Namespace) -> int:
    from eventkit.archive.open import archive_of
    from eventkit.streams.kafka import produce

    archive = None if args.mapping else archive_of(args.path)
    key = "account_id" if archive is None else archive.key  # (an archive's own key)
    sent = produce(_events(args), args.bootstrap, args.topic, key=key,
                   partitions=args.partitions)
    print(f"produced {sent:,} events to {args.topic}")
    return 0


def _report(args: argparse.Namespace) -> int:
    from eventkit.workbench.reports import load_runs, run_reports

    runs = load_runs(args.config, args.notebooks)
    if args.only:
        wanted = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = sorted(set(wanted) - {r.name for r in runs})
        if unknown:
            msg = f"no run named {', '.join(unknown)}; runs: {[r.name for r in runs]}"
            raise UsageError(msg, param="--only")
        runs = [r for r in runs if r.name in wanted]
    run_reports(runs, args.out, kernel=args.kernel, timeout=args.timeout,
                with_code=args.with_code, workers=args.workers,
                on_done=lambda run, page, s: print(f"{run.name}: {page} ({s:.1f} s)", flush=True))
    return 0
