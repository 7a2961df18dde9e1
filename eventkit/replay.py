"""Replay events through a rule set into state: histories, current state, as-of state.

:func:`replay` is the entry point; the work happens in :mod:`eventkit.engine`
(vectorized Polars and compiled passes). The per-event Python fold in
:mod:`eventkit.reference` is the test oracle, never used here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
import polars as pl

from eventkit import rulesets
from eventkit.archive import EventArchive
from eventkit.engine import Fold, fold
from eventkit.lifecycle import Expiry, expiry_of
from eventkit.rules import CheckedRules, RuleSet
from eventkit.schema import BANK_ACCOUNT, CANONICAL_SCHEMA, TIME_DTYPE
from eventkit.snapshots import Snapshots, by_key
from eventkit.snapshots import find as find_snapshots
from eventkit.sources import is_eventkit_archive, open_archive
from eventkit.temporal import Window, grid_positions, micros
from eventkit.timeutil import InstantError

if TYPE_CHECKING:
    from distributed import Client

    from eventkit.explain import Explanation
    from eventkit.scale import BucketedReplay

__all__ = ["ReplayResult", "replay"]

Events = pl.LazyFrame | pl.DataFrame | EventArchive | str | Path


@dataclass(frozen=True)
class Folded:
    """A fold, and the snapshot state it continues from (None: from the start)."""

    fold: Fold
    base: pl.DataFrame | None = None


class ReplayResult:
    """The outcome of :func:`replay`. Work is done on first use, then kept.

    ``history`` holds every event (except the bank's own, account 0) in the
    order they came in (log order), with the state after each event in
    valid-time order: one column per state field, and ``violation`` (null, or
    why the event was not folded) when the rules have requirements. Sort by
    (key, ``event_time``, ``seq``) for a per-account time line.
    """

    def __init__(self, events: pl.LazyFrame, rules: RuleSet, *,
                 snapshots: Snapshots | None = None, keys: list[int] | None = None,
                 archive: EventArchive | None = None, archive_version: int | None = None,
                 folded: Fold | None = None, start: pl.DataFrame | None = None) -> None:
        self._events = events
        self.rules = rules
        self.checked: CheckedRules = rules.check()
        self.snapshots = snapshots
        self._keys = keys
        #: the eventkit archive replayed, and its version (None: another source)
        self.archive = archive
        self.archive_version = archive_version
        if folded is not None:  # already folded (e.g. by eventkit.whatif.compare)
            self.__dict__["_fold"] = folded
        self.expiry: Expiry | None = None  # set by replay() for an expired archive
        #: per-key state every fold continues from (an expiry's opening states), or None
        self.start = start

    @property
    def fingerprint(self) -> str:
        """The rule set's fingerprint (what cached views are keyed by)."""
        return self.rules.fingerprint

    @cached_property
    def _fold(self) -> Fold:
        return fold(self._events.collect(), self.checked, start=self.start)

    @property
    def history(self) -> pl.LazyFrame:
        """Every event with the state after it (see the class docstring)."""
        return self._fold.events.lazy()

    def state(self) -> pl.LazyFrame:
        """Final state per key: state fields, number of events, time of the last one."""
        return self._per_key(Folded(self._fold, self.start), np.iinfo(np.int64).max)

    def as_of(self, instant: datetime | date | str) -> pl.LazyFrame:
        """State per key at ``instant``: after its last event with ``event_time <= instant``.

        A date means the end of that UTC day. Keys with no event by then are
        left out; interest is as posted at that last event.
        """
        at = micros(instant, param="as_of")
        return self._per_key(self._folded(at, at), at)

    def between(self, start: datetime | date | str, end: datetime | date | str) -> Window:
        """The state at ``start`` and every change up to ``end`` (see :class:`Window`).

        Dates mean whole UTC days: ``start`` from its beginning, ``end`` to its end.
        """
        # the opening state is after every event up to t1; the window holds (t1, t2]
        begins = micros(start, param="start", day="start")
        t1 = begins - (1 if _is_date(start) else 0)
        t2 = micros(end, param="end")
        if t2 < begins:
            msg = f"{end!r} is before {start!r}"
            raise InstantError(msg, param="end")
        key = self.rules.key
        folded = self._folded(t1, t2, lean=False)
        changes = (folded.fold.events.lazy()
                   .filter(pl.col("event_time").dt.epoch("us").is_between(t1, t2, closed="right"))
                   .sort(key, "event_time", "seq"))
        return Window(self._per_key(folded, t1), changes)

    def at_times(self, instants: Sequence[datetime | date | str] | pl.Series) -> pl.LazyFrame:
        """State per key at each instant, in one pass over the events (not a replay each).

        Returns one row per (instant, key) with an event by then: ``instant``,
        the key, the state fields, ``events`` so far and ``last_event_time``.
        Dates mean the end of the day, as in :meth:`as_of`.

        Examples
        --------
        >>> from datetime import datetime, UTC
        >>> t = [datetime(2024, m, 15, tzinfo=UTC) for m in (1, 2, 3)]
        >>> events = pl.DataFrame({"event_id": ["a", "b", "c"], "seq": [0, 1, 2],
        ...     "account_id": [1, 1, 1], "event_type": ["Deposit"] * 3,
        ...     "event_time": t, "recorded_at": t, "amount": [100, 20, 3]})
        >>> month_ends = ["2024-01-31", "2024-02-29", "2024-03-31"]
        >>> replay(events).at_times(month_ends).select("balance").collect()["balance"].to_list()
        [100, 120, 123]

        """
        values = list(instants)
        grid = np.array([micros(v, param="instants") for v in values], np.int64)
        if self.expiry is not None and len(grid):
            self.expiry.check(at_us=int(grid.min()))
        order = np.argsort(grid, kind="stable")
        if not values:
            return self._rows(Folded(self._fold, self.start), np.zeros(0, np.int64),
                              np.zeros(0, np.int64)).with_columns(
                instant=pl.lit(None, dtype=TIME_DTYPE)).lazy()
        folded = self._folded(int(grid.min()), int(grid.max()))
        f = folded.fold
        rows, counts = grid_positions(f.keys, f.times, f.seqs, f.n_keys, grid[order])
        frames = []
        for slot, g in enumerate(order):
            found = rows[slot] >= 0
            frames.append(self._rows(folded, rows[slot][found], counts[slot][found]).with_columns(
                instant=pl.lit(int(grid[g])).cast(pl.Datetime("us")).dt.replace_time_zone("UTC")))
        out = pl.concat(frames)
        return out.select("instant", *[c for c in out.columns if c != "instant"]).lazy()

    def explain(self, key: int, field: str, at: datetime | date | str | None = None
                ) -> Explanation:
        """How ``field`` of ``key`` came to be (see :func:`eventkit.explain.explain`)."""
        from eventkit.explain import explain  # noqa: PLC0415 (explain imports this module)

        return explain(self, key, field, at)

    def violations(self) -> pl.LazyFrame:
        """Events the rules refused to fold, with the reason (empty when none)."""
        history = self.history
        if "violation" not in history.collect_schema().names():
            return history.head(0).with_columns(violation=pl.lit(None, dtype=pl.String))
        return history.filter(pl.col("violation").is_not_null())

    def _folded(self, first: int, last: int, *, lean: bool = True) -> Folded:
        """State from which instants ``first``..``last`` are answered.

        The full fold when it is already there or no snapshot helps; otherwise
        the nearest snapshot at or before ``first`` and the fold of the events
        after it up to ``last``, continuing from the snapshot's state (``lean``:
        without the columns that only a history shows).
        """
        index = None if self.snapshots is None or "_fold" in self.__dict__ \
            else self.snapshots.before(first)
        if index is None:
            return Folded(self._fold, self.start)
        base = self.snapshots.read(index, keys=self._keys)
        c = self.snapshots.checkpoints[index]
        time = pl.col("event_time")
        tail = self._events.filter((time > _instant(c)) & (time <= _instant(last)))
        if self.rules.key == "account_id":  # the bank's rate table: stored with the snapshot
            bank = self.snapshots.bank_events().lazy().filter(time <= _instant(last))
            tail = pl.concat([tail.filter(pl.col("account_id") != BANK_ACCOUNT), bank])
        if lean:
            tail = tail.drop("event_id", "recorded_at")
        return Folded(fold(tail.collect(), self.checked, start=base), base)

    def _per_key(self, folded: Folded, at: int) -> pl.LazyFrame:
        if self.expiry is not None:
            self.expiry.check(at_us=at)
        positions, counts = folded.fold.last_at(at)
        found = positions >= 0
        return self._rows(folded, positions[found], counts[found]).lazy()

    def _rows(self, folded: Folded, positions: np.ndarray, counts: np.ndarray) -> pl.DataFrame:
        """State rows at ``positions`` of the fold, completed from the snapshot if any."""
        key = self.rules.key
        rows = folded.fold.events[positions].select(
            key, *self.checked.fields, pl.Series("events", counts, dtype=pl.Int64),
            pl.col("event_time").alias("last_event_time"),
        )
        if folded.base is not None:
            base = folded.base.select(rows.columns).cast(rows.schema)
            rows = pl.concat([
                rows.join(base.select(key, pl.col("events").alias("#before")), on=key,
                          how="left")
                .with_columns(pl.col("events") + pl.col("#before").fill_null(0))
                .drop("#before"),
                base.join(rows.select(key), on=key, how="anti"),
            ])
        return rows.sort(key)


def replay(
    events: Events,
    rules: RuleSet | str | Path = "balance",
    *,
    known_at: datetime | date | str | None = None,
    keys: Sequence[int] | None = None,
    snapshots: bool = True,
    engine: Literal["memory", "buckets", "dask"] | None = None,
    client: Client | None = None,
    out: str | Path | None = None,
) -> ReplayResult | BucketedReplay:
    """Replay events through a rule set.

    ``events`` is a LazyFrame or DataFrame in the canonical schema, an
    :class:`EventArchive`, or a path that :func:`eventkit.open_archive` reads.
    ``rules`` is a :class:`RuleSet`, the name of a registered one (``"balance"``,
    the default: balance = running sum of signed amounts; ``"banking"``: status
    machine, fees, interest), or the path of a TOML rules file. ``known_at``
    answers as the archive knew it then: events recorded after that instant
    (``recorded_at``) are left out, whatever their ``event_time``. ``keys``
    replays only those keys (and the bank's own events, which every account
    reads): the filter reaches the Parquet reader, so one account of a large
    archive costs a scan of one column, not a replay of everything.

    On an eventkit archive (an :class:`EventArchive` or its path), a snapshot
    set stored by :func:`eventkit.snapshot` for exactly these rules and this
    archive state is used by ``as_of``, ``at_times`` and ``between`` (unless
    ``snapshots=False``, or ``known_at`` is given): they fold only the events
    after the nearest checkpoint, from the state stored there.

    ``engine`` picks how (see :mod:`eventkit.scale`): ``"memory"`` (the default)
    folds everything at once; ``"buckets"`` one bucket of accounts at a time
    (memory bounded by a bucket, for archives larger than memory; ``out``, a
    folder, receives the histories as Parquet); ``"dask"`` (the default when a
    ``client`` is given) runs the buckets as tasks on a ``dask.distributed``
    cluster. Both return a :class:`~eventkit.scale.BucketedReplay` with the same
    answers; ``events`` must then be an archive or a path.

    Examples
    --------
    >>> from datetime import datetime, UTC
    >>> t = [datetime(2024, 1, d, tzinfo=UTC) for d in (1, 2, 3)]
    >>> events = pl.DataFrame({"event_id": ["a", "b", "c"], "seq": [0, 1, 2],
    ...     "account_id": [1, 1, 2], "event_type": ["Deposit", "Fee", "Deposit"],
    ...     "event_time": t, "recorded_at": t, "amount": [10_000, 250, 500]})
    >>> replay(events).state().select("account_id", "balance").collect().rows()
    [(1, 9750), (2, 500)]

    """
    ruleset = rulesets.resolve(rules)
    if engine is None:
        engine = "dask" if client is not None else "memory"
    if engine != "memory" or out is not None:
        from eventkit.scale import replay_buckets  # noqa: PLC0415 (scale imports replay)

        return replay_buckets(events, ruleset, engine=engine,  # type: ignore[arg-type]
                              client=client, out=out, known_at=known_at, keys=keys)
    archive = _archive(events)
    stored = None
    wanted = None
    if keys is not None:
        wanted = [*keys, BANK_ACCOUNT] if ruleset.key == "account_id" else list(keys)
    lf = None
    version = None
    if archive is not None:
        version = archive.version
        if snapshots and known_at is None:
            stored = find_snapshots(archive, ruleset, version=version)
        if snapshots and wanted is not None and ruleset.key == "account_id":
            lf = by_key(archive, wanted, version=version)
        if lf is None:
            lf = archive.scan(version=version)
    else:
        lf = _as_lazy(events)
    if known_at is not None:
        lf = lf.filter(pl.col("recorded_at").dt.epoch("us") <= micros(known_at, param="known_at"))
    if wanted is not None:
        lf = lf.filter(pl.col(ruleset.key).is_in(wanted))
    names = lf.collect_schema().names()
    optional = [pl.lit(None, dtype=CANONICAL_SCHEMA[c]).alias(c)
                for c in ("counterparty_id", "rate") if c not in names]
    result = ReplayResult(lf.with_columns(optional), ruleset, snapshots=stored,
                          keys=None if keys is None else list(keys), archive=archive,
                          archive_version=version)
    result.expiry = expiry_of(events, ruleset.fingerprint)
    if result.expiry is not None and known_at is not None:
        result.expiry.check(known_at_us=micros(known_at, param="known_at"))
    if result.expiry is not None:
        result.start = result.expiry.opening_states(ruleset.key, result._keys)
    return result


def _archive(events: Events) -> EventArchive | None:
    """The eventkit archive ``events`` is or names, if it is one."""
    if isinstance(events, EventArchive):
        return events
    if isinstance(events, str | Path) and is_eventkit_archive(Path(events)):
        return EventArchive(events)
    return None


def _as_lazy(events: Events) -> pl.LazyFrame:
    if isinstance(events, pl.LazyFrame):
        return events
    if isinstance(events, pl.DataFrame):
        return events.lazy()
    if isinstance(events, EventArchive):
        return events.scan()
    return open_archive(events)


def _instant(micros: int) -> datetime:
    """Microseconds since 1970 as a UTC datetime (a literal Parquet statistics can prune by)."""
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=micros)


def _is_date(value: object) -> bool:
    """True for a calendar date (``date`` or ``YYYY-MM-DD``), not an instant."""
    if isinstance(value, str):
        return len(value.strip()) == len("YYYY-MM-DD")
    return isinstance(value, date) and not isinstance(value, datetime)
