"""Expire: replace the events dated before a cut-off with each key's opening state."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from eventkit.archive import datafiles, head, ledger
from eventkit.archive._files import clean_interrupted
from eventkit.archive.retention import expiry_of
from eventkit.archive.rewrite import TARGET_ROWS, RewriteWriter, delete_files, rewrite_record
from eventkit.archive.table import EventArchive
from eventkit.exceptions import (
    ArchiveError,
    EventkitWarning,
    ImmutabilityError,
    StorageError,
    foreign_errors,
    warn,
)
from eventkit.replay.result import ReplayResult
from eventkit.rules import registry
from eventkit.rules.streams import global_expr
from eventkit.schema import MONEY_EVENT_TYPES, TIME_DTYPE
from eventkit.timeutil import iso, micros

if TYPE_CHECKING:
    from eventkit.rules.model import RuleSet

__all__ = ["ExpireReport", "expire"]


@dataclass(frozen=True)
class ExpireReport:
    """What :func:`expire` did: its commit, the rows replaced and the opening events made."""

    version: int
    cutoff: str
    replaced_rows: int
    opening_rows: int
    files_removed: int
    head: str


@foreign_errors(ArchiveError, "expire events of {0}")
def expire(
    archive: EventArchive | str | Path,
    *,
    before: datetime | str,
    by: str,
    reason: str,
    confirm: bool = False,
    rules: str | Path | RuleSet = "balance",
) -> ExpireReport:
    """Replace the events dated before ``before`` with each key's opening state.

    The one operation that removes events from an archive, so it is refused
    unless ``confirm=True`` and it must say who (``by``) and why (``reason``).
    The bank's own events (its rate table) always stay. Two kinds of opening:

    * a rule set whose only field is ``balance``: per key, every ``Deposit``,
      ``Withdrawal``, ``Fee``, transfer leg and ``Correction`` dated before the
      cut-off is replaced by one ``Correction`` (id ``opening-<key>-<cut-off>``)
      at the time and ``seq`` of the last of them, for the amount that brings
      the balance to what it was; status and rate events stay. Any reader of
      the log sees the same balances.
    * any other rule set (``banking``: interest, fees, status, account rates):
      every event of a key dated before the cut-off is removed and each key's
      whole state just before it (every field, the number of events and the
      time of the last one) is stored in a Parquet file under
      ``_eventkit/expiry/``, named with its SHA-256 in the expiry's record.
      :func:`eventkit.replay` continues each key's fold from it.

    Before anything is written the new log is replayed: every state after the
    cut-off must equal the old one, event by event, or nothing is changed.
    Replays with other rule sets then raise :class:`~eventkit.exceptions.ExpiredError`.

    The files holding expired rows are rewritten in one commit whose record
    (in the hash chain, accepted by ``verify``) keeps the cut-off, who, when,
    why, the rule set's fingerprint and a digest of the opening events (or the
    opening-state file's hash); the old files are then deleted. Afterwards
    ``replay(...).as_of(t)`` for ``t`` before the cut-off, and ``known_at``
    before the opening states were known, raise :class:`~eventkit.exceptions.ExpiredError`.
    """
    archive = archive if isinstance(archive, EventArchive) else EventArchive(archive)
    root = archive.location
    store = archive.store
    if not confirm:
        msg = (f"expire removes events from {root} for good: pass confirm=True (and by=, "
               "reason=) to do it")
        raise ImmutabilityError(msg, path=str(root))
    if not by or not reason:
        msg = "an expiry must say who asks (by=) and why (reason=)"
        raise ImmutabilityError(msg, path=str(root))
    cutoff = micros(before, param="before", day="start")
    ruleset = registry.resolve(rules)
    by_state = [f.name for f in ruleset.fields] != ["balance"]
    with archive.writing():
        prior = expiry_of(archive, ruleset.fingerprint)
        if prior is not None and cutoff <= prior.cutoff_us:
            msg = (f"{root}: events before {iso(prior.cutoff_us)} were expired already; "
                   f"a new cut-off must be later, not {iso(cutoff)}")
            raise ArchiveError(msg, path=root)
        start = None if prior is None else prior.opening_states()
        state = head.log_state(store)
        entries = state.live
        clean_interrupted(store, state.version, entries)
        for entry in entries:
            datafiles.check_data_file(store, entry)
        last = state.record
        frames = [archive.scan_entries([e], verify=False).collect()  # checked above; upcast
                  for e in entries]
        old = pl.concat(frames) if frames else pl.DataFrame(schema=archive.schema)
        gone = (pl.col("event_time").dt.epoch("us") < cutoff) & ~global_expr(ruleset, old.schema)
        if not by_state:
            gone = gone & pl.col("event_type").is_in([*MONEY_EVENT_TYPES, "Correction"])
        hit = [i for i, f in enumerate(frames) if f.select(gone.any()).item()]
        if not hit:
            msg = f"no events to expire before {iso(cutoff)} in {root}"
            raise ArchiveError(msg, path=root)
        replaced = old.filter(gone)
        if by_state:
            states = _replayed(old, ruleset, start).as_of(iso(cutoff - 1)).collect()
            opening = old.clear()
            new = old.filter(~gone)
        else:
            opening = _openings(old, replaced, gone, cutoff, ruleset, start, archive.schema)
            states = _counts(replaced, ruleset, start)
            new = pl.concat([old.filter(~gone), opening]).sort("seq")
        _same_after(old, start, new, states, cutoff, ruleset, root)

        run = entries[hit[0]:hit[-1] + 1]
        seqs = pl.concat(frames[hit[0]:hit[-1] + 1])["seq"]
        rows = new.filter(pl.col("seq").is_in(seqs.implode()))
        version = state.version + 1
        with RewriteWriter(store, version) as writer:
            files = [writer.write(part, i, ledger.content_digest([part]))
                     for i, part in enumerate(rows.iter_slices(TARGET_ROWS))]
            group = {"removed": [e["path"] for e in run], "files": [f["path"] for f in files],
                     "rows": rows.height, "content": ledger.content_digest([rows])}
            extra: dict[str, Any] = {
                "cutoff": iso(cutoff), "by": by, "reason": reason,
                "known_from": iso(replaced.select(pl.col("recorded_at").dt.epoch("us")
                                                   .max()).item()),
                "rules": {"name": ruleset.name, "fingerprint": ruleset.fingerprint},
                "replaced_rows": replaced.height,
                "opening_rows": len(states) if by_state and states is not None
                else opening.height,
                "opening": ledger.content_digest([opening]),
            }
            if states is not None:  # made now, or carried over from the previous expiry
                extra["states"] = writer.side_file(states, f"expiry/opening-v{version:08d}"
                                                   ".parquet")
            record = rewrite_record(last, "expire", [group], files, extra)
            writer.commit(record, run, operation="DELETE", data_change=True)
        try:  # the expiry is committed: a store failing now must not report it as not done
            delete_files(store, run)
        except (StorageError, OSError) as exc:
            msg = (f"{root}: events before {iso(cutoff)} are expired (version {version}), but "
                   f"the store kept some of their {len(run)} data file(s) ({exc}); the next "
                   "compact deletes them")
            warn(msg, EventkitWarning)
    return ExpireReport(version, iso(cutoff), replaced.height, extra["opening_rows"],
                        len(run), record["digest"])


def _replayed(events: pl.DataFrame, ruleset: RuleSet, start: pl.DataFrame | None) -> Any:
    """The replay of ``events``, continuing from opening ``start`` states (if any)."""
    return ReplayResult(events.lazy(), ruleset, start=start)


def _openings(old: pl.DataFrame, replaced: pl.DataFrame, gone: pl.Expr, cutoff: int,
              ruleset: RuleSet, start: pl.DataFrame | None,
              schema: dict[str, pl.DataType]) -> pl.DataFrame:
    """One Correction per key at its last replaced event, for the balance it had."""
    key = list(ruleset.key_columns)
    last = (replaced.sort(*key, "event_time", "seq")
            .group_by(key, maintain_order=True)
            .agg(pl.col("seq", "event_time").last(), pl.col("recorded_at").max()))
    stub = last.with_columns(
        event_id=pl.concat_str([pl.lit("opening"), *[pl.col(k).cast(pl.String) for k in key],
                                pl.lit(iso(cutoff))], separator="-"),
        event_type=pl.lit("Correction"), amount=pl.lit(0, pl.Int64),
    ).with_columns(pl.lit(None, dtype=t).alias(c) for c, t in schema.items()
                   if c not in (*key, "seq", "event_time", "recorded_at", "event_id",
                                "event_type", "amount")).select(list(schema))
    at = iso(cutoff - 1)
    wanted = _replayed(old, ruleset, start).as_of(at).select(*key, "balance")
    zero = pl.concat([old.filter(~gone), stub]).sort("seq")
    have = _replayed(zero, ruleset, start).as_of(at).select(*key,
                                                            pl.col("balance").alias("was"))
    amounts = wanted.join(have, on=key, how="left", maintain_order="left").collect().select(
        *key, (pl.col("balance") - pl.col("was").fill_null(0)).alias("amount"))
    return stub.drop("amount").join(amounts, on=key, how="left", maintain_order="left").select(
        list(schema))


def _counts(replaced: pl.DataFrame, ruleset: RuleSet, start: pl.DataFrame | None
            ) -> pl.DataFrame:
    """Per key, the events an opening Correction stands for beyond itself (``events`` stays).

    As opening states (fields at their start, no time): a replay adds them to the
    count of the events it folds, and nothing else changes.
    """
    key = list(ruleset.key_columns)
    counts = replaced.group_by(key).agg(pl.len().alias("#n"))
    before = (start.select(*key, pl.col("events").alias("#before")) if start is not None
              else pl.DataFrame(schema={**{k: counts.schema[k] for k in key},
                                        "#before": pl.Int64}))
    merged = counts.join(before, on=key, how="full", coalesce=True)
    return merged.select(
        *key,
        *[pl.lit(f.start, dtype=pl.Int64).alias(f.name) for f in ruleset.fields],
        (pl.col("#n").fill_null(1) - 1 + pl.col("#before").fill_null(0)).alias("events"),
        pl.lit(None, dtype=TIME_DTYPE).alias("last_event_time"),
    ).sort(key)


def _same_after(old: pl.DataFrame, start: pl.DataFrame | None, new: pl.DataFrame,
                states: pl.DataFrame | None, cutoff: int, ruleset: RuleSet,
                root: str) -> None:
    """Every event from the cut-off on must leave the same state in the new log."""
    fields = [f.name for f in ruleset.fields]
    after = pl.col("event_time").dt.epoch("us") >= cutoff

    def states_after(events: pl.DataFrame, opening: pl.DataFrame | None) -> pl.DataFrame:
        return (_replayed(events, ruleset, opening).history.filter(after)
                .select("event_id", *fields).sort("event_id").collect())

    a, b = states_after(old, start), states_after(new, states)
    now_a = _replayed(old, ruleset, start).state().collect()
    now_b = _replayed(new, ruleset, states).state().collect()
    if not now_a.equals(now_b):  # every column: the fields, events, last_event_time
        msg = (f"{root}: opening states cannot reproduce {ruleset.name!r}'s current state, "
               "events counted included; nothing was expired")
        raise ArchiveError(msg, path=str(root))
    if not a.equals(b):
        diff = a.join(b, on="event_id", suffix="_new", how="full").filter(
            pl.any_horizontal(pl.col(f).ne_missing(pl.col(f"{f}_new")) for f in fields))
        where = diff["event_id"][0] if diff.height else "?"
        msg = (f"{root}: opening states cannot reproduce {ruleset.name!r} after the cut-off "
               f"(event {where} would change); nothing was expired")
        raise ArchiveError(msg, path=root)
