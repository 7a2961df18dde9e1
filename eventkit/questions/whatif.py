"""What-if: replay the same history under two rule sets and see exactly what differs.

:func:`compare` folds the events once per rule set, sharing everything that
does not depend on the rules (loading, key codes, visiting order), and returns
a :class:`Comparison`: per key and state field the value under A and under B
at every event, on a time grid or at the end, the delta, where they first
diverge, and totals.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import polars as pl

from eventkit._typing import Instant
from eventkit.archive.open import Events
from eventkit.exceptions import ExpiredError, RuleError
from eventkit.replay.api import replay
from eventkit.replay.engine import fold, prepare
from eventkit.replay.progress import Steps
from eventkit.replay.result import ReplayResult
from eventkit.rules import registry
from eventkit.rules.model import RuleSet

__all__ = ["Comparison", "compare"]

_BASE = ("event_id", "event_type", "event_time", "seq", "amount")


class Comparison:
    """Two replays of the same events: ``a`` (baseline) and ``b`` (scenario).

    Every frame names the value under A ``<field>_a``, under B ``<field>_b``
    and, for numbers, ``<field>_delta`` (B - A). ``a`` and ``b`` are full
    :class:`~eventkit.ReplayResult` objects for anything else.
    """

    def __init__(self, a: ReplayResult, b: ReplayResult, *, same_events: bool) -> None:
        self.a, self.b = a, b
        self.key = list(a.rules.key_columns)
        fa, fb = a.checked.fields, b.checked.fields
        self.fields = [f for f in fa if f in fb and fa[f].type == fb[f].type]
        if not self.fields:
            msg = f"rule sets {a.rules.name!r} and {b.rules.name!r} share no state field"
            raise RuleError(msg)
        self.numeric = [f for f in self.fields if fa[f].type in ("int", "float")]
        self._same_events = same_events

    @property
    def history(self) -> pl.LazyFrame:
        """Every event with the state after it under A and B, in log order."""
        names = self.a.history.collect_schema().names()
        base = [c for c in _BASE if c in names]  # (an archive of one's own may have no amount)
        a = self.a.history.select(*self.key, *base, *[pl.col(f).alias(f"{f}_a")
                                                       for f in self.fields])
        b = self.b.history.select(*[pl.col(f).alias(f"{f}_b") for f in self.fields])
        if self._same_events:  # the same rows in the same order: side by side
            both = pl.concat([a, b], how="horizontal")
        else:  # what each knew differs: events matched by id
            b = self.b.history.select(*self.key, *base,
                                      *[pl.col(f).alias(f"{f}_b") for f in self.fields])
            both = a.join(b, on="event_id", how="full", coalesce=True, suffix="#b").with_columns(
                [pl.coalesce(c, f"{c}#b").alias(c) for c in (*self.key, *base[1:])]
            ).drop([f"{c}#b" for c in (*self.key, *base[1:])]).sort("seq")
        return self._deltas(both)

    def state(self) -> pl.LazyFrame:
        """Final state per key under A and B."""
        return self._side_by_side(self.a.state(), self.b.state(), self.key)

    def as_of(self, instant: Instant) -> pl.LazyFrame:
        """State per key at ``instant`` under A and B (see :meth:`ReplayResult.as_of`)."""
        return self._side_by_side(self.a.as_of(instant), self.b.as_of(instant), self.key)

    def at_times(self, instants: Sequence[Instant]) -> pl.LazyFrame:
        """State per (instant, key) under A and B, each in one pass over the events."""
        return self._side_by_side(self.a.at_times(instants), self.b.at_times(instants),
                                  ["instant", *self.key])

    def divergence(self) -> pl.LazyFrame:
        """Per key whose state ever differs: the first event (in time order) where it does."""
        def side(f: str, s: str) -> pl.Expr:  # named values by name: A's and B's enums
            col = pl.col(f"{f}_{s}")       # may list other values
            return col.cast(pl.String) if self.a.checked.fields[f].type == "enum" else col

        differs = pl.any_horizontal([side(f, "a").ne_missing(side(f, "b"))
                                     for f in self.fields])
        history = self.history.collect()
        # sort narrow rows (key, time, seq, row) only, then fetch the first row of each key
        first = (history.lazy().with_row_index("#row").filter(differs)
                 .select(*self.key, "event_time", "seq", "#row")
                 .sort(*self.key, "event_time", "seq")
                 .unique(self.key, keep="first", maintain_order=True).collect())
        return history[first["#row"]].lazy()

    def totals(self) -> pl.DataFrame:
        """Per int field (money, counts): sums of the final state under A and B, what changed.

        Columns: ``total_a``, ``total_b``, ``delta``, ``keys_affected`` (keys
        whose final value differs), ``largest_rise`` and ``largest_fall`` of one
        key. Exact: money stays in integer minor units.
        """
        state = self.state().collect()
        fields = [f for f in self.numeric if self.a.checked.fields[f].type == "int"]
        return pl.DataFrame([{
            "field": f,
            "total_a": state[f"{f}_a"].sum(),
            "total_b": state[f"{f}_b"].sum(),
            "delta": state[f"{f}_delta"].sum(),
            "keys_affected": int(state[f"{f}_a"].ne_missing(state[f"{f}_b"]).sum()),
            "largest_rise": max(state[f"{f}_delta"].max() or 0, 0),
            "largest_fall": min(state[f"{f}_delta"].min() or 0, 0),
        } for f in fields], schema={"field": pl.String, "total_a": pl.Int64,
                                    "total_b": pl.Int64, "delta": pl.Int64,
                                    "keys_affected": pl.Int64, "largest_rise": pl.Int64,
                                    "largest_fall": pl.Int64})

    def largest(self, field: str, n: int = 10) -> pl.DataFrame:
        """The ``n`` keys whose final ``field`` differs most (by absolute delta)."""
        if field not in self.numeric:
            msg = f"field: {field!r} is not a numeric field of both rule sets {self.numeric}"
            raise RuleError(msg)
        return (self.state().filter(pl.col(f"{field}_delta") != 0)
                .sort(pl.col(f"{field}_delta").abs(), *self.key,
                      descending=[True, *[False] * len(self.key)])
                .head(n).collect())

    def _side_by_side(self, a: pl.LazyFrame, b: pl.LazyFrame, on: list[str]) -> pl.LazyFrame:
        cols = lambda side: [pl.col(f).alias(f"{f}_{side}") for f in self.fields]  # noqa: E731
        left = a.select(*on, *cols("a"), pl.col("events").alias("events_a"))
        right = b.select(*on, *cols("b"), pl.col("events").alias("events_b"))
        both = left.join(right, on=on, how="full", coalesce=True).sort(on)
        starts = self.a.checked.fields
        fill = [pl.col(f"{f}_{s}").fill_null(starts[f].start) for f in self.numeric
                for s in "ab"]
        return self._deltas(both.with_columns(fill))

    def _deltas(self, frame: pl.LazyFrame) -> pl.LazyFrame:
        return frame.with_columns([(pl.col(f"{f}_b") - pl.col(f"{f}_a")).alias(f"{f}_delta")
                                   for f in self.numeric])


def compare(
    events: Events,
    rules_a: RuleSet | str | Path = "banking",
    rules_b: RuleSet | str | Path | Mapping[str, Any] | None = None,
    *,
    keys: Sequence[Any] | None = None,
    known_at: Instant | None = None,
    known_at_b: Instant | None = None,
) -> Comparison:
    """Replay ``events`` under ``rules_a`` (baseline) and ``rules_b`` (scenario).

    ``rules_b`` is a rule set, a name or file, or a mapping of parameter
    overrides applied to ``rules_a`` (``{"rate_table": ..., "overdraft_fee": 2_500}``,
    see :meth:`RuleSet.with_params`). The events are loaded and prepared once
    and folded once per rule set. ``known_at`` replays both as the archive knew
    them then; ``known_at_b`` lets B know more (or less) than A — rule change
    and late corrections at once (then events are matched by id).

    Examples
    --------
    >>> from datetime import datetime, UTC
    >>> t = [datetime(2024, 1, 1, tzinfo=UTC), datetime(2025, 1, 1, tzinfo=UTC)]
    >>> events = pl.DataFrame({"event_id": ["o", "d", "w"], "seq": [0, 1, 2],
    ...     "account_id": [1, 1, 1], "event_type": ["AccountOpened", "Deposit", "Withdrawal"],
    ...     "event_time": [t[0], t[0], t[1]], "recorded_at": [t[0], t[0], t[1]],
    ...     "amount": [0, 100_000, 500]})
    >>> rules = registry.get("banking").with_params(rate_table={"2024-01-01": 0.02})
    >>> diff = compare(events, rules, {"rate_table": {"2024-01-01": 0.03}})
    >>> diff.state().select("balance_a", "balance_b", "balance_delta").collect().row(0)
    (101505, 102508, 1003)

    """
    a = registry.resolve(rules_a)
    b = a.with_params(**rules_b) if isinstance(rules_b, Mapping) else registry.resolve(
        a if rules_b is None else rules_b)
    if a.keying != b.keying:
        msg = (f"rules_b: keyed by {b.key!r}, rules_a by {a.key!r} (or they select or share "
               "other events); compare needs one key and one selection")
        raise RuleError(msg)
    if known_at_b is not None and known_at_b != known_at:
        ra = replay(events, a, keys=keys, known_at=known_at, snapshots=False)
        rb = replay(events, b, keys=keys, known_at=known_at_b, snapshots=False)
        return Comparison(ra, rb, same_events=False)
    base = replay(events, a, keys=keys, known_at=known_at, snapshots=False)
    if base.start is not None:
        msg = (f"{events}: events before the archive's expiry cut-off are gone; their opening "
               "states hold for the rule set they were made for only, so no other can be "
               "compared")
        raise ExpiredError(msg)
    with Steps(f"compare ({a.name} and {b.name})", 4) as steps:
        steps.begin("reading events")
        frame = base.events.collect()  # loaded once, for both
        steps.begin(f"preparing {frame.height:,} events")
        prepared = prepare(frame, a)
        results = []
        for side, r in (("A", a), ("B", b)):
            steps.begin(f"folding under {side}")
            results.append(ReplayResult(frame.lazy(), r, folded=fold(prepared, r.check()),
                                        keys=None if keys is None else list(keys),
                                        archive=base.archive,
                                        archive_version=base.archive_version,
                                        known_at=base.known_at))
    return Comparison(*results, same_events=True)

