"""What a replay answers: histories, current state, state as of an instant, on a grid, in a window.

:func:`eventkit.replay` returns a :class:`ReplayResult`; the work happens in
:mod:`eventkit.replay.engine` (vectorized Polars and compiled passes). The
per-event Python fold in :mod:`eventkit.rules.reference` is the test oracle,
never used here.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime

import numpy as np
import polars as pl
from polars.io.plugins import register_io_source

from eventkit.archive.retention import Expiry
from eventkit.archive.table import EventArchive
from eventkit.exceptions import (
    CorruptionError,
    CoverageError,
    CoverageWarning,
    EventDataError,
    InstantError,
    SnapshotError,
    foreign_errors,
    warn,
)
from eventkit.replay.accrue import accrue
from eventkit.replay.engine import AFTER_ALL, Coverage, Fold, fold
from eventkit.replay.kernels import grid_positions
from eventkit.replay.overlap import collect_and_fold
from eventkit.replay.progress import Steps
from eventkit.replay.protocol import Window
from eventkit.replay.snapshots import Snapshots
from eventkit.rules.model import CheckedRules, RuleSet
from eventkit.rules.streams import global_expr
from eventkit.schema import TIME_DTYPE
from eventkit.timeutil import from_micros, is_date, micros, micros_each

__all__ = ["GRID_CELLS", "ReplayResult", "Window", "coverage"]

#: About how many (instant, key) cells :meth:`ReplayResult.at_times` makes at a time.
GRID_CELLS = 2_000_000


@dataclass(frozen=True)
class Folded:
    """A fold, and the snapshot state it continues from (None: from the start)."""

    fold: Fold
    base: pl.DataFrame | None = None


class ReplayResult:
    """The outcome of :func:`replay`. Work is done on first use, then kept.

    ``history`` holds every event the rules fold (not their global events,
    such as the bank's own rate changes, nor those their ``where`` leaves out)
    in the order they came in (log order), with the state after each event in
    valid-time order: one column per state field, and ``violation`` (null, or
    why the event was not folded) when the rules have requirements. Sort by
    (key, ``event_time``, ``seq``) for a per-key time line. The key comes back
    in its own column(s) and type.

    The first full fold checks which event types it met (see :func:`coverage`):
    a :class:`~eventkit.exceptions.CoverageWarning` (with ``strict``: a
    :class:`~eventkit.exceptions.CoverageError`) when a type occurs that no rule
    handles and the rules do not ``ignore`` (and, with ``strict``, when a rule
    handles a type the archive does not declare).
    """

    def __init__(self, events: pl.LazyFrame, rules: RuleSet, *,
                 snapshots: Snapshots | None = None, keys: list[object] | None = None,
                 archive: EventArchive | None = None, archive_version: int | None = None,
                 folded: Fold | None = None, start: pl.DataFrame | None = None,
                 expiry: Expiry | None = None, strict: bool = False,
                 split: bool = False, known_at: int | None = None) -> None:
        self._events = events
        self.rules = rules
        self.checked: CheckedRules = rules.check()
        self.snapshots = snapshots
        self._keys = keys
        #: the ``known_at`` of the replay (microseconds), or None
        self.known_at = known_at
        #: the eventkit archive replayed, and its version (None: another source)
        self.archive = archive
        self.archive_version = archive_version
        #: the fold of every event, once made (or given: already folded, as by compare)
        self._whole = folded
        #: the archive's expiry, when it has one: questions before its cut-off are refused
        self.expiry = expiry
        #: per-key state every fold continues from (an expiry's opening states), or None
        self.start = start
        self.strict = strict
        #: whether ``events`` reads rows in a fixed order (an archive's scan): then the
        #: columns the fold does not read are decoded while it runs (see replay.overlap)
        self._split = split
        if folded is not None:
            self._check(folded.coverage)

    @property
    def fingerprint(self) -> str:
        """The rule set's fingerprint (what cached views are keyed by)."""
        return self.rules.fingerprint

    @property
    def whole(self) -> bool:
        """True when every event of the source is replayed (no ``keys``, no ``known_at``)."""
        return self._keys is None and self.known_at is None

    @property
    def events(self) -> pl.LazyFrame:
        """The events replayed (after ``known_at`` and ``keys`` filters), in log order."""
        return self._events

    @property
    def fold(self) -> Fold:
        """The fold of every event (made on first use, then kept)."""
        if self._whole is None:
            # one step: the events are decoded while the compiled fold runs (a long step
            # ticks)
            with Steps(f"replay ({self.rules.name})", 1) as steps:
                steps.begin("reading and folding the events")
                whole = self._fold_all()
            self._check(whole.coverage)
            self._whole = whole
        return self._whole

    @foreign_errors(EventDataError, "replay: reading and folding the events")
    def _fold_all(self) -> Fold:
        return collect_and_fold(self._events, self.checked, start=self.start,
                                split=self._split)

    @property
    def key(self) -> list[str]:
        """The key's column names (one, or several for a composite key)."""
        return list(self.rules.key_columns)

    def _check(self, met: Coverage) -> None:
        problem = coverage(self.rules, met, declared=None if self.archive is None
                           else self.archive.event_types, strict=self.strict)
        if problem is None:
            return
        if self.strict:
            raise CoverageError(problem)
        warn(problem, CoverageWarning)

    @property
    def history(self) -> pl.LazyFrame:
        """Every event with the state after it (see the class docstring)."""
        return self.fold.events.lazy()

    def state(self) -> pl.LazyFrame:
        """Final state per key: state fields, number of events, time of the last one."""
        return self._per_key(Folded(self.fold, self.start), AFTER_ALL)

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
        >>> from eventkit import replay, rules
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
        key = self.key
        folded = self._folded(t1, t2, lean=False)
        changes = (folded.fold.events.lazy()
                   .filter(pl.col("event_time").dt.epoch("us").is_between(t1, t2, closed="right"))
                   .sort(*key, "event_time", "seq"))
        return Window(self._per_key(folded, t1), changes)

    def at_times(self, instants: Sequence[datetime | date | str] | pl.Series) -> pl.LazyFrame:
        """State per key at each instant, in one pass over the events (not a replay each).

        Returns one row per (instant, key) with an event by then: ``instant``,
        the key, the state fields, ``events`` so far and ``last_event_time``.
        Dates mean the end of the day, as in :meth:`as_of`.

        The rows are made when the frame is collected, a few instants at a time
        (about :data:`GRID_CELLS` instant-key cells), so a streaming query —
        ``sink_parquet``, or an aggregation collected with ``engine="streaming"``
        — holds one such chunk at a time, however many instants are asked for.
        ``collect()`` of everything holds every row: 10,000 instants of 20,000
        keys are 200 million.

        Examples
        --------
        >>> from datetime import datetime, UTC
        >>> from eventkit import replay
        >>> t = [datetime(2024, m, 15, tzinfo=UTC) for m in (1, 2, 3)]
        >>> events = pl.DataFrame({"event_id": ["a", "b", "c"], "seq": [0, 1, 2],
        ...     "account_id": [1, 1, 1], "event_type": ["Deposit"] * 3,
        ...     "event_time": t, "recorded_at": t, "amount": [100, 20, 3]})
        >>> month_ends = ["2024-01-31", "2024-02-29", "2024-03-31"]
        >>> replay(events).at_times(month_ends).select("balance").collect()["balance"].to_list()
        [100, 120, 123]

        """
        grid = np.sort(np.array(micros_each(instants, param="instants"), np.int64), kind="stable")
        folded = self._grid_fold(grid)
        empty = np.zeros(0, np.int64)
        schema = self._rows(folded, empty, empty).with_columns(
            instant=pl.lit(None, dtype=TIME_DTYPE)).schema
        order = ["instant", *[c for c in schema if c != "instant"]]

        def source(with_columns: list[str] | None, predicate: pl.Expr | None,
                   n_rows: int | None, _batch_size: int | None) -> Iterator[pl.DataFrame]:
            left = n_rows
            for frame in self._grid_states(folded, grid):
                if predicate is not None:
                    frame = frame.filter(predicate)
                if with_columns is not None:
                    frame = frame.select(with_columns)
                if left is not None:
                    frame = frame.head(left)
                    left -= frame.height
                yield frame
                if left is not None and left <= 0:
                    return

        return register_io_source(source, schema={c: schema[c] for c in order},
                                  explain_name="eventkit at_times")

    def states_at(self, instants: Sequence[datetime | date | str] | pl.Series
                  ) -> Iterator[pl.DataFrame]:
        """What :meth:`at_times` streams, one frame per instant (in time order).

        Each frame holds ``instant`` and the state of every key with an event by
        then, sorted by key. The events are folded once (now); the frames are
        made as they are taken, a few instants at a time.
        """
        grid = np.sort(np.array(micros_each(instants, param="instants"), np.int64), kind="stable")
        return self._grid_states(self._grid_fold(grid), grid)

    def _grid_fold(self, grid: np.ndarray) -> Folded:
        if self.expiry is not None and len(grid):
            self.expiry.check(at_us=int(grid[0]))
        if not len(grid):
            return Folded(self.fold, self.start)
        return self._folded(int(grid[0]), int(grid[-1]))

    def _grid_states(self, folded: Folded, grid: np.ndarray) -> Iterator[pl.DataFrame]:
        f = folded.fold
        step = max(1, GRID_CELLS // max(f.n_keys, 1))
        for at in range(0, len(grid), step):  # a pass over the events per chunk of instants
            part = grid[at:at + step]
            rows, counts = grid_positions(f.keys, f.times, f.seqs, f.n_keys, part)
            for slot, instant in enumerate(part):
                frame = self._rows(folded, rows[slot], counts[slot])
                yield frame.select(pl.lit(int(instant)).cast(pl.Datetime("us"))
                                   .dt.replace_time_zone("UTC").alias("instant"), pl.all())

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
        c = snapshots.checkpoints[index]
        time = pl.col("event_time")
        tail = self._events.filter((time > from_micros(c)) & (time <= from_micros(last)))
        try:
            base = snapshots.read(index, keys=self._keys)
            if self.rules.global_events is not None:  # the global events: stored with the set
                shared = snapshots.shared_events().lazy().filter(time <= from_micros(last))
                schema = self._events.collect_schema()
                tail = pl.concat([tail.filter(~global_expr(self.rules, schema)),
                                  shared.select(schema.names()).cast(schema)])
        except (SnapshotError, CorruptionError):
            if not snapshots.replaced:
                raise
            return Folded(self.fold, self.start)  # a newer snapshot removed it: replay in full
        if lean:
            tail = tail.drop("event_id", "recorded_at")
        return Folded(fold(tail.collect(), self.checked, start=base), base)

    def _per_key(self, folded: Folded, at: int) -> pl.LazyFrame:
        if self.expiry is not None:
            self.expiry.check(at_us=at)
        return self._rows(folded, *folded.fold.last_at(at)).lazy()

    def _rows(self, folded: Folded, positions: np.ndarray, counts: np.ndarray) -> pl.DataFrame:
        """State rows at ``positions`` of the fold (-1: none), completed from the snapshot."""
        key = self.key
        rows = folded.fold.rows_at(positions, counts, key, list(self.checked.fields))
        if folded.base is not None:
            base = folded.base.select(rows.columns).cast(rows.schema)
            rows = pl.concat([
                rows.join(base.select(*key, pl.col("events").alias("#before")), on=key,
                          how="left", maintain_order="left")
                .with_columns(pl.col("events") + pl.col("#before").fill_null(0))
                .drop("#before"),
                base.join(rows.select(key), on=key, how="anti"),
            ])
        return rows.sort(key)


def coverage(rules: RuleSet, met: Coverage, *, declared: tuple[str, ...] | None = None,
             strict: bool = False) -> str | None:
    """What a fold's event types say about the rules: a problem to report, or None.

    Reported: event types that occur and that no rule handles nor the rules
    ``ignore`` (their events change nothing: a misspelt rule, a rule set meant
    for other events), with the handled types that never occurred. Rules for
    types the archive does not declare (``declared``), which can never apply,
    are named with them, and on their own when ``strict`` (an archive created
    before a rule set learnt a new type is no mistake).

    Examples
    --------
    >>> from eventkit.rules.model import Field, Handler
    >>> typo = RuleSet("r", (Field("balance"),),
    ...                (Handler("Deposits", {"balance": "balance + amount"}),))
    >>> print(coverage(typo, Coverage(seen=(), unhandled=("Deposit",))))
    rule set 'r': event type(s) ['Deposit'] occur but no rule handles them (or ignores them:
    ignore=[...]); rules for ['Deposits'] never applied

    """
    handled = [h.event_type for h in rules.handlers]
    absent = [t for t in handled if t not in met.seen]
    unhandled = [t for t in met.unhandled if t not in rules.ignore]
    foreign = [t for t in handled if declared is not None and t not in declared]
    parts = []
    if unhandled:
        parts.append(f"event type(s) {unhandled} occur but no rule handles them (or ignores "
                     f"them: ignore=[...])")
        if absent:
            parts.append(f"rules for {absent} never applied")
    if foreign and (parts or strict):
        parts.append(f"rules for {foreign} handle types the archive does not declare "
                     f"({list(declared or ())})")
    return f"rule set {rules.name!r}: " + "; ".join(parts) if parts else None
