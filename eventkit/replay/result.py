"""What a replay answers: histories, current state, state as of an instant, on a grid, in a window.

:func:`eventkit.replay` returns a :class:`ReplayResult`; the work happens in
:mod:`eventkit.replay.engine` (vectorized Polars and compiled passes). The
per-event Python fold in :mod:`eventkit.rules.reference` is the test oracle,
never used here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

import numpy as np
import polars as pl

from eventkit.archive.retention import Expiry
from eventkit.archive.table import EventArchive
from eventkit.exceptions import InstantError
from eventkit.progress import Steps
from eventkit.replay.accrue import accrue
from eventkit.replay.engine import Fold, fold
from eventkit.replay.kernels import grid_positions
from eventkit.replay.protocol import Window
from eventkit.replay.snapshots import Snapshots
from eventkit.rules.model import CheckedRules, RuleSet
from eventkit.schema import BANK_ACCOUNT, TIME_DTYPE
from eventkit.timeutil import from_micros, is_date, micros

__all__ = ["ReplayResult", "Window"]


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
                 folded: Fold | None = None, start: pl.DataFrame | None = None,
                 expiry: Expiry | None = None) -> None:
        self._events = events
        self.rules = rules
        self.checked: CheckedRules = rules.check()
        self.snapshots = snapshots
        self._keys = keys
        #: the eventkit archive replayed, and its version (None: another source)
        self.archive = archive
        self.archive_version = archive_version
        #: the fold of every event, once made (or given: already folded, as by compare)
        self._whole = folded
        #: the archive's expiry, when it has one: questions before its cut-off are refused
        self.expiry = expiry
        #: per-key state every fold continues from (an expiry's opening states), or None
        self.start = start

    @property
    def fingerprint(self) -> str:
        """The rule set's fingerprint (what cached views are keyed by)."""
        return self.rules.fingerprint

    @property
    def events(self) -> pl.LazyFrame:
        """The events replayed (after ``known_at`` and ``keys`` filters), in log order."""
        return self._events

    @property
    def fold(self) -> Fold:
        """The fold of every event (made on first use, then kept)."""
        if self._whole is None:
            with Steps(f"replay ({self.rules.name})", 2) as steps:
                steps.begin("reading events")
                events = self._events.collect()
                steps.begin(f"folding {events.height:,} events")
                self._whole = fold(events, self.checked, start=self.start)
        return self._whole

    @property
    def history(self) -> pl.LazyFrame:
        """Every event with the state after it (see the class docstring)."""
        return self.fold.events.lazy()

    def state(self) -> pl.LazyFrame:
        """Final state per key: state fields, number of events, time of the last one."""
        return self._per_key(Folded(self.fold, self.start), np.iinfo(np.int64).max)

    def as_of(self, instant: datetime | date | str, *, accrued: bool = False) -> pl.LazyFrame:
        """State per key at ``instant``: after its last event with ``event_time <= instant``.

        A date means the end of that UTC day. Keys with no event by then are
        left out. Interest is as posted at that last event; with ``accrued``
        the balance and interest also hold the interest accrued from there to
        ``instant`` under the rules' own convention — exactly what an event at
        ``instant`` would post first — and the column ``accrued`` that part.

        Examples
        --------
        >>> from datetime import datetime, UTC
        >>> from eventkit import rules
        >>> t = datetime(2024, 1, 1, tzinfo=UTC)
        >>> events = pl.DataFrame({"event_id": ["a"], "seq": [0], "account_id": [1],
        ...     "event_type": ["Deposit"], "event_time": [t], "recorded_at": [t],
        ...     "amount": [100_000]})
        >>> bank = rules.get("banking").with_params(require_open=0,
        ...                                         rate_table={"2023-01-01": 0.05})
        >>> year = replay(events, bank)
        >>> accrued = year.as_of("2024-12-31", accrued=True)  # 366 days of 2024, ACT/365
        >>> accrued.select("balance", "interest", "accrued").collect().row(0)
        (105014, 5014, 5014)
        >>> year.as_of("2024-12-31").select("balance", "interest").collect().row(0)
        (100000, 0)

        """
        at = micros(instant, param="as_of")
        folded = self._folded(at, at)
        rows = self._per_key(folded, at)
        if not accrued:
            return rows
        return accrue(rows.collect(), self.rules, folded.fold.rates, at).lazy()

    def between(self, start: datetime | date | str, end: datetime | date | str) -> Window:
        """The state at ``start`` and every change up to ``end`` (see :class:`Window`).

        Dates mean whole UTC days: ``start`` from its beginning, ``end`` to its end.
        """
        # the opening state is after every event up to t1; the window holds (t1, t2]
        begins = micros(start, param="start", day="start")
        t1 = begins - (1 if is_date(start) else 0)
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
            return self._rows(Folded(self.fold, self.start), np.zeros(0, np.int64),
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
        snapshots = self.snapshots
        index = None if snapshots is None or self._whole is not None \
            else snapshots.before(first)
        if snapshots is None or index is None:
            return Folded(self.fold, self.start)
        base = snapshots.read(index, keys=self._keys)
        c = snapshots.checkpoints[index]
        time = pl.col("event_time")
        tail = self._events.filter((time > from_micros(c)) & (time <= from_micros(last)))
        if self.rules.key == "account_id":  # the bank's rate table: stored with the snapshot
            bank = snapshots.bank_events().lazy().filter(time <= from_micros(last))
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
