"""Replay events through a rule set into state: histories, current state, as-of state.

:func:`replay` is the entry point; the work happens in :mod:`eventkit.engine`
(vectorized Polars and compiled passes). The per-event Python fold in
:mod:`eventkit.reference` is the test oracle, never used here.
"""

from __future__ import annotations

from datetime import date, datetime
from functools import cached_property
from pathlib import Path

import numpy as np
import polars as pl

from eventkit import rulesets
from eventkit.archive import EventArchive
from eventkit.engine import Fold, fold
from eventkit.rules import CheckedRules, RuleSet
from eventkit.schema import CANONICAL_SCHEMA
from eventkit.timeutil import to_instant

__all__ = ["ReplayResult", "replay"]

Events = pl.LazyFrame | pl.DataFrame | EventArchive | str | Path


class ReplayResult:
    """The outcome of :func:`replay`. Work is done on first use, then kept.

    ``history`` holds every event (except the bank's own, account 0) in the
    order they came in (log order), with the state after each event in
    valid-time order: one column per state field, and ``violation`` (null, or
    why the event was not folded) when the rules have requirements. Sort by
    (key, ``event_time``, ``seq``) for a per-account time line.
    """

    def __init__(self, events: pl.LazyFrame, rules: RuleSet) -> None:
        self._events = events
        self.rules = rules
        self.checked: CheckedRules = rules.check()

    @property
    def fingerprint(self) -> str:
        """The rule set's fingerprint (what cached views are keyed by)."""
        return self.rules.fingerprint

    @cached_property
    def _fold(self) -> Fold:
        return fold(self._events.collect(), self.checked)

    @property
    def history(self) -> pl.LazyFrame:
        """Every event with the state after it (see the class docstring)."""
        return self._fold.events.lazy()

    def state(self) -> pl.LazyFrame:
        """Final state per key: state fields, number of events, time of the last one."""
        return self._per_key(np.iinfo(np.int64).max)

    def as_of(self, instant: datetime | date | str) -> pl.LazyFrame:
        """State per key at ``instant``: after its last event with ``event_time <= instant``.

        A date means the end of that UTC day. Keys with no event by then are
        left out; interest is as posted at that last event.
        """
        t = to_instant(instant, param="as_of")
        return self._per_key(int(pl.Series([t]).dt.epoch("us")[0]))

    def violations(self) -> pl.LazyFrame:
        """Events the rules refused to fold, with the reason (empty when none)."""
        history = self.history
        if "violation" not in history.collect_schema().names():
            return history.head(0).with_columns(violation=pl.lit(None, dtype=pl.String))
        return history.filter(pl.col("violation").is_not_null())

    def _per_key(self, micros: int) -> pl.LazyFrame:
        positions, counts = self._fold.last_at(micros)
        found = positions >= 0
        rows = self._fold.events[positions[found]]
        key = self.rules.key
        return rows.select(
            key, *self.checked.fields, pl.Series("events", counts[found], dtype=pl.Int64),
            pl.col("event_time").alias("last_event_time"),
        ).sort(key).lazy()


def replay(events: Events, rules: RuleSet | str | Path = "balance") -> ReplayResult:
    """Replay events through a rule set.

    ``events`` is a LazyFrame or DataFrame in the canonical schema, an
    :class:`EventArchive`, or a path that :func:`eventkit.open_archive` reads.
    ``rules`` is a :class:`RuleSet`, the name of a registered one (``"balance"``,
    the default: balance = running sum of signed amounts; ``"banking"``: status
    machine, fees, interest), or the path of a TOML rules file.

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
    lf = _as_lazy(events)
    names = lf.collect_schema().names()
    optional = [pl.lit(None, dtype=CANONICAL_SCHEMA[c]).alias(c)
                for c in ("counterparty_id", "rate") if c not in names]
    return ReplayResult(lf.with_columns(optional), rulesets.resolve(rules))


def _as_lazy(events: Events) -> pl.LazyFrame:
    if isinstance(events, pl.LazyFrame):
        return events
    if isinstance(events, pl.DataFrame):
        return events.lazy()
    if isinstance(events, EventArchive):
        return events.scan()
    from eventkit.sources import open_archive  # noqa: PLC0415 (sources imports archive)

    return open_archive(events)
