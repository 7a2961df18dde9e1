"""Temporal questions: state on a time grid, and what late events restated.

Two clocks: ``event_time`` says when something happened (valid time) and
``recorded_at`` when the archive learnt of it (transaction time). State
"as of" an instant folds the events that happened by then;
``replay(..., known_at=r)`` first forgets every event recorded after ``r``.
:func:`restatements` compares two such points of knowledge.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from eventkit._typing import Instant
from eventkit.archive.open import Events
from eventkit.exceptions import InstantError
from eventkit.replay.api import replay
from eventkit.replay.progress import Steps
from eventkit.rules.model import RuleSet
from eventkit.timeutil import micros

__all__ = ["restatements"]



def restatements(
    events: Events,
    rules: RuleSet | str | Path = "balance",
    *,
    known_at: Instant,
    now_known_at: Instant,
) -> pl.LazyFrame:
    """What the events recorded between two points of knowledge changed in the past.

    Every event recorded after ``known_at`` (and at or before ``now_known_at``)
    but dated at or before ``known_at`` is a late event: it restates history
    that was already reported. For each one the result gives the key, the
    instant (its ``event_time``), the event (with its ``amount``, when the
    events have one), and per state field the value as of that instant as
    known then (``<field>_then``), as known now (``<field>_now``) and, for
    numbers, the difference (``<field>_delta``). A ``now_known_at`` before
    ``known_at`` is refused (:class:`~eventkit.exceptions.InstantError`), never
    answered with an empty frame.

    Examples
    --------
    >>> from datetime import datetime, UTC
    >>> d = lambda day: datetime(2024, 1, day, tzinfo=UTC)
    >>> events = pl.DataFrame({"event_id": ["a", "b", "late"], "seq": [0, 1, 2],
    ...     "account_id": [1, 1, 1], "event_type": ["Deposit", "Deposit", "Correction"],
    ...     "event_time": [d(1), d(3), d(2)], "recorded_at": [d(1), d(3), d(10)],
    ...     "amount": [100, 50, -30]})
    >>> restatements(events, known_at="2024-01-05", now_known_at="2024-01-31").select(
    ...     "account_id", "event_id", "balance_then", "balance_now", "balance_delta"
    ... ).collect().rows()
    [(1, 'late', 100, 70, -30)]

    """
    r1, r2 = micros(known_at, param="known_at"), micros(now_known_at, param="now_known_at")
    if r2 < r1:
        msg = (f"{now_known_at!r} is before known_at {known_at!r}: restatements are what "
               "was learnt from known_at to now_known_at")
        raise InstantError(msg, param="now_known_at")
    then = replay(events, rules, known_at=known_at)
    now = replay(events, rules, known_at=now_known_at)
    with Steps("restatements", 2) as steps:
        steps.begin(f"replaying as known at {known_at}")
        then.fold  # noqa: B018 (folded now, under this bar)
        steps.begin(f"replaying as known at {now_known_at}")
        now.fold  # noqa: B018
    key = list(now.rules.key_columns)
    fields = list(now.checked.fields)
    recorded = pl.col("recorded_at").dt.epoch("us")
    # (an archive of one's own may have no amount)
    amount = ["amount"] if "amount" in now.history.collect_schema().names() else []
    late = (
        now.history.filter((recorded > r1) & (recorded <= r2)
                           & (pl.col("event_time").dt.epoch("us") <= r1))
        .select(*key, pl.col("event_time").alias("instant"), "event_id", "event_type",
                *amount, "recorded_at")
        .sort("instant")
    )

    def states(result: pl.LazyFrame, suffix: str) -> pl.LazyFrame:
        return result.sort("event_time", "seq").select(
            *key, pl.col("event_time").alias("instant"),
            *[pl.col(f).alias(f"{f}_{suffix}") for f in fields])

    out = late.join_asof(states(then.history, "then"), on="instant", by=key,
                         strategy="backward", check_sortedness=False)
    out = out.join_asof(states(now.history, "now"), on="instant", by=key,
                        strategy="backward", check_sortedness=False)
    deltas = [(pl.col(f"{f}_now") - pl.col(f"{f}_then").fill_null(now.checked.fields[f].start)
               ).alias(f"{f}_delta")
              for f in fields if now.checked.fields[f].type in ("int", "float")]
    return out.with_columns(deltas).sort(*key, "instant", "event_id")
